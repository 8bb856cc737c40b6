package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsClient is a real WebSocket client of the JSON protocol.
type wsClient struct {
	t testing.TB
	c *websocket.Conn
}

func dialWS(t testing.TB, s *Server, db, token string) (*wsClient, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.URL(), "http") + "/v1/database/" + db + "/subscribe"
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	d := websocket.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: 5 * time.Second}
	c, res, err := d.Dial(u, h)
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, res.StatusCode)
		}
		return nil, err
	}
	if c.Subprotocol() != Subprotocol {
		t.Errorf("negotiated subprotocol %q", c.Subprotocol())
	}
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, c: c}, nil
}

// connect dials and reads InitialConnection.
func connect(t testing.TB, s *Server, db, token string) (*wsClient, map[string]any) {
	t.Helper()
	c, err := dialWS(t, s, db, token)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.expect("InitialConnection")
}

func (c *wsClient) send(typ string, body any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{typ: body})
	c.sendRaw(string(b))
}

func (c *wsClient) sendRaw(s string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one server message.
func (c *wsClient) next() (string, map[string]any, error) {
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.c.ReadMessage()
	if err != nil {
		return "", nil, err
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(data, &m); err != nil || len(m) != 1 {
		return "", nil, fmt.Errorf("not one object with one key: %v %s", err, data)
	}
	for k, v := range m {
		return k, v, nil
	}
	panic("unreachable")
}

func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	got, body, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if got != typ {
		c.t.Fatalf("got %s %v, want %s", got, body, typ)
	}
	return body
}

// closeError reads until the connection closes and returns the close frame.
func (c *wsClient) closeError() *websocket.CloseError {
	c.t.Helper()
	for {
		_, _, err := c.next()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

func TestWSCallsAndAuth(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	c, init := connect(t, s, "blog", "")
	if init["identity"] != strings.Repeat("0", 64) || len(init["connection_id"].(string)) != 32 {
		t.Fatalf("InitialConnection: %v", init)
	}

	c.send("CallReducer", map[string]any{"request_id": 1, "reducer": "create_post", "args": []any{"Hello, unauthenticated world!"}})
	if r := c.expect("ReducerResult"); r["request_id"] != float64(1) || r["status"] != "failed" || r["error"] != notLoggedIn {
		t.Fatalf("create_post: %v", r)
	}
	c.send("CallReducer", map[string]any{"request_id": 2, "reducer": "auth", "args": []any{devToken(t, s, "alice")}})
	r := c.expect("ReducerResult")
	id, _ := r["identity"].(string)
	if r["status"] != "committed" || len(id) != 64 || r["token"] == nil || r["return"] != id {
		t.Fatalf("auth: %v", r)
	}
	if ic := c.expect("IdentityChanged"); ic["identity"] != id || ic["reason"] != "auth" {
		t.Fatalf("IdentityChanged: %v", ic)
	}
	c.send("CallReducer", map[string]any{"request_id": 3, "reducer": "create_post", "args": []any{"Hello from Alice!"}})
	if r := c.expect("ReducerResult"); r["status"] != "committed" || r["return"] != float64(1) {
		t.Fatalf("create_post after auth: %v", r)
	}
	c.send("CallReducer", map[string]any{"request_id": 4, "reducer": "add", "args": []any{1, "x"}})
	if r := c.expect("ReducerResult"); r["status"] != "failed" || !strings.Contains(r["error"].(string), "b") {
		t.Fatalf("bad args: %v", r)
	}

	// The session token from auth identifies a new connection at once.
	c2, init2 := connect(t, s, "blog", r2s(r["token"]))
	if init2["identity"] != id {
		t.Fatalf("reconnect with the session: %v", init2)
	}
	c2.send("CallReducer", map[string]any{"request_id": 1, "reducer": "whoami", "args": []any{}})
	if r := c2.expect("ReducerResult"); r["return"] != id {
		t.Fatalf("whoami: %v", r)
	}
	// Browsers cannot set headers on a WebSocket: ?token= works too.
	u := "ws" + strings.TrimPrefix(s.URL(), "http") + "/v1/database/blog/subscribe?token=" + r2s(r["token"])
	qc, _, err := (&websocket.Dialer{Subprotocols: []string{Subprotocol}}).Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.Close()
	if init := (&wsClient{t: t, c: qc}).expect("InitialConnection"); init["identity"] != id {
		t.Fatalf("?token=: %v", init)
	}
	// An invalid token is refused before the upgrade, with a reason.
	if _, err := dialWS(t, s, "blog", "garbage"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := dialWS(t, s, "nope", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown database: %v", err)
	}
}

func r2s(v any) string { s, _ := v.(string); return s }

func TestWSRefusedByClientConnected(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	const reason = "maintenance: come back later"
	mustCall(t, s, "blog", "set_setting", "", "refuse", reason)
	c, err := dialWS(t, s, "blog", "")
	if err != nil {
		t.Fatal(err)
	}
	ce := c.closeError()
	if ce.Code != CloseRefused || ce.Text != reason {
		t.Fatalf("close frame %d %q, want %d %q", ce.Code, ce.Text, CloseRefused, reason)
	}
	// A long reason is cut to fit a close frame, not dropped.
	mustCall(t, s, "blog", "set_setting", "", "refuse", strings.Repeat("é", 100))
	c, err = dialWS(t, s, "blog", "")
	if err != nil {
		t.Fatal(err)
	}
	if ce := c.closeError(); ce.Code != CloseRefused || !strings.HasPrefix(ce.Text, "éé") || !strings.HasSuffix(ce.Text, "...") {
		t.Fatalf("long reason: %d %q", ce.Code, ce.Text)
	}
}

func TestWSMalformedMessages(t *testing.T) {
	s := newServer(t, WithMaxMessageSize(64<<10))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	c, _ := connect(t, s, "blog", "")
	tests := []struct {
		msg, want string
	}{
		{`{"CallReducer": `, "not a JSON object"},
		{`[1,2]`, "not a JSON object"},
		{`{}`, "0 keys"},
		{`{"CallReducer": {}, "Subscribe": {}}`, "2 keys"},
		{`{"Hello": {}}`, `unknown message type "Hello"`},
		{`{"CallReducer": {"reducer": "add"}}`, "request_id"},
		{`{"CallReducer": {"request_id": 1}}`, `needs "reducer"`},
		{`{"CallReducer": {"request_id": 1, "reducer": "add", "args": {"a": 1}}}`, "JSON array"},
		{`{"CallReducer": {"request_id": "x", "reducer": "add"}}`, "bad CallReducer message"},
		{`{"Subscribe": {"request_id": 1, "queries": ["SELECT * FROM Post"]}}`, "query_set_id"},
		{`{"Subscribe": {"request_id": 1, "query_set_id": 1}}`, "queries"},
		{`{"Unsubscribe": {"request_id": 1}}`, "query_set_id"},
		{`{"OneOffQuery": {"request_id": 1}}`, `needs "query"`},
	}
	for _, tc := range tests {
		c.sendRaw(tc.msg)
		e := c.expect("Error")
		if msg, _ := e["error"].(string); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.msg, msg, tc.want)
		}
	}
	// Still connected: a good message works.
	c.send("CallReducer", map[string]any{"request_id": 9, "reducer": "add", "args": []any{2, 3}})
	if r := c.expect("ReducerResult"); r["return"] != float64(5) {
		t.Fatalf("after malformed messages: %v", r)
	}
	// A binary frame is answered, not fatal.
	c.c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	if e := c.expect("Error"); !strings.Contains(e["error"].(string), "binary") {
		t.Fatalf("binary: %v", e)
	}

	// Abuse: a stream of garbage closes the connection with a reason.
	c2, _ := connect(t, s, "blog", "")
	for range DefaultMaxMalformed {
		c2.sendRaw("garbage")
	}
	if ce := c2.closeError(); ce.Code != ClosePolicy || !strings.Contains(ce.Text, "malformed") {
		t.Fatalf("abusive client: %d %q", ce.Code, ce.Text)
	}
	// A message over the read limit closes with 1009.
	c3, _ := connect(t, s, "blog", "")
	c3.sendRaw(`{"OneOffQuery": {"request_id": 1, "query": "` + strings.Repeat("x", 70<<10) + `"}}`)
	if ce := c3.closeError(); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized message: %d %q", ce.Code, ce.Text)
	}
}

// postUpdates reads TransactionUpdates for query set qs until n inserts of
// Post have arrived, and returns their contents and offsets.
func postUpdates(t testing.TB, c *wsClient, n int) ([]string, []uint64) {
	t.Helper()
	var contents []string
	var offsets []uint64
	for len(contents) < n {
		typ, body, err := c.next()
		if err != nil {
			t.Fatalf("after %d updates: %v", len(contents), err)
		}
		if typ != "TransactionUpdate" {
			t.Fatalf("got %s %v", typ, body)
		}
		tx := body["tx"].(map[string]any)
		offsets = append(offsets, uint64(tx["offset"].(float64)))
		for _, qs := range body["query_sets"].([]any) {
			for _, tab := range qs.(map[string]any)["tables"].([]any) {
				tu := tab.(map[string]any)
				if tu["table"] != "Post" {
					t.Fatalf("update of %v", tu["table"])
				}
				for _, row := range tu["inserts"].([]any) {
					contents = append(contents, row.(map[string]any)["content"].(string))
				}
			}
		}
	}
	return contents, offsets
}

func TestWSSubscriptions(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "alice"))["token"].(string)
	mustCall(t, s, "blog", "create_post", sess, "before")

	var clients []*wsClient
	for i := range 2 {
		c, _ := connect(t, s, "blog", "")
		c.send("Subscribe", map[string]any{"request_id": 10 + i, "query_set_id": 7, "queries": []string{"SELECT * FROM Post"}})
		a := c.expect("SubscribeApplied")
		tables := a["tables"].([]any)
		if a["request_id"] != float64(10+i) || a["query_set_id"] != float64(7) || len(tables) != 1 ||
			len(tables[0].(map[string]any)["rows"].([]any)) != 1 {
			t.Fatalf("SubscribeApplied: %v", a)
		}
		clients = append(clients, c)
	}
	// A private table is refused, naming it and how to open it.
	clients[0].send("Subscribe", map[string]any{"request_id": 20, "query_set_id": 8, "queries": []string{"SELECT * FROM Setting"}})
	if e := clients[0].expect("SubscriptionError"); e["request_id"] != float64(20) || !strings.Contains(e["error"].(string), "grant_access Setting to public") {
		t.Fatalf("private table: %v", e)
	}
	clients[0].send("OneOffQuery", map[string]any{"request_id": 21, "query": "SELECT COUNT(*) FROM Post"})
	if r := clients[0].expect("OneOffQueryResult"); !strings.Contains(fmt.Sprint(r["tables"]), "count:1") {
		t.Fatalf("one-off: %v", r)
	}

	// Concurrent writers over HTTP; each client sees every post once, in
	// commit order.
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if r := call(t, s, "blog", "create_post", sess, fmt.Sprintf("w%d-%d", w, i)); r.code != 200 {
					t.Errorf("post: %d %s", r.code, r.body)
				}
			}
		}()
	}
	wg.Wait()
	var first []string
	for i, c := range clients {
		contents, offsets := postUpdates(t, c, writers*each)
		for j := 1; j < len(offsets); j++ {
			if offsets[j] <= offsets[j-1] {
				t.Fatalf("client %d: offsets out of order: %v", i, offsets)
			}
		}
		seen := map[string]bool{}
		for _, ct := range contents {
			if seen[ct] {
				t.Fatalf("client %d: %s delivered twice", i, ct)
			}
			seen[ct] = true
		}
		if i == 0 {
			first = contents
		} else if fmt.Sprint(first) != fmt.Sprint(contents) {
			t.Fatalf("clients saw different orders:\n%v\n%v", first, contents)
		}
	}
	// Per writer, its posts arrive in the order it made them.
	next := map[byte]int{}
	for _, ct := range first {
		var w, i int
		fmt.Sscanf(ct, "w%d-%d", &w, &i)
		if i != next[byte(w)] {
			t.Fatalf("writer %d: post %d arrived before %d: %v", w, i, next[byte(w)], first)
		}
		next[byte(w)]++
	}

	// Unsubscribe: no more updates for the set.
	clients[1].send("Unsubscribe", map[string]any{"request_id": 30, "query_set_id": 7})
	if r := clients[1].expect("UnsubscribeApplied"); r["query_set_id"] != float64(7) {
		t.Fatalf("unsubscribe: %v", r)
	}
	mustCall(t, s, "blog", "create_post", sess, "after unsubscribe")
	postUpdates(t, clients[0], 1)
	clients[1].send("CallReducer", map[string]any{"request_id": 31, "reducer": "add", "args": []any{1, 1}})
	if typ, body, err := clients[1].next(); err != nil || typ != "ReducerResult" {
		t.Fatalf("after unsubscribe the next message is %s %v %v", typ, body, err)
	}

	// What a client saw was durable: it is there after a restart.
	s.Close(context.Background())
	s2 := startServer(t, dir)
	if _, rows := sql(t, s2, "blog", "", "SELECT COUNT(*) FROM Post"); rows[0]["count"] != float64(writers*each+2) {
		t.Fatalf("after restart: %v", rows)
	}
}

