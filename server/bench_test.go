package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/server/subscription"
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

// BenchmarkWSCodec compares the WebSocket hot path's encoders and decoder
// with the general, reflection-based ones they stand in for (impl=general),
// on the messages of a reducer call and of one transaction's update:
//
//	go test ./server -run '^$' -bench WSCodec -count 6 | benchstat -col /impl
func BenchmarkWSCodec(b *testing.B) {
	call := []byte(`{"CallReducer":{"request_id":123,"reducer":"incr","args":["k17"]}}`)
	out := &callOutcome{Status: "committed", Offset: 1234, DurationUS: 20, Return: json.RawMessage("17")}
	type result struct {
		RequestID uint32 `json:"request_id"`
		*callOutcome
	}
	row := json.RawMessage(`{"id":17,"seq":4,"sent_us":1764280862000000}`)
	update := &subscription.TransactionUpdate{Offset: 99, QuerySets: []subscription.QuerySetUpdate{
		{QuerySetID: 1, Tables: []subscription.TableUpdate{{Table: "Tick", Inserts: []json.RawMessage{row}}}}}}
	var buf []byte
	for _, bc := range []struct {
		name, impl string
		fn         func()
	}{
		{"decode-call", "fast", func() {
			_, body, _ := splitEnvelope(call)
			var m callReducerMsg
			if !decodeCallFast(body, &m) {
				b.Fatal("the fast path declined")
			}
		}},
		{"decode-call", "general", func() {
			var env map[string]json.RawMessage
			json.Unmarshal(call, &env)
			for _, body := range env {
				var m callReducerMsg
				json.Unmarshal(body, &m)
			}
		}},
		{"encode-result", "fast", func() { buf, _ = appendCommittedResult(buf[:0], 5, out) }},
		{"encode-result", "general", func() {
			json.Marshal(map[string]any{"ReducerResult": result{RequestID: 5, callOutcome: out}})
		}},
		{"encode-update", "fast", func() { buf, _ = appendTransactionUpdate(buf[:0], update) }},
		{"encode-update", "general", func() { transactionUpdateJSON(update) }},
	} {
		b.Run(bc.name+"/impl="+bc.impl, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.fn()
			}
		})
	}
}
