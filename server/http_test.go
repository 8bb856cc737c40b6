package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/runtime"
	"github.com/spacetime-go/spacetime/store"
)

const notLoggedIn = "Unauthorized: You must be logged in to create a post."

// TestTutorialFlow runs the tutorial's steps over HTTP: an unauthenticated
// post fails with the reducer's own message, auth returns an identity and a
// session, and posts by Alice and Bob are theirs.
func TestTutorialFlow(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	r := publish(t, s, "blog", op, buildModule(t, appModule), http.StatusCreated)
	if m := r.json(t); m["created"] != true || m["module_hash"] == "" {
		t.Fatalf("publish answer: %s", r.body)
	}

	r = call(t, s, "blog", "create_post", "", "Hello, unauthenticated world!")
	if r.code != http.StatusUnprocessableEntity {
		t.Fatalf("unauthenticated create_post: %d %s", r.code, r.body)
	}
	if m := r.json(t); m["status"] != "failed" || m["error"] != notLoggedIn {
		t.Fatalf("unauthenticated create_post: %s", r.body)
	}

	sessions := map[string]string{}
	identities := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		m := mustCall(t, s, "blog", "auth", "", devToken(t, s, user))
		id, _ := m["identity"].(string)
		tok, _ := m["token"].(string)
		if len(id) != 64 || tok == "" || m["return"] != id {
			t.Fatalf("auth %s: %v", user, m)
		}
		sessions[user], identities[user] = tok, id
	}
	if identities["alice"] == identities["bob"] {
		t.Fatal("alice and bob got the same identity")
	}
	m := mustCall(t, s, "blog", "create_post", sessions["alice"], "Hello from Alice!")
	if m["return"] != float64(1) || m["offset"] == nil {
		t.Fatalf("alice's post: %v", m)
	}
	mustCall(t, s, "blog", "create_post", sessions["bob"], "Bob was here.")
	if got := mustCall(t, s, "blog", "whoami", sessions["bob"])["return"]; got != identities["bob"] {
		t.Fatalf("whoami with bob's session = %v", got)
	}
	// An operator token is not an end user: reducers see no identity.
	if r := call(t, s, "blog", "create_post", op, "as the operator"); r.json(t)["error"] != notLoggedIn {
		t.Fatalf("create_post with an operator token: %s", r.body)
	}

	_, rows := sql(t, s, "blog", "", "SELECT * FROM Post")
	if len(rows) != 2 || rows[0]["author_identity_id"] != identities["alice"] || rows[1]["content"] != "Bob was here." {
		t.Fatalf("posts: %v", rows)
	}
	r, rows = sql(t, s, "blog", "", "SELECT content FROM Post WHERE author_identity_id = 0x"+identities["bob"])
	if r.code != 200 || len(rows) != 1 || len(rows[0]) != 1 || rows[0]["content"] != "Bob was here." {
		t.Fatalf("projection: %d %s", r.code, r.body)
	}
	r, rows = sql(t, s, "blog", "", "SELECT COUNT(*) FROM Post")
	if r.code != 200 || len(rows) != 1 || rows[0]["count"] != float64(2) {
		t.Fatalf("count: %d %s", r.code, r.body)
	}
}

// TestSecureAppExample publishes the example as it is in the tree. It costs
// a build and a compile of its own; -short skips it, since the CLI's
// end-to-end tests publish the same example to this server.
func TestSecureAppExample(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the CLI tests cover the example against this server")
	}
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "secure", op, buildModule(t, secureApp), http.StatusCreated)
	r := call(t, s, "secure", "create_post", "", "Hello, unauthenticated world!")
	if r.code != http.StatusUnprocessableEntity || r.json(t)["error"] != notLoggedIn {
		t.Fatalf("create_post: %d %s", r.code, r.body)
	}
}

