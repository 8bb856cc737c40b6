package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// viewer is a WebSocket client that keeps a cache per query set, applying
// SubscribeApplied and every TransactionUpdate as a real client would, and
// fails on a delete of a row it does not have.
type viewer struct {
	name string
	c    *wsClient
	sets map[int]map[string]map[string]int // set -> table -> row JSON -> count
	errs []string
	// lastSQL is the latest SubscriptionError or OneOffQueryResult.
	subErr, oneOff map[string]any
}

func newViewer(t *testing.T, s *Server, name, token string) *viewer {
	c, _ := connect(t, s, "secure", token)
	return &viewer{name: name, c: c, sets: map[int]map[string]map[string]int{}}
}

func canonRow(r any) string { b, _ := json.Marshal(r); return string(b) }

// handle applies one message.
func (v *viewer) handle(typ string, body map[string]any) {
	switch typ {
	case "SubscribeApplied":
		set := int(body["query_set_id"].(float64))
		cache := map[string]map[string]int{}
		for _, tb := range body["tables"].([]any) {
			tm := tb.(map[string]any)
			rows := map[string]int{}
			for _, r := range tm["rows"].([]any) {
				rows[canonRow(r)]++
			}
			cache[tm["table"].(string)] = rows
		}
		v.sets[set] = cache
	case "TransactionUpdate":
		for _, qs := range body["query_sets"].([]any) {
			q := qs.(map[string]any)
			set := int(q["query_set_id"].(float64))
			cache := v.sets[set]
			if cache == nil {
				v.errs = append(v.errs, fmt.Sprintf("update for unknown set %d", set))
				continue
			}
			for _, tb := range q["tables"].([]any) {
				tm := tb.(map[string]any)
				name := tm["table"].(string)
				if cache[name] == nil {
					cache[name] = map[string]int{}
				}
				for _, d := range tm["deletes"].([]any) {
					k := canonRow(d)
					if cache[name][k] == 0 {
						v.errs = append(v.errs, fmt.Sprintf("set %d: delete of a row it does not have: %s", set, k))
						continue
					}
					if cache[name][k]--; cache[name][k] == 0 {
						delete(cache[name], k)
					}
				}
				for _, r := range tm["inserts"].([]any) {
					cache[name][canonRow(r)]++
				}
			}
		}
	case "SubscriptionError":
		v.subErr = body
		if id, ok := body["query_set_id"].(float64); ok && body["request_id"] == nil {
			delete(v.sets, int(id)) // dropped by the server
		}
	case "OneOffQueryResult":
		v.oneOff = body
	}
}

// until reads messages until stop says so.
func (v *viewer) until(t *testing.T, what string, stop func(typ string, body map[string]any) bool) {
	t.Helper()
	for {
		typ, body, err := v.c.next()
		if err != nil {
			t.Fatalf("%s: waiting for %s: %v", v.name, what, err)
		}
		v.handle(typ, body)
		if stop(typ, body) {
			return
		}
	}
}

func (v *viewer) subscribe(t *testing.T, set int, queries ...string) {
	t.Helper()
	v.c.send("Subscribe", map[string]any{"request_id": set, "query_set_id": set, "queries": queries})
	v.until(t, "SubscribeApplied", func(typ string, body map[string]any) bool {
		if typ == "SubscriptionError" {
			t.Fatalf("%s: subscribe %v: %v", v.name, queries, body["error"])
		}
		return typ == "SubscribeApplied"
	})
}

// sync reads until the update carrying post marker in the marker set
// (every viewer watches Post in set 99): everything committed before it has
// been applied.
func (v *viewer) sync(t *testing.T, marker string) {
	t.Helper()
	v.until(t, "marker "+marker, func(typ string, body map[string]any) bool {
		return typ == "TransactionUpdate" && strings.Contains(canonRow(body), marker)
	})
}

