package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/runtime"
	"github.com/spacetime-go/spacetime/server/subscription"
)

// Subprotocol is the WebSocket subprotocol of the JSON protocol.
const Subprotocol = "v1.json.spacetime"

// Close codes the server uses.
const (
	websocketGoingAway = websocket.CloseGoingAway // 1001: shutdown, database deleted
	// CloseRefused: client_connected refused the connection; the reason is
	// the reducer's message.
	CloseRefused = 4403
	// ClosePolicy (1008): the client was too slow or sent too many malformed
	// messages; the reason says which.
	ClosePolicy = websocket.ClosePolicyViolation
)

var upgrader = websocket.Upgrader{
	Subprotocols:    []string{Subprotocol},
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	// Tokens travel in a header or the query, never in cookies, so a page
	// on another origin gains nothing by opening a socket: allow every
	// origin, as browser clients on other hosts need.
	CheckOrigin: func(*http.Request) bool { return true },
}

// outMsg is one message waiting for a connection's writer: either encoded
// JSON or a transaction update the writer encodes (so the commit path does
// not spend time encoding for slow clients).
type outMsg struct {
	data   []byte
	update *subscription.TransactionUpdate
}

// wsConn is one WebSocket client.
type wsConn struct {
	s  *Server
	d  *database
	ws *websocket.Conn
	id abi.ConnectionID

	mu       sync.Mutex
	identity abi.Identity
	claims   []byte
	expiry   *time.Timer
	owner    bool

	out       chan outMsg
	done      chan struct{} // closed when the connection starts closing
	closeOnce sync.Once
	closeCode int
	closeMsg  string
	writerEnd chan struct{}
	// pong carries a client's ping to the writer, which answers it: every
	// data frame is written by the writer.
	pong chan string
	// readerDone is closed when the reader stops reading.
	readerDone chan struct{}

	malformed int
	calls     tokenBucket
	// overRate counts the calls refused by the rate limit in a row.
	overRate int
	// ans orders the answers of the calls in flight (pipeline.go).
	ans answers
	// queries and queryOverRate are the same for one-off queries (subs.go).
	queries       tokenBucket
	queryOverRate int
	// wbuf is the writer's buffer for encoding updates.
	wbuf []byte

	// wmu is held by whoever writes data to the socket: the writer, or a
	// commit's fan-out writing an update directly (writeDirect), which
	// saves waking the writer for each of many subscribers. queued counts
	// the messages in out or taken by the writer and not yet written; an
	// update is written directly only when it is 0, which keeps the order.
	// wclosed: the writer has written the close frame or stopped.
	wmu     sync.Mutex
	queued  atomic.Int64
	wclosed bool
	// raw is the socket for direct writes (nil: none, such as a socket
	// that is not plain TCP); ebuf and dbuf are their buffers (under wmu).
	raw        syscall.RawConn
	ebuf, dbuf []byte
	// rest is the end of a frame a direct write began (under wmu); kick
	// wakes the writer to write it.
	rest []byte
	kick chan struct{}
}

// tokenBucket is a connection's reducer-call budget. Only the reader uses it.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take spends one token if there is one, refilling at rate per second up
// to burst.
func (b *tokenBucket) take(rate float64, burst int, now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newConnectionID() abi.ConnectionID {
	var id abi.ConnectionID
	rand.Read(id[:])
	return id
}

// closeWith starts closing the connection: the writer sends a close frame
// with code and reason, then closes the socket, which ends the reader. Safe
// from any goroutine, including the subscription engine's.
func (c *wsConn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeMsg = code, closeReason(reason)
		close(c.done)
	})
}

// closeReason fits a reason into a close frame (125 bytes of payload, two of
// which are the code), cutting at a rune boundary.
func closeReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// enqueue hands a message to the writer without blocking. A client whose
// queue is full is disconnected: waiting for it would stall whoever is
// sending (the commit fan-out serves every client of the database).
func (c *wsConn) enqueue(m outMsg) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	c.queued.Add(1)
	select {
	case c.out <- m:
		return true
	default:
		c.queued.Add(-1)
		c.s.metrics.dropped.WithLabelValues(c.d.name).Inc()
		c.s.slowDrops.Add(1)
		c.s.log.Warn("websocket client too slow: disconnected", "database", c.d.name, "connection", c.id, "queued", cap(c.out))
		c.closeWith(ClosePolicy, fmt.Sprintf("too slow: %d updates queued", cap(c.out)))
		return false
	}
}

