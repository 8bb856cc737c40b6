package store

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// Benchmarks; see BENCHMARKS.md ("Storage") for how they are run and what
// they measured.

func benchTables() []abi.TableDef {
	return []abi.TableDef{{
		Name: "Msg",
		Columns: []abi.ColumnDef{
			{Name: "id", Type: abi.TypeU64, PrimaryKey: true, AutoInc: true},
			{Name: "sender", Type: abi.TypeIdentity},
			{Name: "sent", Type: abi.TypeTimestamp},
			{Name: "text", Type: abi.TypeString},
		},
		Indexes: []abi.IndexDef{{Name: "Msg_sender_idx", Columns: []string{"sender"}}},
	}}
}

func msgRow(id uint64, sender byte, text string) []byte {
	b, err := abi.EncodeRow(nil, benchTables()[0].ColumnTypes(), []abi.Value{abi.U64(id), abi.IdentityValue(abi.Identity{sender}), abi.Timestamp(int64(id)), abi.String(text)})
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkDurableCommit measures durable transactions per second, each
// inserting one row, from many concurrent writers, with group commit and
// with one synced Badger transaction per commit (maxGroup=1).
func BenchmarkDurableCommit(b *testing.B) {
	for _, writers := range []int{1, 16, 64, 256} {
		for _, mode := range []struct {
			name  string
			group int
		}{{"group", 1024}, {"single", 1}} {
			b.Run(fmt.Sprintf("writers=%d/%s", writers, mode.name), func(b *testing.B) {
				ctx := context.Background()
				cd := &countingDurability{}
				s := openStore(b, b.TempDir(), WithMaxGroupSize(mode.group), WithDurabilityWrapper(func(d Durability) Durability { cd.Durability = d; return cd }))
				defer s.Close()
				db := mustDBb(b, s, "bench", benchTables())
				row := msgRow(0, 1, "hello, world")
				cd.base = cd.commits.Load()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							tx, err := db.Begin(ctx)
							if err != nil {
								b.Error(err)
								return
							}
							if _, err := tx.Insert(0, row); err != nil {
								b.Error(err)
								return
							}
							if _, err := tx.Commit(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
				b.ReportMetric(float64(b.N)/float64(cd.commits.Load()-cd.base), "txs/group")
			})
		}
	}
}

// countingDurability counts durable commits, to report the group size.
type countingDurability struct {
	Durability
	commits atomic.Int64
	base    int64
}

func (c *countingDurability) Commit(w []Write) error {
	c.commits.Add(1)
	return c.Durability.Commit(w)
}

// cpuTimer reports the process CPU time per operation ("cpu-ns/op"). On
// this shared machine wall time swings with other people's builds; CPU time
// (GC and background goroutines included) is steadier.
func cpuTimer(b *testing.B) (stop func()) {
	var r0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	return func() {
		var r1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		ns := (r1.Utime.Nano() + r1.Stime.Nano()) - (r0.Utime.Nano() + r0.Stime.Nano())
		b.ReportMetric(float64(ns)/float64(b.N), "cpu-ns/op")
	}
}

func mustDBb(b testing.TB, s *Store, name string, tables []abi.TableDef) *Database {
	db, err := s.CreateDatabase(context.Background(), name, tables)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func loadRows(b testing.TB, db *Database, n int, text string) {
	ctx := context.Background()
	for done := 0; done < n; {
		tx, err := db.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 5000 && done < n; i++ {
			if _, err := tx.Insert(0, msgRow(0, byte(done%16), text)); err != nil {
				b.Fatal(err)
			}
			done++
		}
		if _, err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTxInsert is the in-memory cost of a one-row transaction: Begin,
// Insert (validate, autoinc, two trees), and Rollback instead of the durable
// commit. The table already holds 100k rows.
func BenchmarkTxInsert(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, b.TempDir())
	defer s.Close()
	db := mustDBb(b, s, "bench", benchTables())
	loadRows(b, db, 100_000, "hello, world")
	row := msgRow(0, 1, "hello, world")
	b.ReportAllocs()
	defer cpuTimer(b)()
	b.ResetTimer()
	for b.Loop() {
		tx, _ := db.Begin(ctx)
		if _, err := tx.Insert(0, row); err != nil {
			b.Fatal(err)
		}
		tx.Rollback()
	}
}

// BenchmarkTxCommitNoSync is a whole one-row transaction, Commit included,
// with the durable write discarded: the storage engine's CPU cost per
// reducer call apart from fsync (delta, group hand-off, publication).
func BenchmarkTxCommitNoSync(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, b.TempDir(), WithDurabilityWrapper(func(d Durability) Durability { return discardDurability{d} }))
	defer s.Close()
	db := mustDBb(b, s, "bench", benchTables())
	loadRows(b, db, 100_000, "hello, world")
	row := msgRow(0, 1, "hello, world")
	b.ReportAllocs()
	defer cpuTimer(b)()
	b.ResetTimer()
	for b.Loop() {
		tx, _ := db.Begin(ctx)
		if _, err := tx.Insert(0, row); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertInTx is the cost of one more insert in a transaction that
// already has many.
func BenchmarkInsertInTx(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, b.TempDir())
	defer s.Close()
	db := mustDBb(b, s, "bench", benchTables())
	row := msgRow(0, 1, "hello, world")
	tx, _ := db.Begin(ctx)
	defer tx.Rollback()
	b.ReportAllocs()
	defer cpuTimer(b)()
	for b.Loop() {
		if _, err := tx.Insert(0, row); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPointRead reads one row by primary key from a snapshot of 100k rows.
func BenchmarkPointRead(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	db := mustDBb(b, s, "bench", benchTables())
	loadRows(b, db, 100_000, "hello, world")
	pk, _ := db.IndexID("Msg_id_idx")
	snap := db.Snapshot()
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = abi.NewWriter(nil).Bytes()
		w := abi.NewWriter(nil)
		w.WriteU64(uint64(i*97 + 1))
		keys[i] = w.Bytes()
	}
	b.ReportAllocs()
	defer cpuTimer(b)()
	i := 0
	for b.Loop() {
		it, err := snap.ScanPoint(pk, keys[i%len(keys)])
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := it.Next(); !ok {
			b.Fatal("row not found")
		}
		it.Close()
		i++
	}
}

// BenchmarkScan1000 reads 1,000 rows: a full scan, and a range of the
// non-unique sender index.
func BenchmarkScan1000(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	db := mustDBb(b, s, "bench", benchTables())
	loadRows(b, db, 16_000, "hello, world")
	snap := db.Snapshot()
	bySender, _ := db.IndexID("Msg_sender_idx")
	var id abi.Identity
	id[0] = 3
	w := abi.NewWriter(nil)
	w.WriteIdentity(id)
	sender := w.Bytes()
	small := openStore(b, b.TempDir())
	defer small.Close()
	sdb := mustDBb(b, small, "bench", benchTables())
	loadRows(b, sdb, 1000, "hello, world")
	full := sdb.Snapshot()
	b.Run("table", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, _ := full.Scan(0)
			n := 0
			for _, ok := it.Next(); ok; _, ok = it.Next() {
				n++
			}
			if n != 1000 {
				b.Fatal(n)
			}
		}
	})
	b.Run("index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, _ := snap.ScanPoint(bySender, sender)
			n := 0
			for _, ok := it.Next(); ok; _, ok = it.Next() {
				n++
			}
			if n != 1000 {
				b.Fatal(n)
			}
		}
	})
}

type discardDurability struct{ Durability }

func (discardDurability) Commit([]Write) error { return nil }

// BenchmarkMemoryPerRow reports the heap bytes per row beyond the row's own
// BSATN. Writes to Badger are discarded so that only the tables count:
// Badger's memory is bounded by its options, not by the number of rows.
func BenchmarkMemoryPerRow(b *testing.B) {
	const n = 200_000
	pkOnly := benchTables()
	pkOnly[0].Indexes = nil
	for _, c := range []struct {
		name   string
		tables []abi.TableDef
	}{{"pk", pkOnly}, {"pk+index", benchTables()}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				s := openStore(b, b.TempDir(), WithDurabilityWrapper(func(d Durability) Durability { return discardDurability{d} }))
				db := mustDBb(b, s, "bench", c.tables)
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				loadRows(b, db, n, "hello, world")
				runtime.GC()
				runtime.ReadMemStats(&m1)
				rowBytes := len(msgRow(1, 1, "hello, world"))
				per := (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / n
				b.ReportMetric(per, "B/row")
				b.ReportMetric(per-float64(rowBytes), "B/row-overhead")
				runtime.KeepAlive(db.Snapshot())
				s.Close()
			}
		})
	}
}

// BenchmarkRecovery1M measures Open on a store holding 1M rows. It is slow
// to set up, so it runs only with STORE_BENCH_RECOVERY=1.
func BenchmarkRecovery1M(b *testing.B) {
	if os.Getenv("STORE_BENCH_RECOVERY") == "" {
		b.Skip("set STORE_BENCH_RECOVERY=1 to run")
	}
	dir := b.TempDir()
	s := openStore(b, dir)
	db := mustDBb(b, s, "bench", benchTables())
	loadRows(b, db, 1_000_000, "hello, world")
	s.Close()
	b.ResetTimer()
	for b.Loop() {
		s := openStore(b, dir)
		b.StopTimer()
		db, _ := s.Database("bench")
		if n, _ := db.Snapshot().Count(0); n != 1_000_000 {
			b.Fatalf("recovered %d rows", n)
		}
		s.Close()
		b.StartTimer()
	}
}
