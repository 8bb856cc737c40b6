package server

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzClientMessage sends arbitrary text frames to a real server over a real
// WebSocket. Whatever the frame, the server must not crash, and it must go on
// answering: after each frame a well-formed OneOffQuery gets its result, on
// the same connection or, if the frame was bad enough to close it (too
// large), on a new one.
func FuzzClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"CallReducer": {"request_id": 1, "reducer": "add", "args": [2, 3]}}`,
		`{"CallReducer": {"request_id": 2, "reducer": "add", "args": ["x", 3]}}`,
		`{"CallReducer": {"request_id": 3, "reducer": "nope", "args": []}}`,
		`{"CallReducer": {"request_id": 4, "reducer": "create_post", "args": ["hi"]}}`,
		`{"CallReducer": {"request_id": 5, "reducer": "auth", "args": ["not.a.jwt"]}}`,
		`{"Subscribe": {"request_id": 6, "query_set_id": 1, "queries": ["SELECT * FROM Post WHERE post_id > 1"]}}`,
		`{"Subscribe": {"request_id": 7, "query_set_id": 2, "queries": ["SELECT * FROM Nope"]}}`,
		`{"Unsubscribe": {"request_id": 8, "query_set_id": 1}}`,
		`{"OneOffQuery": {"request_id": 9, "query": "SELECT COUNT(*) FROM Post"}}`,
		`{"CallReducer": `, `[1,2]`, `{}`, `null`, `{"Hello": {}}`,
		`{"CallReducer": {}, "Subscribe": {}}`,
		`{"CallReducer": {"request_id": -1, "reducer": "add", "args": [1e99, 3]}}`,
		`{"Subscribe": {"request_id": 1, "query_set_id": 4294967296, "queries": [""]}}`,
	} {
		f.Add(seed)
	}
	s := newServer(f)
	_, op := operator(f, s)
	publish(f, s, "fuzz", op, buildModule(f, appModule), 201)
	const probeID = 4242
	probe := map[string]any{"request_id": probeID, "query": "SELECT COUNT(*) FROM Post"}

	f.Fuzz(func(t *testing.T, msg string) {
		c, _ := connect(t, s, "fuzz", "")
		c.sendRaw(msg)
		c.send("OneOffQuery", probe)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			typ, body, err := c.next()
			if err != nil {
				// The frame closed the connection (for example it was
				// over the size limit): the server must still serve a
				// new one.
				c.c.Close()
				c, _ = connect(t, s, "fuzz", "")
				c.send("OneOffQuery", probe)
				continue
			}
			if typ == "OneOffQueryResult" {
				if id, _ := body["request_id"].(float64); id == probeID {
					if body["error"] != nil {
						b, _ := json.Marshal(body)
						t.Fatalf("the probe query failed after %q: %s", msg, b)
					}
					return
				}
			}
		}
		t.Fatalf("no answer to the probe after %q", msg)
	})
}
