package loadgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
)

// rawConn speaks the WebSocket framing of an open connection itself, so
// that the call load can read every answer the kernel has already handed
// over and send the calls that replace them in one write. gorilla's Conn
// writes each message with its own syscall and does not say whether more
// is buffered, which costs the generator, and the server it shares the
// machine with, a syscall per message each way.
type rawConn struct {
	nc  net.Conn
	br  *bufio.Reader
	out []byte // frames waiting for flush
	msg []byte // the last message read, reused
}

func newRawConn(nc net.Conn) *rawConn {
	return &rawConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// WebSocket opcodes (RFC 6455 5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// appendClientFrame appends a final frame of type op as a client must send
// it: masked. The key is zero, which masks nothing: the point of masking is
// to protect proxies from a browser's script, and a load generator on
// loopback would only spend CPU on it (the server XORs either way).
func appendClientFrame(b []byte, op byte, data []byte) []byte {
	switch n := len(data); {
	case n <= 125:
		b = append(b, 0x80|op, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|op, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|op, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, data...)
}

// queue adds a text message to the next flush.
func (c *rawConn) queue(data []byte) { c.out = appendClientFrame(c.out, opText, data) }

// flush writes what was queued, in one write.
func (c *rawConn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// buffered says whether a read would find data without waiting for the
// network.
func (c *rawConn) buffered() bool { return c.br.Buffered() > 0 }

// next returns the next text message (valid until the next call), answering
// pings on the way. A close frame ends the connection with io.EOF.
func (c *rawConn) next() ([]byte, error) {
	for {
		op, data, err := c.frame()
		if err != nil {
			return nil, err
		}
		switch op {
		case opText:
			return data, nil
		case opPing:
			c.out = appendClientFrame(c.out, opPong, data)
			if err := c.flush(); err != nil {
				return nil, err
			}
		case opClose:
			return nil, io.EOF
		}
	}
}

// frame reads one whole message. The server sends final, unmasked frames;
// continuation frames are joined.
func (c *rawConn) frame() (byte, []byte, error) {
	c.msg = c.msg[:0]
	var first byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return 0, nil, err
		}
		op, fin := h[0]&0x0f, h[0]&0x80 != 0
		if h[1]&0x80 != 0 {
			return 0, nil, fmt.Errorf("loadgen: the server sent a masked frame")
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 64<<20 {
			return 0, nil, fmt.Errorf("loadgen: a frame of %d bytes", n)
		}
		start := len(c.msg)
		c.msg = slices.Grow(c.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
			return 0, nil, err
		}
		if op >= opClose { // a control frame, possibly between fragments
			data := append([]byte(nil), c.msg[start:]...)
			c.msg = c.msg[:start]
			return op, data, nil
		}
		if op != 0 {
			first = op
		}
		if fin {
			return first, c.msg, nil
		}
	}
}