// TestWSSlowClient: a client that stops reading is disconnected with a
// reason once its queue is full, and the others keep receiving updates.
func TestWSSlowClient(t *testing.T) {
	s := newServer(t, WithSendQueue(4))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "alice"))["token"].(string)
	subscribe := func(c *wsClient) *wsClient {
		c.expect("InitialConnection")
		c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM Post"}})
		c.expect("SubscribeApplied")
		return c
	}
	// The slow client's socket has a small receive buffer, so that the
	// server's side fills after a few megabytes instead of tens.
	slowConn, _, err := (&websocket.Dialer{
		Subprotocols: []string{Subprotocol},
		NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err == nil {
				c.(*net.TCPConn).SetReadBuffer(256 << 10)
			}
			return c, err
		},
	}).Dial("ws"+strings.TrimPrefix(s.URL(), "http")+"/v1/database/blog/subscribe", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	slow := subscribe(&wsClient{t: t, c: slowConn})
	fast, _ := connect(t, s, "blog", "")
	fast.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM Post"}})
	fast.expect("SubscribeApplied")

	// The fast client reads everything while the slow one reads nothing.
	big := strings.Repeat("x", 128<<10)
	var received atomic.Int64
	go func() {
		for {
			if _, _, err := fast.next(); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	dropped := func() bool { return s.slowDrops.Load() > 0 }
	posted, start := 0, time.Now()
	for !dropped() {
		if posted == 500 {
			t.Fatal("500 posts and the slow client is still connected")
		}
		if r := call(t, s, "blog", "create_post", sess, fmt.Sprintf("%03d%s", posted, big)); r.code != 200 {
			t.Fatalf("post: %d %s", r.code, r.body)
		}
		posted++
	}
	t.Logf("the slow client was dropped after %d posts (%v)", posted, time.Since(start))
	// The fast client keeps receiving.
	for i := range 3 {
		mustCall(t, s, "blog", "create_post", sess, fmt.Sprintf("after %d", i))
		posted++
	}
	for deadline := time.Now().Add(10 * time.Second); received.Load() < int64(posted); {
		if time.Now().After(deadline) {
			t.Fatalf("the fast client received %d of %d updates", received.Load(), posted)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ce := slow.closeError()
	if ce.Code != ClosePolicy || !strings.Contains(ce.Text, "too slow: 4 updates queued") {
		t.Fatalf("slow client closed with %d %q", ce.Code, ce.Text)
	}
	if !strings.Contains(string(do(t, s, "GET", "/metrics", "", nil).body), `spacetime_websocket_slow_disconnects_total{database="blog"}`) {
		t.Error("the slow disconnect is not counted")
	}
}

func TestWSKeepaliveAndShutdown(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, WithPingInterval(100*time.Millisecond))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)

	// A client that reads answers pings and stays connected.
	c, _ := connect(t, s, "blog", "")
	pings := make(chan struct{}, 100)
	c.c.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := c.c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// A client that never reads never answers a ping and is dropped.
	deaf, _ := connect(t, s, "blog", "")
	_ = deaf
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, rows := sql(t, s, "blog", op, "SELECT * FROM Setting WHERE key = 'disconnected'")
		if len(rows) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client that does not answer pings was not dropped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The reading client has been pinged too, and answered: it stays. (Its
	// second ping and the deaf client's drop are two timers 100 ms apart
	// and a poll of 50 ms: asserting on the count at the moment of the
	// drop failed under load, so the pings are awaited.)
	for len(pings) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings reached the reading client", len(pings))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.connections("blog"); n != 1 {
		t.Fatalf("%d connections open, want the reading client's only", n)
	}

	// Shutdown closes with a reason, after client_disconnected ran.
	c2, _ := connect(t, s, "blog", "")
	closed := make(chan *websocket.CloseError, 1)
	go func() { closed <- c2.closeError() }()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ce := <-closed
	if ce.Code != websocket.CloseGoingAway || ce.Text != "server shutting down" {
		t.Fatalf("close on shutdown: %d %q", ce.Code, ce.Text)
	}
	s2 := startServer(t, dir)
	if _, rows := sql(t, s2, "blog", op, "SELECT * FROM Setting WHERE key = 'disconnected'"); len(rows) != 1 || rows[0]["value"] != "111" {
		t.Fatalf("client_disconnected runs: %v", rows)
	}
}

// TestWSSessionLapse: when the session behind a connection expires, the
// connection runs unauthenticated again and the client is told.
func TestWSSessionLapse(t *testing.T) {
	s := newServer(t, WithSessionTTL(1500*time.Millisecond))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	c, _ := connect(t, s, "blog", "")
	c.send("CallReducer", map[string]any{"request_id": 1, "reducer": "auth", "args": []any{devToken(t, s, "gina")}})
	r := c.expect("ReducerResult")
	exp, err := time.Parse(time.RFC3339, r2s(r["token_expires_at"]))
	if err != nil || time.Until(exp) > 2*time.Second {
		t.Fatalf("session expiry %v: %v", r["token_expires_at"], err)
	}
	c.expect("IdentityChanged")
	ic := c.expect("IdentityChanged")
	if ic["identity"] != strings.Repeat("0", 64) || !strings.Contains(r2s(ic["reason"]), "expired") {
		t.Fatalf("lapse: %v", ic)
	}
	c.send("CallReducer", map[string]any{"request_id": 2, "reducer": "create_post", "args": []any{"too late"}})
	if r := c.expect("ReducerResult"); r["error"] != notLoggedIn {
		t.Fatalf("after the lapse: %v", r)
	}
}

// TestWSRepublishAndDelete: an additive republish keeps connected clients
// and their subscriptions; deleting the database closes them with a reason.
func TestWSRepublishAndDelete(t *testing.T) {
	// The client reads only when it expects something; a long ping interval
	// keeps a slow compile (under -race) from looking like a dead client.
	s := newServer(t, WithPingInterval(time.Minute))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "hana"))["token"].(string)
	c, _ := connect(t, s, "blog", sess)
	c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM Post"}})
	c.expect("SubscribeApplied")

	publish(t, s, "blog", op, buildModule(t, appV2Module), 200)
	mustCall(t, s, "blog", "create_post", sess, "after the republish")
	if contents, _ := postUpdates(t, c, 1); contents[0] != "after the republish" {
		t.Fatalf("update after republish: %v", contents)
	}
	// The new version's reducers and tables are there for the same client.
	c.send("Subscribe", map[string]any{"request_id": 2, "query_set_id": 2, "queries": []string{"SELECT * FROM Likes"}})
	c.expect("SubscribeApplied")
	c.send("CallReducer", map[string]any{"request_id": 3, "reducer": "like", "args": []any{1}})
	var sawResult, sawUpdate bool
	for !sawResult || !sawUpdate {
		typ, body, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "ReducerResult":
			if body["status"] != "committed" {
				t.Fatalf("like: %v", body)
			}
			sawResult = true
		case "TransactionUpdate":
			if !strings.Contains(fmt.Sprint(body), "Likes") {
				t.Fatalf("update: %v", body)
			}
			sawUpdate = true
		default:
			t.Fatalf("unexpected %s %v", typ, body)
		}
	}

	// Back to v1, which does not open Likes: that query set is dropped and
	// the client told; the Post set stays.
	publish(t, s, "blog", op, buildModule(t, appModule), 200)
	if e := c.expect("SubscriptionError"); e["query_set_id"] != float64(2) || !strings.Contains(r2s(e["error"]), "Likes") {
		t.Fatalf("revoked set: %v", e)
	}
	mustCall(t, s, "blog", "create_post", sess, "after the revocation")
	if contents, _ := postUpdates(t, c, 1); contents[0] != "after the revocation" {
		t.Fatalf("the remaining set: %v", contents)
	}

	if r := do(t, s, "DELETE", "/v1/database/blog", op, nil); r.code != 200 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if ce := c.closeError(); ce.Code != websocket.CloseGoingAway || ce.Text != "database deleted" {
		t.Fatalf("close on delete: %d %q", ce.Code, ce.Text)
	}
}