// enqueueUpdate is the subscription engine's send: it writes the update to
// the socket at once if nothing is queued before it and the writer is idle,
// else queues it like enqueue. It never blocks: a direct write is one
// non-blocking write, whose rest, if the socket's buffer is full, goes to
// the writer, so a slow client's updates then queue up to the limit.
func (c *wsConn) enqueueUpdate(u *subscription.TransactionUpdate) bool {
	if c.raw != nil && c.queued.Load() == 0 && c.wmu.TryLock() {
		done, ok := c.writeDirect(u)
		c.wmu.Unlock()
		if done {
			return ok
		}
	}
	return c.enqueue(outMsg{update: u})
}

// writeDirect writes u unless something is queued or the connection is
// closing (done false: queue it instead). c.wmu is held.
func (c *wsConn) writeDirect(u *subscription.TransactionUpdate) (done, ok bool) {
	if c.wclosed || c.queued.Load() != 0 {
		return false, false
	}
	select {
	case <-c.done:
		return true, false
	default:
	}
	data, ok := appendTransactionUpdate(c.ebuf[:0], u)
	if !ok {
		return false, false // the writer encodes it the general way
	}
	frame := appendTextFrame(c.dbuf[:0], data)
	if cap(data) <= maxBatch {
		c.ebuf = data[:0]
	}
	if cap(frame) <= maxBatch {
		c.dbuf = frame[:0]
	}
	// Control, not Write: RawConn.Write would refuse once the writer's
	// last write deadline has passed (the writer moves it only when it
	// writes), and its write lock is not needed under wmu. One
	// non-blocking attempt: never wait for the socket here.
	n, werr := 0, error(nil)
	err := c.raw.Control(func(fd uintptr) {
		n, werr = rawWrite(fd, frame)
	})
	if err == nil && werr == nil && n == len(frame) {
		return true, true
	}
	if err != nil || (werr != nil && !errors.Is(werr, syscall.EAGAIN) && !errors.Is(werr, syscall.EINTR)) {
		c.closeWith(websocket.CloseAbnormalClosure, "")
		return true, false
	}
	// The socket's buffer is full: the writer finishes the frame before
	// anything else, and what follows queues behind it.
	c.queued.Add(1)
	c.rest = bytes.Clone(frame[max(n, 0):])
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return true, true
}

// send encodes a server message {"Type": body} and queues it.
func (c *wsConn) send(typ string, body any) bool {
	b, err := appendMessage(nil, typ, body)
	if err != nil {
		c.s.log.Error("websocket: encoding a message", "type", typ, "error", err)
		return false
	}
	return c.enqueue(outMsg{data: b})
}

// appendMessage appends {"Type": body}: the bytes json.Marshal gives for a
// one-key map, without the map (typ is one of the protocol's plain names).
func appendMessage(b []byte, typ string, body any) ([]byte, error) {
	j, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	b = append(b, `{"`...)
	b = append(b, typ...)
	b = append(b, `":`...)
	b = append(b, j...)
	return append(b, '}'), nil
}

func (c *wsConn) currentIdentity() (abi.Identity, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.identity, c.claims
}

// setSession binds a session's identity to the connection until the session
// expires; then the identity lapses to the unauthenticated one (DESIGN.md: a
// connection's identity lapses when its token expires).
func (c *wsConn) setSession(sess *auth.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.identity, c.claims = sess.Identity, sess.Claims
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if !sess.ExpiresAt.IsZero() {
		c.expiry = time.AfterFunc(time.Until(sess.ExpiresAt), func() { c.lapse(sess.Identity) })
	}
}

func (c *wsConn) lapse(id abi.Identity) {
	c.mu.Lock()
	if c.identity != id {
		c.mu.Unlock()
		return
	}
	c.identity, c.claims, c.expiry = abi.Identity{}, nil, nil
	c.mu.Unlock()
	c.send("IdentityChanged", identityChanged{Identity: abi.Identity{}, Reason: "session expired: call auth again with a fresh token"})
	c.d.subs.setIdentity(c, abi.Identity{})
}

type identityChanged struct {
	Identity abi.Identity `json:"identity"`
	Reason   string       `json:"reason"`
}

