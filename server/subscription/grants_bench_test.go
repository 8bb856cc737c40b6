package subscription

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// grantBenchModes are the two workloads compared by the grant benchmarks,
// which deliver the same updates: 1,000 subscribers each see only their own
// Post rows, through an owner-only grant (`grant_access Post where owner =
// :caller`, subscribers ask for `SELECT * FROM Post`), or with the table
// public and the filter in the query (`SELECT * FROM Post WHERE owner =
// :caller`).
var grantBenchModes = []struct {
	name  string
	grant abi.GrantDef
	query string
}{
	{"public", abi.GrantDef{Table: "Post", To: "public"}, "SELECT * FROM Post WHERE owner = :caller"},
	{"owner-only", abi.GrantDef{Table: "Post", Where: "owner = :caller"}, "SELECT * FROM Post"},
}

// noDisk is a durability layer that keeps nothing: it takes the disk out of
// a commit-to-update measurement, leaving the store's and the engine's work.
type noDisk struct{ store.Durability }

func (noDisk) Commit([]store.Write) error { return nil }

func grantBenchFixture(b *testing.B, grant abi.GrantDef, query string, subscribers int, send func(*TransactionUpdate) bool, sopts ...store.Option) *fixture {
	def := &abi.ModuleDef{ABIVersion: abi.Version, Tables: testTables(), Grants: []abi.GrantDef{grant}}
	s, err := store.Open(context.Background(), b.TempDir(), append([]store.Option{store.WithLogger(slog.New(slog.DiscardHandler))}, sopts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	f := newFixtureDef(b, s, "bench", testTables(), func() *abi.ModuleDef { return def })
	for i := 0; i < subscribers; i++ {
		f.e.Connect(connID(i+1), ident(i+1), false, send)
		if _, err := f.e.Subscribe(context.Background(), connID(i+1), 1, []string{query}); err != nil {
			b.Fatal(err)
		}
	}
	if st := f.e.Stats(); st.UniqueQueries != subscribers {
		b.Fatalf("unique queries %d, want %d", st.UniqueQueries, subscribers)
	}
	return f
}

// BenchmarkGrantsFanout is the engine's CPU cost of one transaction (ten
// Post rows for random owners) for 1,000 subscribers that may each read only
// their own rows, owner-only grant against public table, in one run.
func BenchmarkGrantsFanout(b *testing.B) {
	const subscribers, rowsPerTx = 1000, 10
	for _, m := range grantBenchModes {
		b.Run("grant="+m.name, func(b *testing.B) {
			var delivered atomic.Int64
			f := grantBenchFixture(b, m.grant, m.query, subscribers, func(*TransactionUpdate) bool { delivered.Add(1); return true })
			rng := rand.New(rand.NewPCG(1, 2))
			deltas := make([]*store.Delta, 64)
			owners := make([]int, len(deltas))
			for i := range deltas {
				td := store.TableDelta{Table: f.post, Name: "Post"}
				seen := map[int]bool{}
				for r := 0; r < rowsPerTx; r++ {
					o := rng.IntN(subscribers) + 1
					seen[o] = true
					td.Inserts = append(td.Inserts, postRow(b, uint64(i*rowsPerTx+r+1), ident(o), "go", 1))
				}
				owners[i] = len(seen)
				deltas[i] = &store.Delta{Tables: []store.TableDelta{td}}
			}
			snap := f.db.Snapshot()
			b.ReportAllocs()
			runtime.LockOSThread()
			b.ResetTimer()
			cpu0, cpuOK := threadCPUTime()
			for i := 0; i < b.N; i++ {
				f.e.mu.Lock()
				f.e.fanoutLocked(uint64(i+1), deltas[i%len(deltas)], snap, snap)
				f.e.mu.Unlock()
			}
			cpu1, _ := threadCPUTime()
			b.StopTimer()
			runtime.UnlockOSThread()
			if cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			var want int64
			for i := 0; i < b.N; i++ {
				want += int64(owners[i%len(deltas)])
			}
			deadline := time.Now().Add(time.Minute)
			for delivered.Load() < want && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			if got := delivered.Load(); got != want {
				b.Fatalf("delivered %d updates, want %d", got, want)
			}
		})
	}
}

// BenchmarkGrantsCommitToUpdate drives real commits from 8 writers, each
// transaction one Post row for a random owner among 1,000 subscribers, and
// measures the time from the start of Commit to the subscriber's send:
// updates delivered per second and the latency percentiles, owner-only
// grant against public table. disk=badger is the real durable path (group
// commit, fsync); disk=none replaces Badger by a layer that keeps nothing,
// so that the store's and the engine's share shows through the fsync.
func BenchmarkGrantsCommitToUpdate(b *testing.B) {
	const subscribers, writers = 1000, 8
	for _, disk := range []string{"badger", "none"} {
		var sopts []store.Option
		if disk == "none" {
			sopts = append(sopts, store.WithDurabilityWrapper(func(d store.Durability) store.Durability { return noDisk{d} }))
		}
		for _, m := range grantBenchModes {
			b.Run("disk="+disk+"/grant="+m.name, func(b *testing.B) {
				var mu sync.Mutex
				started := map[uint64]time.Time{} // by post id
				var lat []time.Duration
				var delivered atomic.Int64
				send := func(tu *TransactionUpdate) bool {
					now := time.Now()
					mu.Lock()
					for _, qs := range tu.QuerySets {
						for _, t := range qs.Tables {
							for _, r := range t.Inserts {
								var row struct {
									ID uint64 `json:"id"`
								}
								if json.Unmarshal(r, &row) == nil {
									if st, ok := started[row.ID]; ok {
										lat = append(lat, now.Sub(st))
									}
								}
							}
						}
					}
					mu.Unlock()
					delivered.Add(1)
					return true
				}
				f := grantBenchFixture(b, m.grant, m.query, subscribers, send, sopts...)
				var next atomic.Int64
				b.ResetTimer()
				t0 := time.Now()
				var wg sync.WaitGroup
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(w), 9))
						for next.Add(1) <= int64(b.N) {
							tx, err := f.db.Begin(context.Background())
							if err != nil {
								b.Error(err)
								return
							}
							row, err := tx.Insert(f.post, postRow(b, 0, ident(rng.IntN(subscribers)+1), "go", 1))
							if err != nil {
								b.Error(err)
								return
							}
							id := abi.NewReader(row).ReadU64() // the autoinc id the store gave it
							mu.Lock()
							started[id] = time.Now()
							mu.Unlock()
							if _, err := tx.Commit(context.Background()); err != nil {
								b.Error(err)
								return
							}
						}
					}(w)
				}
				wg.Wait()
				deadline := time.Now().Add(time.Minute)
				for delivered.Load() < int64(b.N) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Microsecond)
				}
				elapsed := time.Since(t0)
				b.StopTimer()
				if got := delivered.Load(); got != int64(b.N) {
					b.Fatalf("delivered %d updates, want %d", got, b.N)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(lat) == 0 {
					b.Fatal("no latency recorded")
				}
				slices.Sort(lat)
				pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "updates/s")
				b.ReportMetric(pct(0.5), "p50-µs")
				b.ReportMetric(pct(0.99), "p99-µs")
				if len(lat) != b.N {
					b.Fatalf("timed %d of %d deliveries", len(lat), b.N)
				}
			})
		}
	}
}