func TestWSConnectionLimit(t *testing.T) {
	s := newServer(t, WithMaxConnections(1))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	first, _ := connect(t, s, "blog", "")
	c, err := dialWS(t, s, "blog", "")
	if err != nil {
		t.Fatal(err)
	}
	if ce := c.closeError(); ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "too many connections") {
		t.Fatalf("over the limit: %d %q", ce.Code, ce.Text)
	}
	first.c.Close()
	for deadline := time.Now().Add(5 * time.Second); s.connections("blog") != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first connection is still counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	connect(t, s, "blog", "")
}

func TestWSCallRate(t *testing.T) {
	s := newServer(t, WithCallRate(1, 3))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	c, _ := connect(t, s, "blog", "")
	for i := range 4 {
		c.send("CallReducer", map[string]any{"request_id": i, "reducer": "add", "args": []any{i, 1}})
	}
	for i := range 3 {
		if r := c.expect("ReducerResult"); r["status"] != "committed" {
			t.Fatalf("call %d within the burst: %v", i, r)
		}
	}
	if r := c.expect("ReducerResult"); r["status"] != "failed" || !strings.Contains(r2s(r["error"]), "rate limit") {
		t.Fatalf("call over the limit: %v", r)
	}
	time.Sleep(1100 * time.Millisecond)
	c.send("CallReducer", map[string]any{"request_id": 9, "reducer": "add", "args": []any{1, 1}})
	if r := c.expect("ReducerResult"); r["status"] != "committed" {
		t.Fatalf("after the refill: %v", r)
	}
}