// handleSubscribe is GET /v1/database/:name/subscribe.
func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, "this route is a WebSocket (subprotocol %s): connect with a WebSocket client, such as `spacetime subscribe`", Subprotocol)
		return
	}
	if a, counted := s.clientKey(r); counted {
		if !s.addrs.acquire(a, s.cfg.maxPerAddr) {
			s.metrics.refusals.WithLabelValues("connections_per_address").Inc()
			w.Header().Set("Retry-After", "10")
			writeError(w, http.StatusTooManyRequests, "too many connections: client address %s has its limit of %d WebSockets open on this server; close some and retry", a, s.cfg.maxPerAddr)
			return
		}
		defer s.addrs.release(a)
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(d.limits.MaxMessageBytes)
	c := &wsConn{
		s: s, d: d, ws: ws, id: newConnectionID(),
		owner:      d.isOwner(p),
		out:        make(chan outMsg, s.cfg.sendQueue),
		done:       make(chan struct{}),
		writerEnd:  make(chan struct{}),
		readerDone: make(chan struct{}),
		pong:       make(chan string, 1),
		kick:       make(chan struct{}, 1),
	}
	if p.Session != nil {
		c.setSession(p.Session)
	}
	if sc, ok := ws.NetConn().(syscall.Conn); ok && directWrites {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	go c.writer()
	defer func() {
		c.closeWith(websocket.CloseNormalClosure, "")
		<-c.writerEnd
		c.mu.Lock()
		if c.expiry != nil {
			c.expiry.Stop()
		}
		c.mu.Unlock()
	}()
	if code, reason := d.register(c); code != 0 {
		if code == websocket.CloseTryAgainLater {
			s.metrics.refusals.WithLabelValues("connections_per_database").Inc()
		}
		close(c.readerDone) // no reader will run
		c.closeWith(code, reason)
		return
	}
	defer d.unregister(c)

	// client_connected decides whether the connection is accepted; its
	// refusal reaches the client in the close frame (SpacetimeDB's clients
	// see a bare 1006 instead, issue #2739).
	caller, claims := c.currentIdentity()
	if _, err := d.rdb.CallLifecycle(r.Context(), abi.LifecycleClientConnected, runtime.CallRequest{Caller: caller, Claims: claims, Connection: c.id}); err != nil {
		reason := err.Error()
		var rerr *runtime.ReducerError
		if errors.As(err, &rerr) {
			reason = rerr.Message
		}
		s.log.Info("websocket refused by client_connected", "database", d.name, "connection", c.id, "reason", reason)
		close(c.readerDone) // no reader will run
		c.closeWith(CloseRefused, reason)
		return
	}
	s.metrics.connections.WithLabelValues(d.name).Inc()
	defer s.metrics.connections.WithLabelValues(d.name).Dec()
	defer func() {
		// client_disconnected runs even when the server is shutting down:
		// the request's context may be gone, the database is not.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		id, claims := c.currentIdentity()
		if _, err := d.rdb.CallLifecycle(ctx, abi.LifecycleClientDisconnected, runtime.CallRequest{Caller: id, Claims: claims, Connection: c.id}); err != nil {
			s.log.Warn("client_disconnected failed", "database", d.name, "connection", c.id, "error", err)
		}
	}()

	d.subs.connect(c)
	defer d.subs.disconnect(c)
	c.send("InitialConnection", map[string]any{"identity": caller, "connection_id": c.id.String()})
	s.log.Debug("websocket connected", "database", d.name, "connection", c.id, "identity", caller, "owner", c.owner)
	if c.owner {
		// As on the SQL route, a read beyond the grants is said in the log:
		// the owner's operator token lets this connection read every table.
		s.log.Info("websocket: the database owner connected with its operator token; it reads every table", "database", d.name, "connection", c.id)
	}
	c.reader(r.Context())
}

// writeWait bounds one write to a client: a client that takes longer to
// accept data is stuck or hostile.
const writeWait = 10 * time.Second

// maxBatch is about how many bytes of frames the writer gathers for one
// write.
const maxBatch = 64 << 10

// writer is the connection's only writer of data frames: it drains the
// queue, pings, answers pings, and on close sends the close frame. It
// writes the frames itself, several per write when several are queued
// (gorilla's WriteMessage makes a write syscall and moves the socket's
// deadline for every frame, which was a fifth of the server's CPU per
// call), and moves the write deadline at most every writeWait/16. Updates
// of a commit's fan-out are written directly by enqueueUpdate when the
// writer is idle; the writer then only finishes what the socket did not
// take at once.
func (c *wsConn) writer() {
	defer close(c.writerEnd)
	defer c.ws.Close()
	defer func() {
		c.wmu.Lock()
		c.wclosed = true
		c.wmu.Unlock()
	}()
	ping := time.NewTicker(c.s.cfg.pingInterval)
	defer ping.Stop()
	nc := c.ws.NetConn()
	var (
		batch []byte
		armed time.Time // when the write deadline was last moved
		taken int64     // messages taken from out, not yet written
	)
	// add appends m as one text frame to the batch.
	add := func(m outMsg) {
		taken++
		data := m.data
		if m.update != nil {
			var err error
			var ok bool
			if data, ok = appendTransactionUpdate(c.wbuf[:0], m.update); ok {
				if cap(data) <= maxBatch {
					c.wbuf = data[:0] // copied into the batch before reuse
				}
			} else if data, err = transactionUpdateJSON(m.update); err != nil {
				c.s.log.Error("websocket: encoding an update", "error", err)
				return
			}
		}
		batch = appendTextFrame(batch, data)
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if now := time.Now(); now.Sub(armed) >= writeWait/16 {
			nc.SetWriteDeadline(now.Add(writeWait))
			armed = now
		}
		_, err := nc.Write(batch)
		if cap(batch) > 4*maxBatch {
			batch = nil
		} else {
			batch = batch[:0]
		}
		c.queued.Add(-taken)
		taken = 0
		return err
	}
	// gather adds the rest of a direct write's frame, then m (if any), and
	// whatever else is queued, up to about maxBatch. c.wmu is held.
	gather := func(m *outMsg) {
		if c.rest != nil {
			batch = append(batch, c.rest...)
			c.rest = nil
			taken++
		}
		if m != nil {
			add(*m)
		}
		for len(batch) < maxBatch {
			select {
			case m := <-c.out:
				add(m)
			default:
				return
			}
		}
	}
	// drain writes everything queued. c.wmu is held.
	drain := func() error {
		for {
			gather(nil)
			if len(batch) == 0 {
				return nil
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
	// control writes a control frame through gorilla, which sets its own
	// deadline on the socket: the next flush moves it back. It first
	// writes what is queued, which may start with the rest of a frame a
	// direct write began.
	control := func(typ int, data []byte, d time.Duration) error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if err := drain(); err != nil {
			return err
		}
		armed = time.Time{}
		return c.ws.WriteControl(typ, data, time.Now().Add(d))
	}
	for {
		select {
		case m := <-c.out:
			c.wmu.Lock()
			gather(&m)
			err := flush()
			c.wmu.Unlock()
			if err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-c.kick:
			c.wmu.Lock()
			err := drain()
			c.wmu.Unlock()
			if err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		case data := <-c.pong:
			if err := control(websocket.PongMessage, []byte(data), time.Second); err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-ping.C:
			if err := control(websocket.PingMessage, nil, 5*time.Second); err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-c.done:
			c.wmu.Lock()
			defer c.wmu.Unlock() // before the deferred wclosed
			c.wclosed = true
			deadline := time.Now().Add(time.Second)
			nc.SetWriteDeadline(deadline)
			armed = deadline // not moved again
			if c.closeCode != ClosePolicy && c.closeCode != websocket.CloseAbnormalClosure {
				// Deliver what is already queued (a ReducerResult, the
				// last updates) before saying goodbye; a slow client gets
				// nothing more.
				for time.Now().Before(deadline) {
					gather(nil)
					if len(batch) == 0 || flush() != nil {
						break
					}
				}
			} else if c.rest != nil {
				// Finish the frame a direct write began, so that the
				// close frame is not cut into it.
				batch = append(batch[:0], c.rest...)
				c.rest = nil
				flush()
			}
			if c.closeCode != websocket.CloseAbnormalClosure {
				c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeMsg), time.Now().Add(time.Second))
				c.linger()
			}
			return
		}
	}
}

// appendTextFrame appends data as one final, unmasked text frame (RFC 6455
// 5.2; a server never masks).
func appendTextFrame(b, data []byte) []byte {
	const finText = 0x81
	switch n := len(data); {
	case n <= 125:
		b = append(b, finText, byte(n))
	case n <= 0xffff:
		b = append(b, finText, 126, byte(n>>8), byte(n))
	default:
		b = append(b, finText, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, data...)
}

// linger gives the client a moment to read the close frame before the
// socket closes: closing with unread input makes the kernel send a reset,
// which can reach the client before the frame and hide the reason. If the
// reader is still running it will see the client's answering close frame;
// if it has stopped (it read something the server refused), whatever the
// client still sends is read and dropped until it closes its end.
func (c *wsConn) linger() {
	deadline := time.Now().Add(time.Second)
	select {
	case <-c.readerDone:
		nc := c.ws.NetConn()
		nc.SetReadDeadline(deadline)
		io.Copy(io.Discard, nc)
	case <-time.After(time.Until(deadline)):
	}
}

// reader reads and handles the client's messages in order; a reducer call
// is handed on once its transaction is ordered, up to maxPipelined in flight.
func (c *wsConn) reader(ctx context.Context) {
	defer close(c.readerDone)
	pongWait := 2 * c.s.cfg.pingInterval
	// Moving the deadline re-arms a runtime timer: do it at most every
	// pongWait/16 (the deadline stays at least 15/16 of pongWait away), not
	// for every message. The pong handler runs on this goroutine.
	var armed time.Time
	extend := func() {
		if now := time.Now(); now.Sub(armed) >= pongWait/16 {
			c.ws.SetReadDeadline(now.Add(pongWait))
			armed = now
		}
	}
	extend()
	c.ws.SetPongHandler(func(string) error {
		extend()
		return nil
	})
	// gorilla's own ping handler writes the pong from this goroutine and
	// moves the socket's write deadline under the writer's feet; the
	// writer answers instead. A ping arriving while one waits is dropped,
	// as RFC 6455 allows (a pong answers the latest ping).
	c.ws.SetPingHandler(func(data string) error {
		extend()
		select {
		case c.pong <- data:
		default:
		}
		return nil
	})
	// One buffer per connection for its messages: handle copies what it
	// keeps (json.Unmarshal copies strings and RawMessages).
	var buf bytes.Buffer
	for {
		typ, data, err := c.readMessage(&buf)
		if err != nil {
			// The answers of calls in flight go out before the close
			// frame (the writer delivers what is queued when it closes).
			c.ans.drain()
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				c.closeWith(ce.Code, "")
			case errors.Is(err, websocket.ErrReadLimit):
				c.closeWith(websocket.CloseMessageTooBig, fmt.Sprintf("message too large: at most %d bytes (max_message_bytes)", c.d.limits.MaxMessageBytes))
			default:
				c.closeWith(websocket.CloseAbnormalClosure, "")
			}
			return
		}
		extend()
		select {
		case <-c.done:
			return
		default:
		}
		if typ != websocket.TextMessage {
			c.malformedMessage(nil, "binary messages are not supported: send JSON text frames (subprotocol v1.json.spacetime)")
			continue
		}
		c.handle(ctx, data)
	}
}

// readMessage is websocket.Conn.ReadMessage into buf, which it reuses
// unless a large message grew it.
func (c *wsConn) readMessage(buf *bytes.Buffer) (int, []byte, error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return typ, nil, err
	}
	if buf.Cap() > 64<<10 {
		*buf = bytes.Buffer{}
	}
	buf.Reset()
	_, err = buf.ReadFrom(r)
	return typ, buf.Bytes(), err
}