func (v *viewer) rows(set int, table string) []string {
	var out []string
	for r, n := range v.sets[set][table] {
		for i := 0; i < n; i++ {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// sqlRows runs a query over HTTP and returns its rows in the viewer's form.
func sqlRowsAs(t *testing.T, s *Server, token, q string) []string {
	t.Helper()
	r, rows := sql(t, s, "secure", token, q)
	if r.code != http.StatusOK {
		t.Fatalf("sql %q: %d %s", q, r.code, r.body)
	}
	out := []string{}
	for _, row := range rows {
		out = append(out, canonRow(row))
	}
	sort.Strings(out)
	return out
}

// TestGrantsEveryReadPath runs the secure_app example on a real server:
// Alice (an admin by her token's claim), Bob and an anonymous client, plus
// the owner, over real WebSockets and HTTP. Each sees exactly what the
// grants allow through subscriptions (initial rows and live updates),
// one-off queries and the SQL endpoint; a role change moves rows into view
// in the transaction that made it; signing in over the WebSocket recomputes
// the view.
func TestGrantsEveryReadPath(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	publish(t, s, "secure", op, buildModule(t, secureApp), http.StatusCreated)
	login := func(sub string, claims map[string]any) (identity, session string) {
		tok, err := s.key.Mint(sub, time.Hour, claims)
		if err != nil {
			t.Fatal(err)
		}
		m := mustCall(t, s, "secure", "auth", "", tok)
		return m["identity"].(string), m["token"].(string)
	}
	aliceID, alice := login("alice", map[string]any{"role": "admin"})
	bobID, bob := login("bob", nil)
	carolID, _ := login("carol", nil)

	viewers := []*viewer{newViewer(t, s, "alice", alice), newViewer(t, s, "bob", bob), newViewer(t, s, "anonymous", ""), newViewer(t, s, "owner", op)}
	tokens := []string{alice, bob, "", op}
	queries := map[int]string{1: "SELECT * FROM PrivateMessage", 2: "SELECT * FROM AdminDashboard", 3: "SELECT * FROM User"}
	for _, v := range viewers {
		v.subscribe(t, 99, "SELECT * FROM Post")
		for set := 1; set <= 3; set++ {
			v.subscribe(t, set, queries[set])
		}
	}
	markers := 0
	// step commits a marker post after the calls and checks every viewer's
	// cache against the same query over HTTP SQL as the same identity, and
	// against the expected counts (alice, bob, anonymous, owner).
	step := func(name string, want map[int][4]int) {
		t.Helper()
		markers++
		marker := fmt.Sprintf("marker %d", markers)
		mustCall(t, s, "secure", "create_post", alice, marker)
		for i, v := range viewers {
			v.sync(t, marker)
			for set, q := range queries {
				got := v.rows(set, strings.TrimPrefix(q, "SELECT * FROM "))
				if fresh := sqlRowsAs(t, s, tokens[i], q); strings.Join(got, "\n") != strings.Join(fresh, "\n") {
					t.Errorf("%s: %s's %q over the WebSocket:\n%v\nover SQL:\n%v", name, v.name, q, got, fresh)
				}
				if w, ok := want[set]; ok && len(got) != w[i] {
					t.Errorf("%s: %s sees %d rows of %q, want %d", name, v.name, len(got), q, w[i])
				}
			}
			if len(v.errs) > 0 {
				t.Fatalf("%s: %s: %v", name, v.name, v.errs)
			}
		}
	}
	step("initial", map[int][4]int{1: {0, 0, 0, 0}, 2: {0, 0, 0, 0}, 3: {3, 1, 0, 3}})

	mustCall(t, s, "secure", "send_message", bob, aliceID, "hi alice")
	mustCall(t, s, "secure", "send_message", alice, bobID, "hi bob")
	mustCall(t, s, "secure", "send_message", alice, carolID, "hi carol")
	mustCall(t, s, "secure", "post_admin_note", alice, "budget review friday")
	if r := call(t, s, "secure", "post_admin_note", bob, "let me in"); r.code != http.StatusUnprocessableEntity || r.errorText(t) != "Unauthorized: Only an admin can do this." {
		t.Fatalf("bob's admin note: %d %s", r.code, r.body)
	}
	if r := call(t, s, "secure", "make_admin", bob, bobID); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("bob made himself admin: %d %s", r.code, r.body)
	}
	step("messages", map[int][4]int{1: {3, 2, 0, 3}, 2: {1, 0, 0, 1}, 3: {3, 1, 0, 3}})

	// Alice makes Bob admin: in that one transaction's update Bob receives
	// the dashboard and every profile.
	mustCall(t, s, "secure", "make_admin", alice, bobID)
	step("bob is admin", map[int][4]int{1: {3, 2, 0, 3}, 2: {1, 1, 0, 1}, 3: {3, 3, 0, 3}})

	// One-off queries over the WebSocket obey the same grants.
	oneOff := func(v *viewer, q string) map[string]any {
		v.c.send("OneOffQuery", map[string]any{"request_id": 7, "query": q})
		v.until(t, "OneOffQueryResult", func(typ string, _ map[string]any) bool { return typ == "OneOffQueryResult" })
		return v.oneOff
	}
	if r := oneOff(viewers[2], "SELECT COUNT(*) FROM PrivateMessage"); canonRow(r["tables"]) != `[{"rows":[{"count":0}],"table":"PrivateMessage"}]` {
		t.Errorf("anonymous one-off count: %v", r)
	}
	if r := oneOff(viewers[1], "SELECT content FROM PrivateMessage WHERE sender = :caller"); canonRow(r["tables"]) != `[{"rows":[{"content":"hi alice"}],"table":"PrivateMessage"}]` {
		t.Errorf("bob's one-off: %v", r)
	}
	if r := oneOff(viewers[3], "SELECT COUNT(*) FROM PrivateMessage"); r["as_owner"] != true {
		t.Errorf("the owner's one-off is not marked as_owner: %v", r)
	}
	if r := oneOff(viewers[2], "SELECT nope FROM PrivateMessage"); !strings.Contains(r2s(r["error"]), `no column "nope"`) {
		t.Errorf("unknown column: %v", r)
	}
	// SQL: the same rules; errors are errors, not empty answers.
	if r := do(t, s, "POST", "/v1/database/secure/sql", "", []byte("SELECT * FROM Nope")); r.code != http.StatusBadRequest {
		t.Errorf("unknown table over SQL: %d %s", r.code, r.body)
	}
	if r := do(t, s, "POST", "/v1/database/secure/sql", op, []byte("SELECT * FROM AdminDashboard")); r.code != 200 || r.header.Get("Spacetime-As-Owner") != "true" {
		t.Errorf("owner SQL: %d %v %s", r.code, r.header, r.body)
	}

	// The anonymous client signs in as carol over its WebSocket: one
	// recomputed update brings her message and her profile.
	anon := viewers[2]
	tok, _ := s.key.Mint("carol", time.Hour, nil)
	anon.c.send("CallReducer", map[string]any{"request_id": 50, "reducer": "auth", "args": []any{tok}})
	recomputed := false
	anon.until(t, "the recomputed update", func(typ string, body map[string]any) bool {
		if typ == "TransactionUpdate" {
			tx, _ := body["tx"].(map[string]any)
			recomputed = tx["recomputed"] == true
		}
		return recomputed
	})
	anon.name, tokens[2] = "carol", ""
	for _, r := range []int{1, 3} {
		if n := len(anon.rows(r, strings.TrimPrefix(queries[r], "SELECT * FROM "))); n != 1 {
			t.Errorf("carol after signing in: %d rows of %q, want 1", n, queries[r])
		}
	}
	// Every cache still equals SQL for the same identity (carol's SQL
	// needs her own session).
	_, carol := login("carol", nil)
	tokens[2] = carol
	step("carol signed in", map[int][4]int{1: {3, 2, 1, 3}, 2: {1, 1, 0, 1}, 3: {3, 3, 1, 3}})
}

// TestPublishRefusesBadGrant: a module whose grant names a column that does
// not exist is refused at publish with the statement's file, line and
// column. (spacetime generate refuses it earlier; this module's embedded
// description was edited after generation, as a hand-made module could be.)
func TestPublishRefusesBadGrant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	gen, err := os.ReadFile(filepath.Join("..", secureApp, "spacetime_generated.go"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(gen), `"where": "sender = :caller or recipient = :caller"`, `"where": "sendr = :caller or recipient = :caller"`, 1)
	if bad == string(gen) {
		t.Fatal("the generated code does not embed the grant as expected")
	}
	dir := t.TempDir()
	genPath, _ := filepath.Abs(filepath.Join("..", secureApp, "spacetime_generated.go"))
	badPath := filepath.Join(dir, "gen.go")
	if err := os.WriteFile(badPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{genPath: badPath}})
	overlayPath := filepath.Join(dir, "overlay.json")
	os.WriteFile(overlayPath, overlay, 0o644)
	out := filepath.Join(dir, "bad.wasm")
	cmd := exec.Command("go", "build", "-overlay="+overlayPath, "-buildmode=c-shared", "-o", out, "./"+secureApp)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t)
	_, op := operator(t, s)
	r := publish(t, s, "bad", op, wasm, http.StatusBadRequest)
	msg := r.errorText(t)
	if !strings.Contains(msg, `schema.spacetimedb:`) || !strings.Contains(msg, `grant_access PrivateMessage where sendr = :caller or recipient = :caller (column 1 of the rule): table PrivateMessage has no column "sendr"`) {
		t.Fatalf("publish error: %s", msg)
	}
	if r := do(t, s, "GET", "/v1/database/bad/schema", "", nil); r.code != http.StatusNotFound {
		t.Fatalf("the refused database exists: %d", r.code)
	}
}