func TestSQLAccess(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	_, other := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), http.StatusCreated)
	mustCall(t, s, "blog", "set_setting", "", "motd", "hello")
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "carol"))["token"].(string)

	tests := []struct {
		name, token, query string
		code               int
		want               []string // in the error, or in the body
		asOwner            bool
	}{
		{"public table", "", "SELECT * FROM Post", 200, nil, false},
		{"private table", "", "SELECT * FROM Setting", 403, []string{"Setting", "grant_access Setting to public"}, false},
		{"row-level grant: own row", sess, "SELECT * FROM User", 200, []string{`"username":"carol"`}, false},
		{"row-level grant: anonymous sees no row", "", "SELECT COUNT(*) FROM User", 200, []string{`"count":0`}, false},
		{"private table in a subquery", "", "SELECT * FROM Post WHERE content IN (SELECT value FROM Setting)", 403, []string{"Setting"}, false},
		{"another operator", other, "SELECT * FROM Setting", 403, []string{"Setting"}, false},
		{"owner reads private", op, "SELECT * FROM Setting WHERE key = 'motd'", 200, []string{`"value":"hello"`}, true},
		{"owner reads public", op, "SELECT * FROM Post", 200, nil, true},
		{"syntax error", "", "SELEC * FROM Post", 400, []string{"1:1"}, false},
		{"unknown table", "", "SELECT * FROM Nope", 400, []string{"Nope"}, false},
		{"unknown column", "", "SELECT * FROM Post WHERE nope = 1", 400, []string{"nope"}, false},
		{"json body", "", `{"query": "SELECT COUNT(*) FROM Post"}`, 200, []string{`"count":1`}, false},
		{"bad json body", "", `{"q": 1}`, 400, []string{"query"}, false},
		{"empty", "", "  ", 400, []string{"empty query"}, false},
	}
	mustCall(t, s, "blog", "create_post", sess, "<b>visible</b>")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, s, "POST", "/v1/database/blog/sql", tc.token, []byte(tc.query))
			if r.code != tc.code {
				t.Fatalf("got %d, want %d: %s", r.code, tc.code, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.body), w) && !strings.Contains(string(r.body), strings.ReplaceAll(w, `"`, `\"`)) {
					t.Errorf("answer lacks %q: %s", w, r.body)
				}
			}
			if r.code == 200 {
				var res []sqlResult
				if err := json.Unmarshal(r.body, &res); err != nil || len(res) != 1 {
					t.Fatalf("%v %s", err, r.body)
				}
				if res[0].AsOwner != tc.asOwner || (r.header.Get("Spacetime-As-Owner") == "true") != tc.asOwner {
					t.Errorf("as_owner = %v, header %q; want %v", res[0].AsOwner, r.header.Get("Spacetime-As-Owner"), tc.asOwner)
				}
			}
		})
	}
}