// malformedMessage answers a message the server could not act on. Many in a
// row close the connection: a client that only sends garbage is abusive.
func (c *wsConn) malformedMessage(requestID *uint32, msg string) {
	c.ans.drain()
	c.malformed++
	c.send("Error", map[string]any{"request_id": requestID, "error": msg})
	if c.malformed >= c.s.cfg.maxMalformed {
		c.closeWith(ClosePolicy, fmt.Sprintf("too many malformed messages (%d in a row)", c.malformed))
	}
}

// Client messages.
type (
	callReducerMsg struct {
		RequestID *uint32         `json:"request_id"`
		Reducer   *string         `json:"reducer"`
		Args      json.RawMessage `json:"args"`
	}
	subscribeMsg struct {
		RequestID  *uint32  `json:"request_id"`
		QuerySetID *uint32  `json:"query_set_id"`
		Queries    []string `json:"queries"`
	}
	unsubscribeMsg struct {
		RequestID  *uint32 `json:"request_id"`
		QuerySetID *uint32 `json:"query_set_id"`
	}
	oneOffQueryMsg struct {
		RequestID *uint32 `json:"request_id"`
		Query     *string `json:"query"`
	}
)

const clientMessageTypes = "CallReducer, Subscribe, Unsubscribe or OneOffQuery"

