package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestAppendTextFrame writes frames of every length class (one-byte,
// two-byte and eight-byte lengths, at their edges) as the writer does, in
// one write, and reads them with gorilla's client.
func TestAppendTextFrame(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 200_000}
	msgs := make([][]byte, len(sizes))
	for i, n := range sizes {
		msgs[i] = bytes.Repeat([]byte{byte('a' + i)}, n)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var batch []byte
		for _, m := range msgs {
			batch = appendTextFrame(batch, m)
		}
		if _, err := ws.NetConn().Write(batch); err != nil {
			t.Errorf("writing the frames: %v", err)
		}
		ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, want := range msgs {
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, sizes[i], err)
		}
		if typ != websocket.TextMessage || !bytes.Equal(got, want) {
			t.Fatalf("message %d: type %d, %d bytes; want a text message of %d bytes", i, typ, len(got), len(want))
		}
	}
}
