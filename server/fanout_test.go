package server

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWSLaggingClientCatchesUp: a subscriber that stops reading for a while
// (its socket's buffers fill, so the commit fan-out's direct writes stop
// part-way through a frame and the writer finishes them) then reads again
// gets every update, whole, once, in commit order.
func TestWSLaggingClientCatchesUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		posts int
		size  int
	}{
		{"many small updates", 300, 16},
		{"large updates", 24, 128 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			_, op := operator(t, s)
			publish(t, s, "blog", op, buildModule(t, appModule), 201)
			sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "alice"))["token"].(string)
			conn, _, err := (&websocket.Dialer{
				Subprotocols: []string{Subprotocol},
				NetDial: func(network, addr string) (net.Conn, error) {
					c, err := net.Dial(network, addr)
					if err == nil {
						c.(*net.TCPConn).SetReadBuffer(64 << 10)
					}
					return c, err
				},
			}).Dial("ws"+strings.TrimPrefix(s.URL(), "http")+"/v1/database/blog/subscribe", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := &wsClient{t: t, c: conn}
			c.expect("InitialConnection")
			c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM Post"}})
			c.expect("SubscribeApplied")

			pad := strings.Repeat("x", tc.size)
			for i := range tc.posts {
				if r := call(t, s, "blog", "create_post", sess, fmt.Sprintf("post%04d:%s", i, pad)); r.code != 200 {
					t.Fatalf("post %d: %d %s", i, r.code, r.body)
				}
			}
			seq := regexp.MustCompile(`post(\d{4}):(x*)"`)
			for want := range tc.posts {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := conn.ReadMessage()
				if err != nil {
					t.Fatalf("update %d of %d: %v", want, tc.posts, err)
				}
				if !strings.HasPrefix(string(data), `{"TransactionUpdate":`) {
					t.Fatalf("update %d: got %.200s", want, data)
				}
				m := seq.FindAllSubmatch(data, -1)
				if len(m) != 1 || string(m[0][1]) != fmt.Sprintf("%04d", want) || len(m[0][2]) != tc.size {
					t.Fatalf("update %d: want post%04d with %d bytes of padding, got %d matches in %.200s", want, want, tc.size, len(m), data)
				}
			}
			if n := s.slowDrops.Load(); n != 0 {
				t.Fatalf("%d slow clients dropped", n)
			}
		})
	}
}