func (c *wsConn) handle(ctx context.Context, data []byte) {
	// Most messages are well-formed CallReducers: decode those straight into
	// their struct. Anything else, or anything the fast path doubts, takes
	// the general path, which gives every error its message.
	if typ, body, ok := splitEnvelope(data); ok && typ == "CallReducer" {
		var m callReducerMsg
		if decodeCallFast(body, &m) || json.Unmarshal(body, &m) == nil {
			if err := c.callReducer(ctx, &m); err != nil {
				c.reportMalformed(err)
				return
			}
			c.malformed = 0
			return
		}
	}
	// Whatever the general path answers comes after the answers of the
	// calls in flight.
	c.ans.drain()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		c.malformedMessage(nil, fmt.Sprintf("the message is not a JSON object (%v): send one object with one key, the message type (%s)", err, clientMessageTypes))
		return
	}
	if len(env) != 1 {
		c.malformedMessage(nil, fmt.Sprintf("the message has %d keys: send one object with exactly one key, the message type (%s)", len(env), clientMessageTypes))
		return
	}
	for typ, body := range env {
		var err error
		switch typ {
		case "CallReducer":
			var m callReducerMsg
			if err = decodeBody(typ, body, &m); err == nil {
				err = c.callReducer(ctx, &m)
			}
		case "Subscribe":
			var m subscribeMsg
			if err = decodeBody(typ, body, &m); err == nil {
				err = c.subscribe(ctx, &m)
			}
		case "Unsubscribe":
			var m unsubscribeMsg
			if err = decodeBody(typ, body, &m); err == nil {
				err = c.unsubscribe(&m)
			}
		case "OneOffQuery":
			var m oneOffQueryMsg
			if err = decodeBody(typ, body, &m); err == nil {
				err = c.oneOffQuery(ctx, &m)
			}
		default:
			err = fmt.Errorf("unknown message type %q: the client messages are %s", truncate(typ, 40), clientMessageTypes)
		}
		if err != nil {
			c.reportMalformed(err)
			return
		}
		c.malformed = 0
	}
}