// TestGrantsSessionLapse: a client's view follows its identity over a real
// WebSocket: signing in brings its messages (one recomputed update), the
// session lapsing takes them away again (deletes of exactly the rows it
// had), and no other client's rows ever arrive.
func TestGrantsSessionLapse(t *testing.T) {
	s := newServer(t, WithSessionTTL(1500*time.Millisecond))
	_, op := operator(t, s)
	publish(t, s, "secure", op, buildModule(t, secureApp), http.StatusCreated)
	login := func(sub string) (string, string) {
		m := mustCall(t, s, "secure", "auth", "", devToken(t, s, sub))
		return m["identity"].(string), m["token"].(string)
	}
	_, alice := login("alice")
	bobID, _ := login("bob")
	carolID, _ := login("carol")
	mustCall(t, s, "secure", "send_message", alice, bobID, "for bob")
	mustCall(t, s, "secure", "send_message", alice, carolID, "for carol")

	v := newViewer(t, s, "bob", "")
	v.subscribe(t, 1, "SELECT * FROM PrivateMessage")
	if n := len(v.rows(1, "PrivateMessage")); n != 0 {
		t.Fatalf("anonymous: %d messages", n)
	}
	v.c.send("CallReducer", map[string]any{"request_id": 2, "reducer": "auth", "args": []any{devToken(t, s, "bob")}})
	recomputed := func(what string) map[string]any {
		var got map[string]any
		v.until(t, what, func(typ string, body map[string]any) bool {
			if typ != "TransactionUpdate" {
				return false
			}
			tx, _ := body["tx"].(map[string]any)
			got = body
			return tx["recomputed"] == true
		})
		return got
	}
	recomputed("the update after auth")
	if got := v.rows(1, "PrivateMessage"); len(got) != 1 || !strings.Contains(got[0], "for bob") {
		t.Fatalf("signed in as bob: %v", got)
	}
	// The session lapses (1.5 s): the connection is anonymous again.
	upd := recomputed("the update after the session lapsed")
	if got := v.rows(1, "PrivateMessage"); len(got) != 0 {
		t.Fatalf("after the lapse: %v", got)
	}
	if strings.Contains(canonRow(upd), "for carol") {
		t.Fatalf("carol's message reached bob: %v", upd)
	}
	if len(v.errs) > 0 {
		t.Fatal(v.errs)
	}
}