func TestPublish(t *testing.T) {
	s := newServer(t, WithMaxModuleSize(8<<20))
	opID, op := operator(t, s)
	_, other := operator(t, s)
	v1 := buildModule(t, appModule)

	// Refusals before anything exists.
	if r := publish(t, s, "blog", "", v1, 401); !strings.Contains(r.errorText(t), "operator token") {
		t.Errorf("no token: %s", r.body)
	}
	publish(t, s, "blog", "not-a-token", v1, 401)
	publish(t, s, "bad name!", op, v1, 400)
	if r := publish(t, s, "blog", op, []byte("hello"), 400); !strings.Contains(r.errorText(t), "WebAssembly") {
		t.Errorf("garbage: %s", r.body)
	}
	if r := publish(t, s, "blog", op, append([]byte("\x00asm\x01\x00\x00\x00"), 0xff, 0xff), 400); !strings.Contains(r.errorText(t), "invalid module") {
		t.Errorf("broken wasm: %s", r.body)
	}
	big := append([]byte("\x00asm"), make([]byte, 8<<20)...)
	if r := publish(t, s, "blog", op, big, 413); !strings.Contains(r.errorText(t), "too large") {
		t.Errorf("oversized: %s", r.body)
	}

	publish(t, s, "blog", op, v1, 201)
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "alice"))["token"].(string)
	mustCall(t, s, "blog", "create_post", sess, "before the update")
	if r := publish(t, s, "blog", sess, v1, 401); !strings.Contains(r.errorText(t), "operator token") {
		t.Errorf("session token: %s", r.body)
	}
	if r := publish(t, s, "blog", other, v1, 403); !strings.Contains(r.errorText(t), "another identity") {
		t.Errorf("other owner: %s", r.body)
	}

	// Additive: a new table; data and sessions survive.
	r := publish(t, s, "blog", op, buildModule(t, appV2Module), 200)
	m := r.json(t)
	if m["created"] != false || fmt.Sprint(m["added_tables"]) != "[Likes]" {
		t.Fatalf("republish: %s", r.body)
	}
	mustCall(t, s, "blog", "like", "", 1)
	mustCall(t, s, "blog", "create_post", sess, "after the update")
	if _, rows := sql(t, s, "blog", "", "SELECT * FROM Post"); len(rows) != 2 {
		t.Fatalf("posts after republish: %v", rows)
	}
	if _, rows := sql(t, s, "blog", "", "SELECT * FROM Likes"); len(rows) != 1 {
		t.Fatalf("likes: %v", rows)
	}

	// Incompatible: Post gains a column.
	r = publish(t, s, "blog", op, buildModule(t, appBad), 409)
	if e := r.errorText(t); !strings.Contains(e, "Post") || !strings.Contains(e, "incompatible") {
		t.Errorf("incompatible republish: %s", e)
	}
	mustCall(t, s, "blog", "like", "", 2) // v2 still serves

	// A module without Likes: its rows are kept, the answer says so, and a
	// module that declares the table again finds them.
	r = publish(t, s, "blog", op, v1, 200)
	if m := r.json(t); fmt.Sprint(m["kept_tables"]) != "[Likes]" || m["added_tables"] != nil {
		t.Fatalf("republish without Likes: %s", r.body)
	}
	r = publish(t, s, "blog", op, buildModule(t, appV2Module), 200)
	if m := r.json(t); m["kept_tables"] != nil || m["added_tables"] != nil {
		t.Fatalf("republish with Likes again: %s", r.body)
	}
	if _, rows := sql(t, s, "blog", "", "SELECT * FROM Likes"); len(rows) != 2 {
		t.Fatalf("likes after the table came back: %v", rows)
	}

	r = do(t, s, "GET", "/v1/database", "", nil)
	var list struct {
		Databases []dbInfo `json:"databases"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Databases) != 1 || list.Databases[0].Owner.String() != opID || list.Databases[0].Name != "blog" {
		t.Fatalf("list: %v %s", err, r.body)
	}
	r = do(t, s, "GET", "/v1/database/blog/schema", "", nil)
	if m := r.json(t); m["module_hash"] != list.Databases[0].ModuleHash || !strings.Contains(string(r.body), `"name":"Likes"`) {
		t.Fatalf("schema: %s", r.body)
	}

	// Delete: owner only.
	if r := do(t, s, "DELETE", "/v1/database/blog", "", nil); r.code != 401 {
		t.Errorf("delete without token: %d", r.code)
	}
	if r := do(t, s, "DELETE", "/v1/database/blog", other, nil); r.code != 403 {
		t.Errorf("delete by another: %d", r.code)
	}
	if r := do(t, s, "DELETE", "/v1/database/blog", op, nil); r.code != 200 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if r := call(t, s, "blog", "add", "", 1, 2); r.code != 404 {
		t.Errorf("call after delete: %d", r.code)
	}
	// The name is free again, for anyone.
	publish(t, s, "blog", other, v1, 201)
	if _, rows := sql(t, s, "blog", "", "SELECT * FROM Post"); len(rows) != 0 {
		t.Fatalf("a recreated database has old rows: %v", rows)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "alice"))["token"].(string)
	mustCall(t, s, "blog", "create_post", sess, "survives a restart")
	hash := do(t, s, "GET", "/v1/database/blog/schema", "", nil).json(t)["module_hash"]
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, dir)
	if got := do(t, s2, "GET", "/v1/database/blog/schema", "", nil).json(t)["module_hash"]; got != hash {
		t.Fatalf("module after restart: %v, want %v", got, hash)
	}
	if _, rows := sql(t, s2, "blog", "", "SELECT * FROM Post"); len(rows) != 1 || rows[0]["content"] != "survives a restart" {
		t.Fatalf("rows after restart: %v", rows)
	}
	// The same key signs: the session and the operator token still work.
	mustCall(t, s2, "blog", "create_post", sess, "after the restart")
	publish(t, s2, "blog", op, buildModule(t, appModule), 200)
}

func TestMalformedRequests(t *testing.T) {
	s := newServer(t, WithMaxMessageSize(1<<10))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	tests := []struct {
		name, method, path, token, body string
		code                            int
		want                            string
	}{
		{"bad json", "POST", "/v1/database/blog/call/add", "", `[1,`, 400, "not valid JSON"},
		{"not an array", "POST", "/v1/database/blog/call/add", "", `{"a":1}`, 400, "JSON array"},
		{"too few args", "POST", "/v1/database/blog/call/add", "", `[1]`, 400, "add(a: i32, b: i32)"},
		{"wrong type", "POST", "/v1/database/blog/call/add", "", `[1, "x"]`, 400, "b"},
		{"out of range", "POST", "/v1/database/blog/call/add", "", `[1, 3000000000]`, 400, "b"},
		{"unknown database", "POST", "/v1/database/nope/call/add", "", `[]`, 404, `no database named "nope"`},
		{"unknown reducer", "POST", "/v1/database/blog/call/nope", "", `[]`, 404, `no reducer "nope"`},
		{"lifecycle reducer", "POST", "/v1/database/blog/call/client_connected", "", `[]`, 400, "lifecycle"},
		{"body too large", "POST", "/v1/database/blog/call/fail", "", `["` + strings.Repeat("x", 2000) + `"]`, 413, "too large"},
		{"bad bearer", "POST", "/v1/database/blog/call/add", "garbage", `[1,2]`, 401, "bearer token"},
		{"unknown route", "GET", "/v1/nope", "", "", 404, "no such route"},
		{"wrong method", "GET", "/v1/database/blog/call/add", "", "", 405, "not allowed"},
		{"logs without token", "GET", "/v1/database/blog/logs", "", "", 401, "operator token"},
		{"bad log count", "GET", "/v1/database/blog/logs?n=x", op, "", 400, "n="},
		{"subscribe without upgrade", "GET", "/v1/database/blog/subscribe", "", "", 400, "WebSocket"},
		{"public key format", "GET", "/v1/identity/public-key?format=xml", "", "", 400, "format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, s, tc.method, tc.path, tc.token, []byte(tc.body))
			if r.code != tc.code {
				t.Fatalf("got %d, want %d: %s", r.code, tc.code, r.body)
			}
			if e := r.errorText(t); !strings.Contains(e, tc.want) {
				t.Errorf("error %q lacks %q", e, tc.want)
			}
		})
	}
}

func TestReducerOutcomes(t *testing.T) {
	s := newServer(t, WithRuntimeOptions(runtime.WithDeadline(200*time.Millisecond)))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	if m := mustCall(t, s, "blog", "add", "", 40, 2); m["return"] != float64(42) || m["status"] != "committed" || m["energy_used"].(float64) <= 0 {
		t.Fatalf("add: %v", m)
	}
	r := call(t, s, "blog", "fail", "", "my own message")
	if r.code != 422 || r.json(t)["error"] != "my own message" {
		t.Fatalf("fail: %d %s", r.code, r.body)
	}
	r = call(t, s, "blog", "crash", "", 3)
	if e := r.json(t)["error"]; r.code != 500 || !strings.HasPrefix(r2s(e), "the module trapped: ") || !strings.Contains(r2s(e), "code 3") {
		t.Fatalf("crash: %d %s", r.code, r.body)
	}
	if m := mustCall(t, s, "blog", "add", "", 1, 1); m["return"] != float64(2) {
		t.Fatalf("after a trap: %v", m)
	}
	r = call(t, s, "blog", "spin", "")
	if r.code != 504 || !strings.Contains(r.errorText(t), "deadline") && !strings.Contains(r.errorText(t), "out of energy") {
		t.Fatalf("spin: %d %s", r.code, r.body)
	}
	if energy, _ := r.json(t)["energy_used"].(float64); energy <= 0 {
		t.Errorf("spin: a stopped call reports no energy: %s", r.body)
	}
	r = call(t, s, "blog", "auth", "", "not a jwt")
	if r.code != 422 || r.json(t)["token"] != nil {
		t.Fatalf("auth with a bad token: %d %s", r.code, r.body)
	}
	// A session token presented as a user token is refused by jwt_verify.
	sess := mustCall(t, s, "blog", "auth", "", devToken(t, s, "dan"))["token"].(string)
	if r := call(t, s, "blog", "auth", "", sess); r.code != 422 || !strings.Contains(r.errorText(t), "session") {
		t.Fatalf("auth with a session token: %d %s", r.code, r.body)
	}
	// Public key endpoints.
	if r := do(t, s, "GET", "/v1/identity/public-key", "", nil); r.code != 200 || !bytes.Contains(r.body, []byte("PUBLIC KEY")) {
		t.Fatalf("public key: %d %s", r.code, r.body)
	}
	if r := do(t, s, "GET", "/v1/identity/public-key?format=jwks", "", nil); r.code != 200 || !bytes.Contains(r.body, []byte(`"keys"`)) {
		t.Fatalf("jwks: %d %s", r.code, r.body)
	}
	if r := do(t, s, "GET", "/v1/ping", "", nil); r.code != 200 || r.json(t)["ok"] != true {
		t.Fatalf("ping: %d %s", r.code, r.body)
	}
	if r := do(t, s, "GET", "/", "", nil); r.code != 200 || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("admin page: %d %s", r.code, r.body)
	}
}

func TestLogs(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	_, other := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	mustCall(t, s, "blog", "auth", "", devToken(t, s, "erin"))

	if r := do(t, s, "GET", "/v1/database/blog/logs", other, nil); r.code != 403 {
		t.Fatalf("logs by another operator: %d", r.code)
	}
	r := do(t, s, "GET", "/v1/database/blog/logs?n=10", op, nil)
	if r.code != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("logs: %d %v", r.code, r.header)
	}
	var line runtime.LogLine
	if err := json.Unmarshal(bytes.TrimSpace(r.body), &line); err != nil || line.Message != "authenticated erin" || line.Reducer != "auth" {
		t.Fatalf("log line: %v %s", err, r.body)
	}

	// Follow: a line logged later arrives on the open stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/v1/database/blog/logs?n=0&follow", nil)
	req.Header.Set("Authorization", "Bearer "+op)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	mustCall(t, s, "blog", "auth", "", devToken(t, s, "frank"))
	sc := bufio.NewScanner(res.Body)
	if !sc.Scan() {
		t.Fatalf("follow ended: %v", sc.Err())
	}
	if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Message != "authenticated frank" {
		t.Fatalf("followed line: %v %s", err, sc.Bytes())
	}
}

func TestMetrics(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	mustCall(t, s, "blog", "add", "", 1, 2)
	mustCall(t, s, "blog", "add", "", 3, 4)
	call(t, s, "blog", "fail", "", "no")
	mustCall(t, s, "blog", "set_setting", "", "k", "v")
	publish(t, s, "blog", op, buildModule(t, appModule), 200)
	// Commits are counted when they become durable, asynchronously.
	var r response
	for deadline := time.Now().Add(5 * time.Second); ; {
		r = do(t, s, "GET", "/metrics", "", nil)
		if strings.Contains(string(r.body), `spacetime_commits_total{database="blog"}`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`spacetime_reducer_calls_total{database="blog",reducer="add",status="committed"} 2`,
		`spacetime_reducer_calls_total{database="blog",reducer="fail",status="failed"} 1`,
		`spacetime_reducer_duration_seconds_count{database="blog",reducer="add"} 2`,
		`spacetime_publishes_total{database="blog",result="created"} 1`,
		`spacetime_publishes_total{database="blog",result="updated"} 1`,
		`spacetime_commits_total{database="blog"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A second server counts for itself.
	s2 := newServer(t)
	if r := do(t, s2, "GET", "/metrics", "", nil); strings.Contains(string(r.body), `database="blog"`) {
		t.Error("a second server shares the first one's metrics")
	}
}

// TestAuthConfig: issuers come from the config file; with the dev issuer
// off, tokens from `spacetime token mint` are refused while the external
// issuer's are accepted and give a session.
func TestAuthConfig(t *testing.T) {
	secret := strings.Repeat("k", 32)
	t.Setenv("SERVER_TEST_HMAC", secret)
	cfg := filepath.Join(t.TempDir(), "spacetime.toml")
	os.WriteFile(cfg, []byte(`
[auth]
dev_issuer = false

[[auth.issuers]]
issuer = "https://auth.example.com/"
audiences = ["my-app"]
algorithms = ["HS256"]
hmac_secret_env = "SERVER_TEST_HMAC"

[[databases.club.auth.issuers]]
issuer = "https://club.example.com/"
algorithms = ["HS256"]
hmac_secret_env = "SERVER_TEST_HMAC_CLUB"
`), 0o600)
	clubSecret := strings.Repeat("c", 32)
	t.Setenv("SERVER_TEST_HMAC_CLUB", clubSecret)
	s := newServer(t, WithConfigFile(cfg))
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	publish(t, s, "club", op, buildModule(t, appModule), 201)

	// A database's own issuer is trusted by that database only.
	clubTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://club.example.com/", "sub": "member", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(clubSecret))
	if m := mustCall(t, s, "club", "auth", "", clubTok); m["token"] == nil {
		t.Fatalf("club token on club: %v", m)
	}
	if r := call(t, s, "blog", "auth", "", clubTok); r.code != 422 || !strings.Contains(r.errorText(t), "not trusted") {
		t.Fatalf("club token on blog: %d %s", r.code, r.body)
	}

	if r := call(t, s, "blog", "auth", "", devToken(t, s, "mallory")); r.code != 422 || !strings.Contains(r.errorText(t), "not trusted") {
		t.Fatalf("dev token with the dev issuer off: %d %s", r.code, r.body)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://auth.example.com/", "sub": "user-42", "aud": "my-app",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	m := mustCall(t, s, "blog", "auth", "", tok)
	if want := auth.IdentityFromClaims("https://auth.example.com/", "user-42").String(); m["identity"] != want || m["token"] == nil {
		t.Fatalf("external token: %v, want identity %s", m, want)
	}
	mustCall(t, s, "blog", "create_post", m["token"].(string), "from an external identity")

	// A broken config fails at start, with the reason.
	os.WriteFile(cfg, []byte("[[auth.issuers]]\nissuer = \"x\"\nalgorithms = [\"none\"]\n"), 0o600)
	if _, err := New(context.Background(), WithDataDir(t.TempDir()), WithConfigFile(cfg)); err == nil || !strings.Contains(err.Error(), "none") {
		t.Fatalf("broken config: %v", err)
	}
}

// TestOrphanDatabase: a database left in the store without a module (a
// first publish interrupted before its module was recorded) does not keep
// the server from starting, and publishing to it adopts it with its data.
func TestOrphanDatabase(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	wasm := buildModule(t, appModule)
	// The module's tables, from a first server that publishes it elsewhere.
	s := startServer(t, dir)
	_, op := operator(t, s)
	publish(t, s, "source", op, wasm, 201)
	tables := s.lookupTables(t, "source")
	s.Close(ctx)

	st, err := store.Open(ctx, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := st.CreateDatabase(ctx, "orphan", tables)
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := db.Begin(ctx)
	tid, _ := db.TableID("Setting")
	row, _ := abi.EncodeRow(nil, []abi.Type{abi.TypeString, abi.TypeString}, []abi.Value{abi.String("kept"), abi.String("yes")})
	if _, err := tx.Insert(tid, row); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()

	s2 := startServer(t, dir)
	if r := do(t, s2, "GET", "/v1/database", "", nil); strings.Contains(string(r.body), "orphan") {
		t.Fatalf("a database without a module is listed: %s", r.body)
	}
	publish(t, s2, "orphan", op, wasm, 201)
	if _, rows := sql(t, s2, "orphan", op, "SELECT * FROM Setting WHERE key = 'kept'"); len(rows) != 1 {
		t.Fatalf("the orphan's data: %v", rows)
	}
}
