package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Subprotocol is the server's WebSocket subprotocol.
const Subprotocol = "v1.json.spacetime"

// ErrServer wraps what the server answered when it refused a connection or
// a request the load generator needs.
var ErrServer = errors.New("loadgen: the server refused")

// Target is the database a load runs against.
type Target struct {
	// URL is the server's base URL, such as "http://127.0.0.1:3000".
	URL string `json:"url"`
	// Database is the database's name.
	Database string `json:"database"`
	// Token is an optional bearer token for every connection.
	Token string `json:"-"`
}

func (t Target) subscribeURL() (string, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return "", fmt.Errorf("loadgen: bad server URL %q: %w", t.URL, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("loadgen: bad server URL %q: use http://HOST:PORT", t.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/database/" + url.PathEscape(t.Database) + "/subscribe"
	return u.String(), nil
}

var dialer = websocket.Dialer{
	Subprotocols:     []string{Subprotocol},
	HandshakeTimeout: 30 * time.Second,
	ReadBufferSize:   16 << 10,
	WriteBufferSize:  4 << 10,
	Proxy:            nil, // loopback: an HTTP_PROXY from the environment must not apply
}

// dial opens one connection and reads its InitialConnection.
func dial(ctx context.Context, t Target) (*websocket.Conn, error) {
	u, err := t.subscribeURL()
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if t.Token != "" {
		h.Set("Authorization", "Bearer "+t.Token)
	}
	c, res, err := dialer.DialContext(ctx, u, h)
	if err != nil {
		if res != nil {
			var body struct {
				Error string `json:"error"`
			}
			json.NewDecoder(res.Body).Decode(&body)
			res.Body.Close()
			return nil, fmt.Errorf("%w: connecting to %s: %s %s", ErrServer, u, res.Status, body.Error)
		}
		return nil, fmt.Errorf("loadgen: connecting to %s: %w (is the server running?)", u, err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: no InitialConnection on %s: %v", ErrServer, u, err)
	}
	if !bytes.HasPrefix(data, []byte(`{"InitialConnection"`)) {
		c.Close()
		return nil, fmt.Errorf("%w: the first message was not InitialConnection: %.200s", ErrServer, data)
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}

// dialAll opens n connections, at most concurrency at a time (a burst of
// hundreds of handshakes at once would measure the listen backlog).
func dialAll(ctx context.Context, t Target, n, concurrency int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = dial(ctx, t)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// reader reads messages into one reused buffer: the generator's own
// allocations would otherwise cost the server CPU it shares.
type reader struct {
	ws  *websocket.Conn
	buf bytes.Buffer
}

// next returns the next message; it is valid until the next call.
func (r *reader) next() ([]byte, error) {
	_, rd, err := r.ws.NextReader()
	if err != nil {
		return nil, err
	}
	r.buf.Reset()
	_, err = r.buf.ReadFrom(rd)
	return r.buf.Bytes(), err
}

// closeAll says goodbye on every connection and closes it.
func closeAll(conns []*websocket.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Go(func() {
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			c.Close()
		})
	}
	wg.Wait()
}

// Fast readers of the server's messages. The server writes each message as
// one object whose key is the type, and a ReducerResult's request_id and
// status first, so a prefix and a field search are enough on the hot path;
// the generator's own CPU competes with the server's on a small machine.

var (
	prefixResult = []byte(`{"ReducerResult":`)
	prefixUpdate = []byte(`{"TransactionUpdate":`)
	keyRequestID = []byte(`"request_id":`)
	keyStatus    = []byte(`"status":"`)
)

// uintAfter parses the unsigned integer that follows the first key in data.
func uintAfter(data, key []byte) (uint64, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return 0, false
	}
	return parseUint(data[i+len(key):])
}

func parseUint(b []byte) (uint64, bool) {
	var n uint64
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, i > start
}

// committed says whether a ReducerResult's status is "committed" (the
// first status key: an error message that quotes one comes after it).
func committed(data []byte) bool {
	i := bytes.Index(data, keyStatus)
	return i >= 0 && bytes.HasPrefix(data[i+len(keyStatus):], []byte(`committed"`))
}

// resultError returns a failed ReducerResult's error message.
func resultError(data []byte) string {
	var m struct {
		R struct {
			Error string `json:"error"`
		} `json:"ReducerResult"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.R.Error == "" {
		return string(data)
	}
	return m.R.Error
}

// callMessage appends a CallReducer message to b. args is a JSON array in
// which {conn} and {seq} stand for the connection's number and the call's.
func callMessage(b []byte, requestID uint32, reducer string, args string, conn int, seq uint64) []byte {
	b = append(b, `{"CallReducer":{"request_id":`...)
	b = strconv.AppendUint(b, uint64(requestID), 10)
	b = append(b, `,"reducer":`...)
	b = strconv.AppendQuote(b, reducer)
	b = append(b, `,"args":`...)
	b = expandArgs(b, args, conn, seq)
	return append(b, "}}"...)
}

// expandArgs appends args with {conn} and {seq} replaced.
func expandArgs(b []byte, args string, conn int, seq uint64) []byte {
	for {
		i := strings.IndexByte(args, '{')
		if i < 0 {
			return append(b, args...)
		}
		b = append(b, args[:i]...)
		args = args[i:]
		switch {
		case strings.HasPrefix(args, "{conn}"):
			b = strconv.AppendInt(b, int64(conn), 10)
			args = args[len("{conn}"):]
		case strings.HasPrefix(args, "{seq}"):
			b = strconv.AppendUint(b, seq, 10)
			args = args[len("{seq}"):]
		default:
			b = append(b, '{')
			args = args[1:]
		}
	}
}