// TestWSCacheEqualsQuery: random inserts, edits and deletes; each client's
// cache (initial rows plus every update applied) ends equal to a fresh
// query of its subscription, including rows that an edit moves out of or
// into its WHERE clause.
func TestWSCacheEqualsQuery(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "ivy"))["token"].(string)
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string { return string(rune('a'+rng.IntN(26))) + fmt.Sprint(rng.IntN(10)) }
	for range 5 {
		mustCall(t, s, "blog", "create_post", sess, word())
	}
	queries := []string{
		"SELECT * FROM Post WHERE content >= 'm'",
		"SELECT * FROM Post WHERE post_id > 3 AND NOT content = 'q5'",
	}
	type cache map[float64]string // post_id → row
	clients := make([]*wsClient, len(queries))
	caches := make([]cache, len(queries))
	for i, q := range queries {
		c, _ := connect(t, s, "blog", "")
		c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{q}})
		a := c.expect("SubscribeApplied")
		caches[i] = cache{}
		for _, tab := range a["tables"].([]any) {
			for _, row := range tab.(map[string]any)["rows"].([]any) {
				m := row.(map[string]any)
				caches[i][m["post_id"].(float64)] = fmt.Sprint(m)
			}
		}
		clients[i] = c
	}

	var ids []uint64
	_, rows := sql(t, s, "blog", "", "SELECT post_id FROM Post")
	for _, r := range rows {
		ids = append(ids, uint64(r["post_id"].(float64)))
	}
	for range 80 {
		switch k := rng.IntN(4); {
		case k == 0 || len(ids) == 0:
			id := mustCall(t, s, "blog", "create_post", sess, word())["return"].(float64)
			ids = append(ids, uint64(id))
		case k == 1:
			i := rng.IntN(len(ids))
			mustCall(t, s, "blog", "delete_post", "", ids[i])
			ids = append(ids[:i], ids[i+1:]...)
		default:
			mustCall(t, s, "blog", "edit_post", "", ids[rng.IntN(len(ids))], word())
		}
	}
	// A last post both queries match tells each client it is up to date.
	mustCall(t, s, "blog", "create_post", sess, "zz-end")

	for i, c := range clients {
		for done := false; !done; {
			typ, body, err := c.next()
			if err != nil || typ != "TransactionUpdate" {
				t.Fatalf("client %d: %s %v %v", i, typ, body, err)
			}
			for _, qs := range body["query_sets"].([]any) {
				for _, tab := range qs.(map[string]any)["tables"].([]any) {
					tu := tab.(map[string]any)
					for _, row := range tu["deletes"].([]any) {
						m := row.(map[string]any)
						if caches[i][m["post_id"].(float64)] != fmt.Sprint(m) {
							t.Fatalf("client %d: delete of a row it does not hold: %v", i, m)
						}
						delete(caches[i], m["post_id"].(float64))
					}
					for _, row := range tu["inserts"].([]any) {
						m := row.(map[string]any)
						caches[i][m["post_id"].(float64)] = fmt.Sprint(m)
						done = done || m["content"] == "zz-end"
					}
				}
			}
		}
		_, rows := sql(t, s, "blog", "", queries[i])
		want := cache{}
		for _, m := range rows {
			want[m["post_id"].(float64)] = fmt.Sprint(m)
		}
		if fmt.Sprint(want) != fmt.Sprint(caches[i]) {
			t.Fatalf("client %d (%s):\ncache %v\nquery %v", i, queries[i], caches[i], want)
		}
		if len(want) < 3 {
			t.Fatalf("client %d: only %d rows: the test exercises little", i, len(want))
		}
	}
}