func (c *wsConn) reportMalformed(err error) {
	var me *malformedError
	if errors.As(err, &me) {
		c.malformedMessage(me.requestID, me.msg)
	} else {
		c.malformedMessage(nil, err.Error())
	}
}

// splitEnvelope splits {"Type": body} without decoding it: the key, which
// must be a plain string (no escapes), and the bytes of its value up to the
// object's closing brace. It does not check that body is one JSON value;
// decoding body into a struct does (a second key makes it invalid JSON).
func splitEnvelope(data []byte) (typ string, body []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return "", nil, false
	}
	i = skipSpace(data, i+1)
	if i >= len(data) || data[i] != '"' {
		return "", nil, false
	}
	start := i + 1
	end := start
	for end < len(data) && data[end] != '"' {
		if data[end] == '\\' || data[end] < 0x20 {
			return "", nil, false
		}
		end++
	}
	if end >= len(data) {
		return "", nil, false
	}
	i = skipSpace(data, end+1)
	if i >= len(data) || data[i] != ':' {
		return "", nil, false
	}
	j := len(data)
	for j > i && isSpace(data[j-1]) {
		j--
	}
	if j <= i+1 || data[j-1] != '}' {
		return "", nil, false
	}
	return string(data[start:end]), data[i+1 : j-1], true
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// malformedError is a message the server could not act on.
type malformedError struct {
	requestID *uint32
	msg       string
}

func (e *malformedError) Error() string { return e.msg }

func malformed(id *uint32, format string, args ...any) error {
	return &malformedError{requestID: id, msg: fmt.Sprintf(format, args...)}
}

func decodeBody(typ string, body json.RawMessage, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("bad %s message: %v", typ, err)
	}
	return nil
}

