package server

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spacetime-go/spacetime/runtime"
)

func TestClientKey(t *testing.T) {
	s := &Server{cfg: defaultConfig()}
	loop := &Server{cfg: defaultConfig()}
	loop.cfg.limitLoopback = true
	proxied := &Server{cfg: defaultConfig()}
	WithTrustedProxies(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"))(&proxied.cfg)
	for _, tc := range []struct {
		s      *Server
		remote string
		want   string // "" when not counted
	}{
		{s, "10.0.0.1:5000", "10.0.0.1"},
		{s, "[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::"},
		{s, "[2001:db8:1:2:ffff::9]:443", "2001:db8:1:2::"},
		{s, "[::ffff:10.0.0.7]:1", "10.0.0.7"},
		{s, "127.0.0.1:1", ""},
		{s, "[::1]:1", ""},
		{loop, "127.0.0.1:1", "127.0.0.1"},
		{s, "not an address", ""},
		{proxied, "127.0.0.1:1|192.0.2.9", "192.0.2.9"},
		{proxied, "127.0.0.1:1|198.51.100.1, 192.0.2.9", "192.0.2.9"},
		{proxied, "127.0.0.1:1|192.0.2.9, 10.1.0.1", "192.0.2.9"}, // a second trusted hop
		{proxied, "127.0.0.1:1|", ""},
		{proxied, "127.0.0.1:1|garbage", ""},
		{proxied, "192.0.2.7:1|192.0.2.9", "192.0.2.7"}, // not a proxy: its header is ignored
		{proxied, "10.1.0.1:1|2001:db8:1:2::5", "2001:db8:1:2::"},
	} {
		remote, xff, _ := strings.Cut(tc.remote, "|")
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		a, ok := tc.s.clientKey(r)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("%s: key %q; want %q", tc.remote, got, tc.want)
		}
	}
}

// TestConnectionsPerAddress: one client address holds at most its limit of
// WebSockets across all databases; the next is refused with 429 before the
// upgrade, and a closed connection frees its place.
func TestConnectionsPerAddress(t *testing.T) {
	s := newServer(t, WithMaxConnectionsPerAddress(2), WithLoopbackAddressLimit(true))
	_, op := operator(t, s)
	publish(t, s, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	publish(t, s, "b", op, adversarialWasm(t, "attacks.wasm"), 201)
	first, _ := connect(t, s, "a", "")
	connect(t, s, "b", "")
	_, err := dialWS(t, s, "a", "")
	if err == nil || !strings.Contains(err.Error(), "HTTP 429") {
		t.Fatalf("third connection from one address: %v; want HTTP 429", err)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/v1/database/b/subscribe", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": Subprotocol} {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 512)
	n, _ := res.Body.Read(body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body[:n]), "client address 127.0.0.1 has its limit of 2 WebSockets open") {
		t.Fatalf("refusal: %d %q %s", res.StatusCode, res.Header.Get("Retry-After"), body[:n])
	}
	if m := do(t, s, "GET", "/metrics", "", nil); !strings.Contains(string(m.body), `spacetime_limit_refusals_total{limit="connections_per_address"} 2`) {
		t.Fatalf("the refusals are not counted in /metrics")
	}
	first.c.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	for deadline := time.Now().Add(5 * time.Second); s.addrs.count(lo) != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection is still counted: %d", s.addrs.count(lo))
		}
		time.Sleep(10 * time.Millisecond)
	}
	connect(t, s, "a", "")

	// Loopback is not counted by default.
	s2 := newServer(t, WithMaxConnectionsPerAddress(1))
	_, op2 := operator(t, s2)
	publish(t, s2, "a", op2, adversarialWasm(t, "attacks.wasm"), 201)
	connect(t, s2, "a", "")
	connect(t, s2, "a", "")
}

// TestCallRateDisconnect: a connection that keeps calling past its rate
// limit after being refused is closed.
func TestCallRateDisconnect(t *testing.T) {
	s := newServer(t, WithCallRate(0.001, 1))
	_, op := operator(t, s)
	publish(t, s, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	c, _ := connect(t, s, "a", "")
	for i := range maxOverRate + 2 {
		c.send("CallReducer", map[string]any{"request_id": i, "reducer": "ok", "args": []any{i + 1}})
	}
	if r := c.expect("ReducerResult"); r["status"] != "committed" {
		t.Fatalf("the first call: %v", r)
	}
	// The refusals queued when the connection closes may be dropped with
	// it; those that arrive say why.
	for {
		typ, r, err := c.next()
		if err != nil {
			break
		}
		if typ != "ReducerResult" || r["status"] != "failed" || !strings.Contains(r2s(r["error"]), "rate limit") {
			t.Fatalf("refused call: %s %v", typ, r)
		}
	}
	if ce := c.closeError(); ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "rate limit: 101 calls in a row") {
		t.Fatalf("close: %d %q", ce.Code, ce.Text)
	}
}

