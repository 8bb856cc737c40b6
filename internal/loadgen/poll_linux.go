package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

const pollAvailable = true

// poller reads many subscribers' sockets from a few goroutines, each
// waiting on its own epoll set, and parses the server's frames in place.
type poller struct {
	f        *fanout
	stopping *atomic.Bool
	epfds    []int
	socks    []*rawSock
	wg       sync.WaitGroup
	errs     []error
}

// rawSock is one subscriber's socket, taken over from gorilla after the
// handshake. Only its poller goroutine reads it.
type rawSock struct {
	i     int
	fd    int
	carry []byte // the start of a frame the last read cut
	msg   []byte // a fragmented message's parts so far
	frag  bool
	dead  bool
}

var errFrame = errors.New("malformed frame from the server")

func startPoller(f *fanout, conns []*websocket.Conn, stopping *atomic.Bool) (*poller, error) {
	p := &poller{f: f, stopping: stopping, errs: make([]error, len(conns))}
	n := max(1, min(runtime.GOMAXPROCS(0), len(conns)))
	for range n {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			p.closeAll()
			return nil, fmt.Errorf("loadgen: epoll: %w", err)
		}
		p.epfds = append(p.epfds, fd)
	}
	for i, ws := range conns {
		fd, err := takeOver(ws)
		if err != nil {
			p.closeAll()
			return nil, fmt.Errorf("loadgen: subscriber %d: %w", i, err)
		}
		s := &rawSock{i: i, fd: fd}
		p.socks = append(p.socks, s)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(i)}
		if err := syscall.EpollCtl(p.epfds[i%n], syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			p.closeAll()
			return nil, fmt.Errorf("loadgen: epoll: %w", err)
		}
	}
	for _, ep := range p.epfds {
		p.wg.Go(func() { p.run(ep) })
	}
	return p, nil
}

// takeOver duplicates the connection's socket and closes gorilla's copy
// (the socket stays open through the duplicate), so that Go's network
// poller no longer watches it.
func takeOver(ws *websocket.Conn) (int, error) {
	sc, ok := ws.NetConn().(*net.TCPConn)
	if !ok {
		return -1, errors.New("not a TCP connection")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { fd, derr = syscall.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	sc.Close()
	return fd, nil
}

func (p *poller) run(ep int) {
	events := make([]syscall.EpollEvent, 128)
	buf := make([]byte, 64<<10)
	wait := 100 // ms; a timeout, so that stop is noticed without a wake-up channel
	if p.f.cfg.PollInterval > 0 {
		wait = 0
	}
	for !p.stopping.Load() {
		n, err := syscall.EpollWait(ep, events, wait)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			s := p.socks[ev.Fd]
			if s.dead {
				continue
			}
			if err := p.read(s, buf); err != nil {
				// Closing the only descriptor of the socket also takes it
				// out of the epoll set.
				s.dead = true
				syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, s.fd, nil)
				syscall.Close(s.fd)
				if !p.stopping.Load() {
					p.errs[s.i] = p.f.failed(s.i, err)
				}
			}
		}
		if n < len(events) && p.f.cfg.PollInterval > 0 {
			// Sleep rather than wait in epoll_wait: on loopback the
			// server's write pays for waking a reader that waits on its
			// socket (over a network the client's machine would), so
			// readers that look once per interval leave the server's
			// cost closer to a real one's. It delays each receipt by up
			// to the interval, which the figures then include.
			time.Sleep(p.f.cfg.PollInterval)
		}
	}
}

// read reads what the socket holds once and handles the complete frames.
func (p *poller) read(s *rawSock, buf []byte) error {
	// A raw system call: a read of a non-blocking socket returns at once,
	// and thousands of them in a row through syscall.Read keep the Go
	// scheduler's monitor thread waking every 20 µs.
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(s.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	n, err := int(r), error(nil)
	if errno != 0 {
		err = errno
	}
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return nil
		}
		return err
	}
	if n == 0 {
		return errors.New("the server closed the connection")
	}
	now := time.Now().UnixNano()
	data := buf[:n]
	if len(s.carry) > 0 {
		s.carry = append(s.carry, data...)
		data = s.carry
	}
	rest, err := p.frames(s, data, now)
	if err != nil {
		return err
	}
	// Keep the cut frame; carry may alias data, so move it to the front.
	s.carry = append(s.carry[:0], rest...)
	return nil
}

// frames handles each complete frame in data and returns the incomplete rest.
func (p *poller) frames(s *rawSock, data []byte, now int64) ([]byte, error) {
	for len(data) >= 2 {
		b0, b1 := data[0], data[1]
		if b1&0x80 != 0 {
			return nil, fmt.Errorf("%w: masked", errFrame)
		}
		size, hdr := uint64(b1&0x7f), 2
		switch size {
		case 126:
			if len(data) < 4 {
				return data, nil
			}
			size, hdr = uint64(binary.BigEndian.Uint16(data[2:])), 4
		case 127:
			if len(data) < 10 {
				return data, nil
			}
			size, hdr = binary.BigEndian.Uint64(data[2:]), 10
		}
		if size > 1<<30 {
			return nil, fmt.Errorf("%w: %d bytes", errFrame, size)
		}
		end := hdr + int(size)
		if len(data) < end {
			return data, nil
		}
		payload := data[hdr:end]
		data = data[end:]
		fin := b0&0x80 != 0
		switch op := b0 & 0x0f; op {
		case websocket.TextMessage, websocket.BinaryMessage:
			if fin {
				p.f.message(s.i, payload, now)
			} else {
				s.msg, s.frag = append(s.msg[:0], payload...), true
			}
		case 0: // continuation
			if !s.frag {
				return nil, fmt.Errorf("%w: continuation without a message", errFrame)
			}
			s.msg = append(s.msg, payload...)
			if fin {
				s.frag = false
				p.f.message(s.i, s.msg, now)
			}
		case websocket.PingMessage:
			writeClientFrame(s.fd, websocket.PongMessage, payload)
		case websocket.PongMessage:
		case websocket.CloseMessage:
			return nil, fmt.Errorf("the server closed the connection: %s", closeText(payload))
		default:
			return nil, fmt.Errorf("%w: opcode %d", errFrame, op)
		}
	}
	return data, nil
}

func closeText(payload []byte) string {
	if len(payload) < 2 {
		return "no status"
	}
	return fmt.Sprintf("%d %q", binary.BigEndian.Uint16(payload), payload[2:])
}

// writeClientFrame writes a small control frame, masked as a client must
// (with a zero key, which leaves the payload as is).
func writeClientFrame(fd int, op int, payload []byte) {
	if len(payload) > 125 {
		return
	}
	b := append([]byte{0x80 | byte(op), 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	syscall.Write(fd, b)
}

// stop says goodbye on every socket, closes them, waits for the pollers and
// returns the read errors.
func (p *poller) stop() error {
	p.stopping.Store(true)
	p.wg.Wait()
	for _, s := range p.socks {
		if !s.dead {
			writeClientFrame(s.fd, websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		}
	}
	p.closeAll()
	return errors.Join(p.errs...)
}

func (p *poller) closeAll() {
	for _, s := range p.socks {
		if !s.dead {
			syscall.Close(s.fd)
		}
	}
	p.socks = nil
	for _, ep := range p.epfds {
		syscall.Close(ep)
	}
	p.epfds = nil
}
