package subscription

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/store"
)

// BenchmarkFanout measures the engine's cost of matching one transaction
// (ten inserted Post rows, each owned by one of the subscribers) against
// 1,000 connections subscribed to `SELECT * FROM Post WHERE owner = :caller`,
// and queueing their updates: with the equality index, and with every
// query matched by brute force.
func BenchmarkFanout(b *testing.B) {
	const subscribers, rowsPerTx = 1000, 10
	for _, mode := range []struct {
		name string
		on   bool
	}{{"indexed", true}, {"bruteforce", false}} {
		b.Run(fmt.Sprintf("subs=%d/match=%s", subscribers, mode.name), func(b *testing.B) {
			f := newFixture(b, WithEqualityIndex(mode.on))
			var delivered atomic.Int64
			send := func(*TransactionUpdate) bool { delivered.Add(1); return true }
			for i := 0; i < subscribers; i++ {
				f.e.Connect(connID(i+1), ident(i+1), false, send)
				if _, err := f.e.Subscribe(context.Background(), connID(i+1), 1, []string{"SELECT * FROM Post WHERE owner = :caller"}); err != nil {
					b.Fatal(err)
				}
			}
			if st := f.e.Stats(); st.UniqueQueries != subscribers {
				b.Fatalf("unique queries %d", st.UniqueQueries)
			}
			// Pre-built deltas, as the store hands them over.
			deltas := make([]*store.Delta, 64)
			owners := make([]int, len(deltas))
			id := uint64(1)
			for i := range deltas {
				td := store.TableDelta{Table: f.post, Name: "Post"}
				seen := map[int]bool{}
				for r := 0; r < rowsPerTx; r++ {
					o := int(id*7919%subscribers) + 1
					seen[o] = true
					td.Inserts = append(td.Inserts, postRow(b, id, ident(o), "go", uint32(id%10)))
					id++
				}
				owners[i] = len(seen)
				deltas[i] = &store.Delta{Tables: []store.TableDelta{td}}
			}
			var off uint64
			b.ReportAllocs()
			runtime.LockOSThread()
			b.ResetTimer()
			cpu0, cpuOK := threadCPUTime()
			for i := 0; i < b.N; i++ {
				off++
				f.e.mu.Lock()
				f.e.fanoutLocked(off, deltas[i%len(deltas)], f.e.snap, f.e.snap)
				f.e.mu.Unlock()
			}
			cpu1, _ := threadCPUTime()
			b.StopTimer()
			runtime.UnlockOSThread()
			if cpuOK {
				// The engine's own CPU per transaction, on the committing
				// thread, without the wait for a core on a shared machine
				// (the drainers' sends run on other threads).
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			// Every transaction reached each distinct owner of its rows once.
			var want int64
			for i := 0; i < b.N; i++ {
				want += int64(owners[i%len(deltas)])
			}
			for i := 0; i < subscribers; i++ {
				for !f.e.idle(connID(i + 1)) {
					time.Sleep(100 * time.Microsecond)
				}
			}
			if got := delivered.Load(); got != want {
				b.Fatalf("delivered %d updates, want %d", got, want)
			}
		})
	}
}

// BenchmarkBroadcast measures one transaction (one inserted Post row)
// reaching 1,000 connections that all subscribe to `SELECT * FROM Post`
// (one shared query), through matching, the per-connection updates and
// their delivery to send (a counter), with a goroutine per connection and
// with WithNonBlockingSend (the server's mode). ns/op is wall time: the
// deliveries run on other goroutines; allocs/op is the stable figure.
func BenchmarkBroadcast(b *testing.B) {
	const subscribers = 1000
	for _, m := range sendModes {
		b.Run(fmt.Sprintf("subs=%d/send=%s", subscribers, m.name), func(b *testing.B) {
			f := newFixture(b, m.opts...)
			var delivered atomic.Int64
			send := func(*TransactionUpdate) bool { delivered.Add(1); return true }
			for i := 0; i < subscribers; i++ {
				f.e.Connect(connID(i+1), ident(i+1), false, send)
				if _, err := f.e.Subscribe(context.Background(), connID(i+1), 1, []string{"SELECT * FROM Post"}); err != nil {
					b.Fatal(err)
				}
			}
			deltas := make([]*store.Delta, 64)
			for i := range deltas {
				deltas[i] = &store.Delta{Tables: []store.TableDelta{{Table: f.post, Name: "Post",
					Inserts: [][]byte{postRow(b, uint64(i+1), ident(i%subscribers+1), "go", 1)}}}}
			}
			var off uint64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off++
				f.e.mu.Lock()
				f.e.fanoutLocked(off, deltas[i%len(deltas)], f.e.snap, f.e.snap)
				boxes := f.e.flushBoxes
				f.e.flushBoxes = nil
				f.e.mu.Unlock()
				f.e.flush(boxes)
			}
			for i := 0; i < subscribers; i++ {
				for !f.e.idle(connID(i + 1)) {
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.StopTimer()
			if got, want := delivered.Load(), int64(b.N)*subscribers; got != want {
				b.Fatalf("delivered %d updates, want %d", got, want)
			}
		})
	}
}