// TestDatabaseLimitsFromConfig: [databases.NAME.limits] in the config file
// bind that database only, over HTTP and WebSocket.
func TestDatabaseLimitsFromConfig(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "spacetime.toml")
	if err := os.WriteFile(cfgFile, []byte(`
[databases.small.limits]
energy_budget = 2_000_000
memory_pages = 8
max_call_depth = 100
call_rate = 0.001
call_burst = 2
max_connections = 1
log_bytes_per_minute = 20_000
max_subscriptions = 2
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, WithConfigFile(cfgFile), WithRuntimeOptions(adversarialRuntimeOptions()...))
	_, op := operator(t, s)
	publish(t, s, "small", op, adversarialWasm(t, "attacks.wasm"), 201)
	publish(t, s, "big", op, adversarialWasm(t, "attacks.wasm"), 201)
	for _, tc := range []struct {
		db, reducer, says string
	}{
		{"small", "infinite_loop", "2000000 units"},
		{"big", "infinite_loop", "20000000 units"},
		{"small", "memory_bomb", "limit of 8 pages (0 MiB)"},
		{"big", "memory_bomb", "limit of 512 pages (32 MiB)"},
		{"small", "recursion", "deeper than 100"},
		{"big", "recursion", "deeper than 10000"},
	} {
		r := call(t, s, tc.db, tc.reducer, "")
		if msg := r.errorText(t); !strings.Contains(msg, tc.says) {
			t.Errorf("%s on %s: %d %q; want it to say %q", tc.reducer, tc.db, r.code, msg, tc.says)
		}
	}

	// The log budget: every log_flood call logs up to its 64 KiB a call;
	// small keeps 20,000 bytes a minute of it.
	for range 4 {
		call(t, s, "small", "log_flood", "")
		call(t, s, "big", "log_flood", "")
	}
	// The notices of dropped lines are not charged.
	logged := func(db string) (n, notices int) {
		d, _ := s.lookup(db)
		for _, l := range d.rdb.Logs().Last(1000) {
			if strings.Contains(l.Message, "dropped: this database logged more than its 20000 bytes per minute") {
				notices++
				continue
			}
			n += len(l.Message)
		}
		return n, notices
	}
	if n, notices := logged("small"); n > 20_000 || notices == 0 {
		t.Errorf("small logged %d bytes and said %d times that lines were dropped; want at most 20000, and drops said", n, notices)
	}
	if n, notices := logged("big"); n <= 20_000 || notices != 0 {
		t.Errorf("big logged %d bytes, %d notices of drops; its budget is the server's", n, notices)
	}

	// The WebSocket limits: one connection, two calls in a burst.
	c, _ := connect(t, s, "small", "")
	if c2, err := dialWS(t, s, "small", ""); err != nil {
		t.Fatal(err)
	} else if ce := c2.closeError(); ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "limit of 1 open") {
		t.Fatalf("second connection: %d %q", ce.Code, ce.Text)
	}
	connect(t, s, "big", "")
	connect(t, s, "big", "")
	for i := range 3 {
		c.send("CallReducer", map[string]any{"request_id": i, "reducer": "ok", "args": []any{100 + i}})
	}
	for i, want := range []string{"committed", "committed", "failed"} {
		if r := c.expect("ReducerResult"); r["status"] != want {
			t.Fatalf("call %d: %v; want %s", i, r, want)
		}
	}
	c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM T", "SELECT * FROM T WHERE id = 1", "SELECT * FROM T WHERE id = 2"}})
	if r := c.expect("SubscriptionError"); !strings.Contains(r2s(r["error"]), "more than the limit of 2 per connection") {
		t.Fatalf("three subscribed queries: %v", r)
	}
}

func TestDatabaseLimitsConfigErrors(t *testing.T) {
	for _, tc := range []struct{ toml, says string }{
		{"[databases.x.limits]\nenergy = 5\n", `unknown setting "databases.x.limits.energy"`},
		{"[databases.x.limits]\ncall_rate = -1\n", "limits must be positive"},
		{"[databases.x.limits]\ndeadline = \"soon\"\n", "want a Go duration"},
	} {
		cfgFile := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(cfgFile, []byte(tc.toml), 0o600)
		_, err := New(t.Context(), WithDataDir(t.TempDir()), WithConfigFile(cfgFile))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: err = %v; want it to say %q", tc.toml, err, tc.says)
		}
	}
}

// TestHTTPCallRate: one client address calls reducers over HTTP at its rate;
// past its burst it gets 429 with Retry-After, and loopback is not counted
// by default.
func TestHTTPCallRate(t *testing.T) {
	s := newServer(t, WithHTTPCallRate(0.001, 3), WithLoopbackAddressLimit(true))
	_, op := operator(t, s)
	publish(t, s, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	for i := range 3 {
		if r := call(t, s, "a", "ok", "", i+1); r.code != 200 {
			t.Fatalf("call %d within the burst: %d %s", i, r.code, r.body)
		}
	}
	r := call(t, s, "a", "ok", "", 9)
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" ||
		!strings.Contains(r.errorText(t), "client address 127.0.0.1 may call at most 0.001 reducers per second over HTTP (bursts of 3)") {
		t.Fatalf("over the rate: %d %q %s", r.code, r.header.Get("Retry-After"), r.body)
	}
	if got := tableIDs(t, s, "a", op); len(got) != 3 {
		t.Fatalf("rows %v; want the 3 calls within the burst", got)
	}
	if m := do(t, s, "GET", "/metrics", "", nil); !strings.Contains(string(m.body), `spacetime_limit_refusals_total{limit="http_call_rate"} 1`) {
		t.Fatalf("the refusal is not counted in /metrics")
	}

	s2 := newServer(t, WithHTTPCallRate(0.001, 1))
	_, op2 := operator(t, s2)
	publish(t, s2, "a", op2, adversarialWasm(t, "attacks.wasm"), 201)
	for i := range 3 {
		if r := call(t, s2, "a", "ok", "", i+1); r.code != 200 {
			t.Fatalf("loopback call %d: %d %s", i, r.code, r.body)
		}
	}
}

func TestAddrRatesSwept(t *testing.T) {
	var a addrRates
	now := time.Unix(1000, 0)
	for i := range sweepAbove + 10 {
		a.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), rateHTTPCall, 1, 1, now)
	}
	busy := netip.MustParseAddr("192.0.2.1")
	now = now.Add(5 * time.Second)
	a.take(busy, rateHTTPCall, 1, 1, now) // sweeps the full buckets, keeps its own
	if ok, over := a.take(busy, rateHTTPCall, 1, 1, now); len(a.b) != 1 || ok || over != 1 {
		t.Fatalf("%d buckets after the sweep; the busy one must be kept and empty", len(a.b))
	}
}

// TestSQLReadsItsWrites: a row a committed HTTP call wrote is in the next
// SQL answer. The subscription engine learns of commits asynchronously, so
// a query must not stop at the last commit the engine has processed (found
// by the adversarial suite: 2 misses in about 20 reads).
func TestSQLReadsItsWrites(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	// A subscriber (the owner: T is private), so that the engine has work
	// to do per commit.
	c, _ := connect(t, s, "a", op)
	c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM T"}})
	c.expect("SubscribeApplied")
	for i := range 200 {
		if r := call(t, s, "a", "ok", "", i+1); r.code != 200 {
			t.Fatalf("call %d: %d %s", i, r.code, r.body)
		}
		if got := tableIDs(t, s, "a", op); len(got) != i+1 {
			t.Fatalf("after %d committed calls, SQL sees %d rows", i+1, len(got))
		}
	}
}

// hostLimitsConfig gives each host limit a database of its own (the first
// refusal of a call is the one reported), and "big" none: it has the
// server's (adversarialRuntimeOptions: 500 rows, 64 iterators, 64 KiB of
// log a call).
const hostLimitsConfig = `
[databases.rows.limits]
max_rows_written = 5
[databases.bytes.limits]
max_bytes_written = 40
[databases.rowsize.limits]
max_row_bytes = 4
[databases.small.limits]
max_iterators = 5
log_bytes_per_call = 100
max_args_bytes = 4
max_message_bytes = 200
`

// TestDatabaseHostLimits: each per-call limit set under
// [databases.NAME.limits] binds that database and no other, says which
// setting to raise, and holds through a republish and a restart.
func TestDatabaseHostLimits(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "spacetime.toml")
	if err := os.WriteFile(cfgFile, []byte(hostLimitsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := []Option{WithConfigFile(cfgFile), WithRuntimeOptions(adversarialRuntimeOptions()...)}
	s := startServer(t, dir, opts...)
	_, op := operator(t, s)
	wasm := adversarialWasm(t, "attacks.wasm")
	for _, db := range []string{"rows", "bytes", "rowsize", "small", "big"} {
		publish(t, s, db, op, wasm, 201)
	}
	type tc struct {
		db, reducer string
		args        []any
		code        int
		says        []string // in the error or the limit
	}
	calls := []tc{
		{"rows", "insert_until_limit", nil, 422, []string{"limit of 5 rows written", "max_rows_written"}},
		{"big", "insert_until_limit", nil, 422, []string{"limit of 500 rows written"}},
		{"bytes", "insert_until_limit", nil, 422, []string{"limit of 40 bytes of rows written per transaction", "max_bytes_written"}},
		{"rowsize", "insert_until_limit", nil, 422, []string{"limit of 4 bytes in one row", "max_row_bytes"}},
		{"small", "leak_iterators", nil, 504, []string{"out of energy", "limit of 5 iterators", "max_iterators"}},
		{"big", "leak_iterators", nil, 504, []string{"limit of 64 iterators"}},
		{"small", "ok", []any{1}, 400, []string{"8 bytes of arguments for ok; at most 4 are accepted", "max_args_bytes"}},
		{"big", "ok", []any{1}, 200, nil},
	}
	nextID := 100
	check := func(s *Server, round string, calls []tc) {
		t.Helper()
		for _, c := range calls {
			if c.reducer == "ok" && c.code == 200 {
				nextID++
				c.args = []any{nextID} // a new row each time
			}
			r := call(t, s, c.db, c.reducer, "", c.args...)
			m := r.json(t)
			text := fmt.Sprint(m["error"], " ", m["limit"])
			if r.code != c.code {
				t.Errorf("%s: %s on %s: %d %s; want %d", round, c.reducer, c.db, r.code, r.body, c.code)
				continue
			}
			for _, w := range c.says {
				if !strings.Contains(text, w) {
					t.Errorf("%s: %s on %s: %q; want it to say %q", round, c.reducer, c.db, text, w)
				}
			}
		}
	}
	check(s, "first publish", calls)
	for _, db := range []string{"rows", "bytes", "rowsize"} {
		if ids := tableIDs(t, s, db, op); len(ids) != 0 {
			t.Errorf("%s kept rows of failed calls: %v", db, ids)
		}
	}

	// Log bytes per call: the line over it is dropped, and the log says
	// which setting to raise.
	call(t, s, "small", "log_flood", "")
	call(t, s, "big", "log_flood", "")
	logSays := func(s *Server, db, want string) bool {
		d, _ := s.lookup(db)
		for _, l := range d.rdb.Logs().Last(1000) {
			if strings.Contains(l.Message, want) {
				return true
			}
		}
		return false
	}
	if !logSays(s, "small", "log limit of 100 bytes per call reached") || !logSays(s, "small", "log_bytes_per_call") {
		t.Error("small's log does not say its limit of 100 bytes per call")
	}
	if !logSays(s, "big", "log limit of 65536 bytes per call reached") {
		t.Error("big's log does not say the server's limit of 65536 bytes per call")
	}
	if !logSays(s, "rows", "limit of 5 rows written") {
		t.Error("the refusal is not in the module log")
	}

	// Message size: an HTTP call's body and a WebSocket message.
	big := []byte(`[` + strings.Repeat(" ", 300) + `2]`)
	if r := do(t, s, "POST", "/v1/database/small/call/ok", "", big); r.code != 413 || !strings.Contains(r.errorText(t), "max_message_bytes") {
		t.Errorf("a 300-byte call on small: %d %s; want 413 naming max_message_bytes", r.code, r.body)
	}
	if r := do(t, s, "POST", "/v1/database/big/call/ok", "", big); r.code != 200 {
		t.Errorf("a 300-byte call on big: %d %s", r.code, r.body)
	}
	msg := `{"CallReducer": {"request_id": 1, "reducer": "ok", "args": [7]` + strings.Repeat(" ", 300) + `}}`
	cb, _ := connect(t, s, "big", "")
	cb.sendRaw(msg)
	if r := cb.expect("ReducerResult"); r["status"] != "committed" {
		t.Errorf("a 300-byte message on big: %v", r)
	}
	cs, _ := connect(t, s, "small", "")
	cs.sendRaw(msg)
	// gorilla closes with 1009 and no reason before the server can give one.
	if ce := cs.closeError(); ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("a 300-byte message on small: close %d %q; want 1009", ce.Code, ce.Text)
	}

	// A republish keeps the database's limits.
	publish(t, s, "rows", op, wasm, 200)
	check(s, "after a republish", calls[:2])

	// So does a restart.
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, dir, opts...)
	check(s2, "after a restart", calls)
}

// TestDatabaseResultAndTokenLimits: max_result_bytes and max_token_bytes
// through a Go module.
func TestDatabaseResultAndTokenLimits(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "spacetime.toml")
	if err := os.WriteFile(cfgFile, []byte("[databases.small.limits]\nmax_result_bytes = 4\nmax_token_bytes = 50\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, WithConfigFile(cfgFile))
	_, op := operator(t, s)
	wasm := buildModule(t, appModule)
	publish(t, s, "small", op, wasm, 201)
	publish(t, s, "big", op, wasm, 201)
	tok := devToken(t, s, "alice")
	if len(tok) <= 50 {
		t.Fatalf("a token of %d bytes", len(tok))
	}
	for _, c := range []struct {
		db, reducer string
		args        []any
		code        int
		says        string
	}{
		{"small", "add", []any{1, 2}, 422, "limit of 4 bytes of one result (return value or module description); raise max_result_bytes"},
		{"big", "add", []any{1, 2}, 200, ""},
		{"small", "auth", []any{tok}, 422, "tokens of at most 50 bytes are accepted (max_token_bytes"},
		{"big", "auth", []any{tok}, 200, ""},
	} {
		r := call(t, s, c.db, c.reducer, "", c.args...)
		m := r.json(t)
		if text := fmt.Sprint(m["error"], " ", m["limit"]); r.code != c.code || !strings.Contains(text, c.says) {
			t.Errorf("%s on %s: %d %s; want %d saying %q", c.reducer, c.db, r.code, r.body, c.code, c.says)
		}
	}
}

// TestOneOffQueryRate: one-off queries on a WebSocket have a bucket per
// connection, the database's query_rate over the server's; over it a query
// is answered with an error at once, and a connection that keeps going is
// closed. Calls have their own bucket.
func TestOneOffQueryRate(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "spacetime.toml")
	if err := os.WriteFile(cfgFile, []byte("[databases.small.limits]\nquery_rate = 0.001\nquery_burst = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, WithConfigFile(cfgFile), WithQueryRate(0.001, 3))
	_, op := operator(t, s)
	publish(t, s, "small", op, adversarialWasm(t, "attacks.wasm"), 201)
	publish(t, s, "big", op, adversarialWasm(t, "attacks.wasm"), 201)
	for _, tc := range []struct {
		db     string
		within int
	}{{"small", 1}, {"big", 3}} {
		c, _ := connect(t, s, tc.db, op)
		for i := range tc.within + 1 {
			c.send("OneOffQuery", map[string]any{"request_id": i, "query": "SELECT * FROM T"})
			r := c.expect("OneOffQueryResult")
			limited := strings.Contains(r2s(r["error"]), "rate limit: this connection may run at most 0.001 one-off queries per second")
			if limited != (i == tc.within) {
				t.Fatalf("%s: query %d: %v; want the rate limit after %d", tc.db, i, r, tc.within)
			}
		}
		// Calls are not spent by queries.
		c.send("CallReducer", map[string]any{"request_id": 1, "reducer": "ok", "args": []any{tc.within}})
		if r := c.expect("ReducerResult"); r["status"] != "committed" {
			t.Fatalf("%s: a call after the queries: %v", tc.db, r)
		}
	}

	c, _ := connect(t, s, "small", op)
	for i := range maxOverRate + 2 {
		c.send("OneOffQuery", map[string]any{"request_id": i, "query": "SELECT * FROM T"})
	}
	if ce := c.closeError(); ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "rate limit: 101 queries in a row") {
		t.Fatalf("close: %d %q", ce.Code, ce.Text)
	}
	if m := do(t, s, "GET", "/metrics", "", nil); !strings.Contains(string(m.body), `spacetime_limit_refusals_total{limit="websocket_query_rate_disconnect"} 1`) {
		t.Fatalf("the disconnect is not counted in /metrics")
	}
}

// TestHTTPQueryRate: SQL over HTTP has a bucket per client address, apart
// from calls; a client that keeps going past it is told to close its
// connection; behind a trusted proxy the forwarded address counts.
func TestHTTPQueryRate(t *testing.T) {
	s := newServer(t, WithHTTPQueryRate(0.001, 2), WithLoopbackAddressLimit(true))
	_, op := operator(t, s)
	publish(t, s, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	q := func(s *Server, xff string) response {
		t.Helper()
		req, _ := http.NewRequest("POST", s.URL()+"/v1/database/a/sql", strings.NewReader("SELECT * FROM T"))
		req.Header.Set("Authorization", "Bearer "+op)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.Close { // the client takes Connection: close out of the header
			res.Header.Set("Connection", "close")
		}
		return response{code: res.StatusCode, header: res.Header, body: b}
	}
	for i := range 2 {
		if r := q(s, ""); r.code != 200 {
			t.Fatalf("query %d within the burst: %d %s", i, r.code, r.body)
		}
	}
	r := q(s, "")
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.header.Get("Connection") == "close" ||
		!strings.Contains(r.errorText(t), "client address 127.0.0.1 may run at most 0.001 SQL queries per second over HTTP (bursts of 2)") {
		t.Fatalf("over the rate: %d %v %s", r.code, r.header, r.body)
	}
	if r := call(t, s, "a", "ok", "", 1); r.code != 200 {
		t.Fatalf("a call after the queries: %d %s", r.code, r.body)
	}
	for range maxOverRate - 1 {
		q(s, "")
	}
	if r := q(s, ""); r.code != http.StatusTooManyRequests || r.header.Get("Connection") != "close" {
		t.Fatalf("refusal %d in a row: %d %v; want 429 closing the connection", maxOverRate+1, r.code, r.header)
	}

	// Behind a trusted proxy on loopback, each forwarded client has its
	// own bucket, and a forged entry left of the proxy's is not believed.
	p := newServer(t, WithHTTPQueryRate(0.001, 1), WithTrustedProxies(netip.MustParsePrefix("127.0.0.0/8")))
	_, op = operator(t, p)
	publish(t, p, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	for i, tc := range []struct {
		xff  string
		code int
	}{
		{"192.0.2.1", 200},
		{"192.0.2.1", 429},
		{"10.9.9.9, 192.0.2.1", 429}, // the client wrote 10.9.9.9
		{"192.0.2.2", 200},
		{"", 200}, {"", 200}, // the proxy host itself: loopback, not counted
	} {
		if r := q(p, tc.xff); r.code != tc.code {
			t.Fatalf("request %d (X-Forwarded-For %q): %d %s; want %d", i, tc.xff, r.code, r.body, tc.code)
		}
	}
}

// TestHTTPInFlight: one client address has at most its limit of HTTP calls
// and queries running; past it a request is refused at once, not parked on
// the database's writer slot beside its other clients' calls.
func TestHTTPInFlight(t *testing.T) {
	s := newServer(t, WithMaxHTTPInFlight(2), WithLoopbackAddressLimit(true), WithRuntimeOptions(runtime.WithEnergyBudget(300_000_000)))
	_, op := operator(t, s)
	publish(t, s, "a", op, adversarialWasm(t, "attacks.wasm"), 201)
	lo := netip.MustParseAddr("127.0.0.1")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { call(t, s, "a", "infinite_loop", "") }) // runs out of energy, one after the other
	}
	for deadline := time.Now().Add(10 * time.Second); s.httpRates.inflight.count(lo) != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in flight; want 2", s.httpRates.inflight.count(lo))
		}
	}
	r := do(t, s, "POST", "/v1/database/a/sql", op, []byte("SELECT * FROM T"))
	if r.code != http.StatusTooManyRequests || !strings.Contains(r.errorText(t), "client address 127.0.0.1 has its limit of 2 reducer calls and SQL queries running") {
		t.Fatalf("a third request while two run: %d %s", r.code, r.body)
	}
	wg.Wait()
	if n := s.httpRates.inflight.count(lo); n != 0 {
		t.Fatalf("%d still counted after the calls ended", n)
	}
	if r := do(t, s, "POST", "/v1/database/a/sql", op, []byte("SELECT * FROM T")); r.code != 200 {
		t.Fatalf("after the calls: %d %s", r.code, r.body)
	}
}