func (c *wsConn) callReducer(ctx context.Context, m *callReducerMsg) error {
	if m.RequestID == nil {
		return malformed(nil, "CallReducer needs a request_id (a number the reply carries back)")
	}
	if m.Reducer == nil || *m.Reducer == "" {
		return malformed(m.RequestID, "CallReducer needs \"reducer\", the reducer's name")
	}
	if len(m.Args) > 0 && string(m.Args) != "null" && m.Args[0] != '[' {
		return malformed(m.RequestID, "CallReducer \"args\" must be a JSON array of the reducer's arguments")
	}
	if lim := &c.d.limits; !c.calls.take(lim.CallRate, lim.CallBurst, time.Now()) {
		c.ans.drain()
		c.s.metrics.refusals.WithLabelValues("websocket_call_rate").Inc()
		c.send("ReducerResult", reducerResult{RequestID: *m.RequestID, callOutcome: failed(http.StatusTooManyRequests,
			"rate limit: this connection may call at most %g reducers per second (bursts of %d); slow down and retry", lim.CallRate, lim.CallBurst)})
		// A client that keeps going after refusals is not retrying, it is
		// flooding: it goes, before it costs more than its refusals.
		if c.overRate++; c.overRate > max(maxOverRate, lim.CallBurst) {
			c.s.metrics.refusals.WithLabelValues("websocket_call_rate_disconnect").Inc()
			c.closeWith(ClosePolicy, fmt.Sprintf("rate limit: %d calls in a row over %g per second; reconnect and slow down", c.overRate, lim.CallRate))
		}
		return nil
	}
	c.overRate = 0
	caller, claims := c.currentIdentity()
	rd, args, out := c.s.prepareCall(c.d, *m.Reducer, m.Args)
	if out == nil && !rd.IsAuth() {
		// Pipelined: the answer is queued once the transaction is
		// durable, after the answers before it; the reader goes on
		// reading meanwhile.
		slot, reqID := c.ans.reserve(), *m.RequestID
		c.s.callAsync(ctx, c.d, rd, args, caller, claims, c.id, func(out *callOutcome) {
			c.ans.fill(slot, encodeResult(reqID, out), c.enqueueData)
		})
		return nil
	}
	// An auth call changes the connection's identity, which the calls
	// after it run as: it is not pipelined.
	c.ans.drain()
	if out == nil {
		out = c.s.runCall(ctx, c.d, rd, args, caller, claims, c.id)
	}
	c.enqueueData(encodeResult(*m.RequestID, out))
	// IdentityChanged is queued before the engine recomputes the
	// connection's views, so the client learns its new identity before the
	// updates that follow from it.
	if out.session != nil {
		c.setSession(out.session)
		c.send("IdentityChanged", identityChanged{Identity: out.session.Identity, Reason: "auth"})
		c.d.subs.setIdentity(c, out.session.Identity)
	} else if out.Identity != nil {
		// The module vouched for an identity the server cannot mint a
		// session for; the connection still runs as it.
		c.mu.Lock()
		c.identity, c.claims = *out.Identity, nil
		c.mu.Unlock()
		c.send("IdentityChanged", identityChanged{Identity: *out.Identity, Reason: "auth"})
		c.d.subs.setIdentity(c, *out.Identity)
	}
	return nil
}

// reducerResult is a ReducerResult message's body.
type reducerResult struct {
	RequestID uint32 `json:"request_id"`
	*callOutcome
}

// encodeResult encodes the ReducerResult of a call, by hand when it is the
// usual committed one.
func encodeResult(requestID uint32, out *callOutcome) []byte {
	if b, ok := appendCommittedResult(nil, requestID, out); ok {
		return b
	}
	b, err := appendMessage(nil, "ReducerResult", reducerResult{RequestID: requestID, callOutcome: out})
	if err != nil {
		// A callOutcome always encodes; say so rather than send nothing.
		b, _ = appendMessage(nil, "ReducerResult", reducerResult{RequestID: requestID, callOutcome: failed(http.StatusInternalServerError, "encoding the answer: %v", err)})
	}
	return b
}

func (c *wsConn) enqueueData(b []byte) { c.enqueue(outMsg{data: b}) }

// appendCommittedResult appends the ReducerResult of a plain committed call
// (no session, no warning) byte for byte as send would encode it, without
// reflection: it is the reply to nearly every call.
func appendCommittedResult(b []byte, requestID uint32, out *callOutcome) ([]byte, bool) {
	if out.Status != "committed" || out.Error != "" || out.Identity != nil || out.Token != "" ||
		out.TokenExpiresAt != nil || out.Warning != "" || len(out.Return) == 0 ||
		bytes.ContainsAny(out.Return, "<>&\u2028\u2029") || !json.Valid(out.Return) {
		// json.Marshal would rewrite these (HTML-safe escapes) or refuse it.
		return nil, false
	}
	b = append(b, `{"ReducerResult":{"request_id":`...)
	b = strconv.AppendUint(b, uint64(requestID), 10)
	b = append(b, `,"status":"committed","return":`...)
	b = append(b, out.Return...)
	if out.Offset != 0 {
		b = append(b, `,"offset":`...)
		b = strconv.AppendUint(b, out.Offset, 10)
	}
	b = append(b, `,"duration_us":`...)
	b = strconv.AppendInt(b, out.DurationUS, 10)
	if out.EnergyUsed != 0 {
		b = append(b, `,"energy_used":`...)
		b = strconv.AppendUint(b, out.EnergyUsed, 10)
	}
	return append(b, "}}"...), true
}

