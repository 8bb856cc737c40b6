package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHTTPCall measures a reducer call over HTTP from parallel clients:
// JSON in, wasm call, commit, JSON out. "add" writes nothing; "write"
// upserts a row, so its commits are durable and grouped.
func BenchmarkHTTPCall(b *testing.B) {
	s := newServer(b)
	_, op := operator(b, s)
	publish(b, s, "bench", op, buildModule(b, appModule), 201)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, bc := range []struct {
		name, reducer string
		args          func(i int64) string
	}{
		{"add", "add", func(i int64) string { return fmt.Sprintf("[%d, 1]", i%1000) }},
		{"write", "set_setting", func(i int64) string { return fmt.Sprintf(`["k%d", "v"]`, i%1000) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n atomic.Int64
			url := s.URL() + "/v1/database/bench/call/" + bc.reducer
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Post(url, "application/json", bytes.NewBufferString(bc.args(n.Add(1))))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
		})
	}
}

// BenchmarkFanout measures one committed post reaching every subscribed
// WebSocket client: the time per op runs from the HTTP call to the last
// client's TransactionUpdate.
func BenchmarkFanout(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := newServer(b)
			_, op := operator(b, s)
			publish(b, s, "bench", op, buildModule(b, appModule), 201)
			sess := mustCall(b, s, "bench", "auth", "", devToken(b, s, "bench"))["token"].(string)
			var got atomic.Int64
			for range clients {
				c, _ := connect(b, s, "bench", "")
				c.send("Subscribe", map[string]any{"request_id": 1, "query_set_id": 1, "queries": []string{"SELECT * FROM Post"}})
				c.expect("SubscribeApplied")
				go func() {
					for {
						if _, _, err := c.c.ReadMessage(); err != nil {
							return
						}
						got.Add(1)
					}
				}()
			}
			b.ResetTimer()
			for i := range b.N {
				mustCall(b, s, "bench", "create_post", sess, "post")
				want := int64(clients * (i + 1))
				for deadline := time.Now().Add(10 * time.Second); got.Load() < want; {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d updates arrived", got.Load(), want)
					}
					time.Sleep(20 * time.Microsecond)
				}
			}
		})
	}
}
