package server

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkWSCalls measures durable reducer calls (set_setting, an upsert
// of one row) over 64 WebSockets, with 1 or 4 calls in flight on each
// connection: the server runs a connection's next call while the previous
// one becomes durable. Besides ns/op (wall time per call, all connections
// together), it reports the process's CPU time per call (server and the
// gorilla clients, which are in the same process).
func BenchmarkWSCalls(b *testing.B) {
	s := newServer(b, WithCallRate(1e9, 1<<20))
	_, op := operator(b, s)
	publish(b, s, "bench", op, buildModule(b, appModule), 201)
	const conns = 64
	clients := make([]*wsClient, conns)
	for i := range clients {
		clients[i], _ = connect(b, s, "bench", "")
	}
	for _, inflight := range []int{1, 4} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			cpu0 := processCPU()
			b.ResetTimer()
			for ci, c := range clients {
				wg.Go(func() {
					var buf []byte
					id := 0
					send := func() bool {
						if left.Add(-1) < 0 {
							return false
						}
						id++
						buf = append(buf[:0], `{"CallReducer":{"request_id":`...)
						buf = strconv.AppendInt(buf, int64(id), 10)
						buf = append(buf, `,"reducer":"set_setting","args":["k`...)
						buf = strconv.AppendInt(buf, int64(ci), 10)
						buf = append(buf, `","v"]}}`...)
						if err := c.c.WriteMessage(websocket.TextMessage, buf); err != nil {
							b.Error(err)
							return false
						}
						return true
					}
					pending := 0
					for range inflight {
						if send() {
							pending++
						}
					}
					for pending > 0 {
						c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
						_, data, err := c.c.ReadMessage()
						if err != nil {
							b.Error(err)
							return
						}
						pending--
						if !containsCommitted(data) {
							b.Errorf("answer: %s", data)
							return
						}
						if send() {
							pending++
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/call")
		})
	}
}

func containsCommitted(data []byte) bool {
	return bytes.Contains(data, []byte(`"status":"committed"`))
}
