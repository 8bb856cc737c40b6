package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestWSPipelinedCalls: a client that sends many calls without waiting gets
// every answer once, in request order, whatever mix of committed writes,
// read-only calls, failures and refusals it sent, and a Subscribe sent
// among them is answered after the calls before it; the writes it was told
// were committed survive a restart.
func TestWSPipelinedCalls(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	_, op := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), 201)
	// Several clients at once, so that commits queue behind each other
	// and answers are filled in out of order.
	const clients = 4
	var posts [clients]int
	var wg sync.WaitGroup
	for ci := range clients {
		c, _ := connect(t, s, "blog", "")
		wg.Go(func() {
			posts[ci] = pipelined(t, s, c, ci)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for _, n := range posts {
		total += n
	}
	s.Close(context.Background())
	s2 := startServer(t, dir)
	if _, rows := sql(t, s2, "blog", "", "SELECT COUNT(*) FROM Post"); fmt.Sprint(rows[0]["count"]) != fmt.Sprint(total) {
		t.Fatalf("after restart: %v posts, want %d", rows, total)
	}
}

// pipelined sends the mixed calls of TestWSPipelinedCalls on c without
// waiting, checks the answers and returns the posts created.
func pipelined(t *testing.T, s *Server, c *wsClient, who int) int {
	c.send("CallReducer", map[string]any{"request_id": 0, "reducer": "auth", "args": []any{devToken(t, s, fmt.Sprint("user", who))}})
	if r := c.expect("ReducerResult"); r["status"] != "committed" {
		t.Errorf("auth: %v", r)
		return 0
	}
	c.expect("IdentityChanged")
	type call struct {
		reducer string
		args    []any
		status  string
		check   func(r map[string]any) bool
	}
	kinds := []call{
		{"create_post", []any{"p"}, "committed", func(r map[string]any) bool { _, ok := r["return"].(float64); return ok }},
		{"add", []any{2, 3}, "committed", func(r map[string]any) bool { return r["return"] == float64(5) }},
		{"fail", []any{"no"}, "failed", func(r map[string]any) bool { return r["error"] == "no" }},
		{"add", []any{1, "x"}, "failed", func(r map[string]any) bool { return strings.Contains(r2s(r["error"]), "bad arguments") }},
		{"nope", []any{}, "failed", func(r map[string]any) bool { return strings.Contains(r2s(r["error"]), "no reducer") }},
		{"create_post", []any{"q"}, "committed", func(r map[string]any) bool { _, ok := r["return"].(float64); return ok }},
	}
	const n = 120
	const subscribeAt = 70
	for i := 1; i <= n; i++ {
		if i == subscribeAt {
			c.send("Subscribe", map[string]any{"request_id": 1000, "query_set_id": 1, "queries": []string{"SELECT * FROM Post"}})
		}
		k := kinds[i%len(kinds)]
		c.send("CallReducer", map[string]any{"request_id": i, "reducer": k.reducer, "args": k.args})
	}
	var lastOffset, lastPost float64
	posts := 0
	for i := 1; i <= n; i++ {
		if i == subscribeAt {
			if r := c.expect("SubscribeApplied"); r["request_id"] != float64(1000) {
				t.Errorf("SubscribeApplied: %v", r)
				return posts
			}
		}
		typ, r, err := c.next()
		for err == nil && typ == "TransactionUpdate" {
			typ, r, err = c.next()
		}
		if err != nil || typ != "ReducerResult" {
			t.Errorf("answer %d: %s %v %v", i, typ, r, err)
			return posts
		}
		k := kinds[i%len(kinds)]
		if r["request_id"] != float64(i) || r["status"] != k.status || !k.check(r) {
			t.Errorf("answer %d to %s%v: %v", i, k.reducer, k.args, r)
			return posts
		}
		if k.reducer == "create_post" {
			posts++
			off, _ := r["offset"].(float64)
			id, _ := r["return"].(float64)
			if off <= lastOffset || id <= lastPost {
				t.Errorf("answer %d: offset %v, post %v after offset %v, post %v", i, off, id, lastOffset, lastPost)
				return posts
			}
			lastOffset, lastPost = off, id
		}
	}

	return posts
}
