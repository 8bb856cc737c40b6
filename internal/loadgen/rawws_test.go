package loadgen

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestRawConn: frames of every length class sent with appendClientFrame
// reach a real gorilla server intact, and its answers, pings and close are
// read back by rawConn.
func TestRawConn(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 0xffff, 0x10000, 100_000}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		gotPong := make(chan struct{}, 1)
		ws.SetPongHandler(func(string) error { gotPong <- struct{}{}; return nil })
		for i := range sizes {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				t.Errorf("server read: %v", err)
				return
			}
			if i == 0 {
				// Not before: what arrives with the handshake's answer
				// stays in the dialer's buffer, which rawConn cannot
				// see (the load generator's server sends nothing then).
				ws.WriteControl(websocket.PingMessage, []byte("p"), noDeadline)
			}
			// Echo it, with a prefix so the client can tell it was read.
			if typ != websocket.TextMessage || ws.WriteMessage(websocket.TextMessage, append([]byte("echo:"), data...)) != nil {
				t.Errorf("server: type %d", typ)
				return
			}
		}
		// The pong came before this message, so it has been handled.
		if _, data, err := ws.ReadMessage(); err != nil || string(data) != "bye" {
			t.Errorf("server: last message %q, %v", data, err)
		}
		select {
		case <-gotPong:
		default:
			t.Error("no pong to the server's ping")
		}
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), noDeadline)
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := newRawConn(ws.NetConn())
	for i, n := range sizes {
		c.queue(bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		got, err := c.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := append([]byte("echo:"), bytes.Repeat([]byte{byte('a' + i)}, n)...); !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(got), len(want))
		}
	}
	c.queue([]byte("bye"))
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.next(); err == nil {
		t.Fatal("no end after the close frame")
	}
}

var noDeadline time.Time