// appendTransactionUpdate appends u as transactionUpdateJSON encodes it,
// byte for byte, without reflection: with many subscribers every committed
// transaction is encoded once per connection. It declines (false) whatever
// json.Marshal would rewrite: a table name that is not a plain identifier,
// or a row holding characters it escapes for HTML.
func appendTransactionUpdate(b []byte, u *subscription.TransactionUpdate) ([]byte, bool) {
	b = append(b, `{"TransactionUpdate":{"tx":{"offset":`...)
	b = strconv.AppendUint(b, u.Offset, 10)
	if u.Recomputed {
		b = append(b, `,"recomputed":true`...)
	}
	b = append(b, `},"query_sets":[`...)
	for i, qs := range u.QuerySets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"query_set_id":`...)
		b = strconv.AppendUint(b, uint64(qs.QuerySetID), 10)
		b = append(b, `,"tables":[`...)
		for j, t := range qs.Tables {
			if j > 0 {
				b = append(b, ',')
			}
			if !plainName(t.Table) {
				return b, false
			}
			b = append(b, `{"table":"`...)
			b = append(b, t.Table...)
			b = append(b, `","inserts":`...)
			var ok bool
			if b, ok = appendRows(b, t.Inserts); !ok {
				return b, false
			}
			b = append(b, `,"deletes":`...)
			if b, ok = appendRows(b, t.Deletes); !ok {
				return b, false
			}
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}}"...), true
}

// appendRows appends a list of row objects. The rows come from
// abi.AppendRowJSON, compact and valid; only what json.Marshal would
// escape for HTML makes it decline.
func appendRows(b []byte, rows []json.RawMessage) ([]byte, bool) {
	b = append(b, '[')
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		if len(r) == 0 || bytes.ContainsAny(r, "<>&\u2028\u2029") {
			return b, false
		}
		b = append(b, r...)
	}
	return append(b, ']'), true
}

// plainName: an identifier json.Marshal writes as is.
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// decodeCallFast decodes the usual CallReducer body,
// {"request_id": N, "reducer": "name", "args": [...]}, keys in any order,
// into m, giving what json.Unmarshal would. It declines (false, m
// untouched or partly set; decode it again) anything less plain: another
// key or spelling, a repeated key, escapes in the name, a request_id that
// is not a small integer, args that are not valid JSON. m.Args then points
// into body, which the caller uses before the next read reuses it.
func decodeCallFast(body []byte, m *callReducerMsg) bool {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	var seen uint8
	for i++; ; {
		i = skipSpace(body, i)
		key, next, ok := plainString(body, i)
		if !ok {
			return false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return false
		}
		i = skipSpace(body, i+1)
		switch string(key) {
		case "request_id":
			if seen&1 != 0 {
				return false
			}
			seen |= 1
			j := i
			for j < len(body) && body[j] >= '0' && body[j] <= '9' {
				j++
			}
			if j == i || j-i > 10 || (body[i] == '0' && j-i > 1) {
				return false
			}
			n, err := strconv.ParseUint(string(body[i:j]), 10, 32)
			if err != nil {
				return false
			}
			id := uint32(n)
			m.RequestID, i = &id, j
		case "reducer":
			if seen&2 != 0 {
				return false
			}
			seen |= 2
			name, next, ok := plainString(body, i)
			if !ok || !utf8.Valid(name) {
				return false
			}
			s := string(name)
			m.Reducer, i = &s, next
		case "args":
			if seen&4 != 0 {
				return false
			}
			seen |= 4
			end := skipValue(body, i)
			if end < 0 || !json.Valid(body[i:end]) {
				return false
			}
			m.Args, i = body[i:end], end
		default:
			return false
		}
		i = skipSpace(body, i)
		if i >= len(body) {
			return false
		}
		if body[i] == '}' {
			return skipSpace(body, i+1) == len(body)
		}
		if body[i] != ',' {
			return false
		}
		i++
	}
}

// plainString reads a JSON string at i that has no escapes or control
// characters; it returns its contents and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipValue returns the index after the JSON value starting at i, or -1. It
// only finds the end (brackets and strings); json.Valid checks the rest.
func skipValue(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			for j++; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) {
				return -1
			}
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 {
				return j // the end of a bare literal, at the enclosing object's brace
			}
			depth--
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return j
			}
		}
		if depth == 0 && (b[j] == '"' || b[j] == ']' || b[j] == '}') {
			return j + 1
		}
	}
	if depth == 0 {
		return len(b)
	}
	return -1
}
