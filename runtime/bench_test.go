package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// noDisk is a durability layer that keeps nothing: with it, a commit costs
// the in-memory apply and the committer's hand-off, not the disk. The
// benchmarks use it to measure the price of the sandbox, not of fsync.
type noDisk struct{}

func (noDisk) Commit([]store.Write) error { return nil }
func (noDisk) DropPrefix([]byte) error    { return nil }

func noDiskStore(b testing.TB) *store.Store {
	return newTestStore(b, store.WithDurabilityWrapper(func(store.Durability) store.Durability { return noDisk{} }))
}

// processCPU is the CPU time of the whole process (every thread: the
// caller, wazero's deadline goroutine, the store's committer).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU resets the timer and reports cpu-ns/op, the process's CPU time
// per operation: unlike wall time it does not count waiting for a core that
// other engineers' jobs hold, which on this shared machine is most of the
// noise. Call the returned function when the loop ends.
func measureCPU(b *testing.B) func() {
	b.ResetTimer()
	start := processCPU()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// benchRT is one runtime shared by the benchmarks, so that a module is
// compiled once per test binary rather than once per b.N round.
var benchRT struct {
	once sync.Once
	rt   *Runtime
	err  error
}

func sharedRuntime(b testing.TB) *Runtime {
	benchRT.once.Do(func() {
		dir, err := os.MkdirTemp("", "runtime-bench-cache-")
		if err != nil {
			benchRT.err = err
			return
		}
		benchRT.rt, benchRT.err = New(context.Background(), WithCompilationCacheDir(dir))
	})
	if benchRT.err != nil {
		b.Fatal(benchRT.err)
	}
	return benchRT.rt
}

func benchDatabase(b *testing.B, wasm []byte) *Database {
	ctx := context.Background()
	rt := sharedRuntime(b)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	db, err := rt.CreateDatabase(ctx, noDiskStore(b), "bench", mod)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close(ctx) })
	return db
}

func itemArgs(name string) []byte {
	return args(func(w *abi.Writer) {
		w.WriteString(name)
		w.WriteI32(7)
		w.WriteNone()
		w.WriteLen(0)
	})
}

// storeInsertBench inserts row(i) into table of a database with mod's tables,
// directly on the store: Begin, Insert, Commit.
func storeInsertBench(b *testing.B, mod *Module, table string, row func(i int) []byte) {
	ctx := context.Background()
	sdb, err := noDiskStore(b).CreateDatabase(ctx, "bench", mod.Def().Tables)
	if err != nil {
		b.Fatal(err)
	}
	tid, err := sdb.TableID(table)
	if err != nil {
		b.Fatal(err)
	}
	done := measureCPU(b)
	defer done()
	for i := 0; i < b.N; i++ {
		tx, err := sdb.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Insert(tid, row(i)); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertRow compares one inserted row done directly on the store
// (impl=store, the baseline) with the same row inserted by a reducer
// (impl=wat: the hand-written ABI guest, the sandbox alone; impl=go: the
// SDK test module, sandbox plus Go SDK). Every operation is a committed
// transaction, with the disk left out (noDisk): it measures argument checks,
// the guest, host calls, the in-memory insert and the commit hand-off.
// Tables: T (one u64 primary key), Counter (String primary key, u64; the Go
// reducer incr looks the key up first, then inserts), Item (8 columns, 4
// indexes).
func BenchmarkInsertRow(b *testing.B) {
	ctx := context.Background()
	ts := time.UnixMicro(1_700_000_000_000_000)
	call := func(b *testing.B, db *Database, reducer string, a func(i int) []byte) {
		done := measureCPU(b)
		defer done()
		for i := 0; i < b.N; i++ {
			if _, err := db.Call(ctx, CallRequest{Reducer: reducer, Args: a(i), Timestamp: ts}); err != nil {
				b.Fatal(err)
			}
		}
	}
	str := func(s string) []byte { return args(func(w *abi.Writer) { w.WriteString(s) }) }
	item := func(i int) []byte {
		row, _ := abi.EncodeRow(nil, nil, nil)
		w := abi.NewWriter(row)
		w.WriteU64(0)
		w.WriteString(fmt.Sprint("item-", i))
		w.WriteI32(7)
		w.WriteIdentity(abi.Identity{})
		w.WriteNone()
		w.WriteLen(0)
		w.WriteLen(0)
		w.WriteTimestamp(ts.UnixMicro())
		return w.Bytes()
	}
	b.Run("table=T/impl=store", func(b *testing.B) {
		mod, err := sharedRuntime(b).Compile(ctx, readTestdata(b, "abi_guest.wasm"))
		if err != nil {
			b.Fatal(err)
		}
		storeInsertBench(b, mod, "T", func(i int) []byte { return u64Args(uint64(i) + 100) })
	})
	b.Run("table=T/impl=wat", func(b *testing.B) {
		call(b, benchDatabase(b, readTestdata(b, "abi_guest.wasm")), "insert", func(i int) []byte { return u64Args(uint64(i) + 100) })
	})
	b.Run("table=Counter/impl=store", func(b *testing.B) {
		mod, err := sharedRuntime(b).Compile(ctx, buildGuest(b, sdkTestModule))
		if err != nil {
			b.Fatal(err)
		}
		storeInsertBench(b, mod, "Counter", func(i int) []byte {
			w := abi.NewWriter(nil)
			w.WriteString(fmt.Sprint("k-", i))
			w.WriteU64(1)
			return w.Bytes()
		})
	})
	b.Run("table=Counter/impl=go", func(b *testing.B) {
		call(b, benchDatabase(b, buildGuest(b, sdkTestModule)), "incr", func(i int) []byte { return str(fmt.Sprint("k-", i)) })
	})
	b.Run("table=Counter/impl=go-nodeadline", func(b *testing.B) {
		// Unmetered and without WithCloseOnContextDone: no bound at all, a
		// measurement of the sandbox's bare cost, not a configuration.
		rt, err := New(ctx, func(c *config) { c.noMetering, c.closeOnDone = true, false })
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close(ctx)
		mod, err := rt.Compile(ctx, buildGuest(b, sdkTestModule))
		if err != nil {
			b.Fatal(err)
		}
		db, err := rt.CreateDatabase(ctx, noDiskStore(b), "bench", mod)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close(ctx)
		call(b, db, "incr", func(i int) []byte { return str(fmt.Sprint("k-", i)) })
	})
	b.Run("table=Item/impl=store", func(b *testing.B) {
		mod, err := sharedRuntime(b).Compile(ctx, buildGuest(b, sdkTestModule))
		if err != nil {
			b.Fatal(err)
		}
		storeInsertBench(b, mod, "Item", item)
	})
	b.Run("table=Item/impl=go", func(b *testing.B) {
		call(b, benchDatabase(b, buildGuest(b, sdkTestModule)), "insert_item", func(i int) []byte { return itemArgs(fmt.Sprint("item-", i)) })
	})
}

// BenchmarkCallNoop is the fixed cost of a reducer call that does nothing:
// argument check, transaction, instance, deadline, commit of an empty delta.
func BenchmarkCallNoop(b *testing.B) {
	ctx := context.Background()
	for _, g := range []struct{ name, reducer string }{{"wat", "noop"}, {"go", "noop"}} {
		b.Run("guest="+g.name, func(b *testing.B) {
			var wasm []byte
			if g.name == "wat" {
				wasm = readTestdata(b, "abi_guest.wasm")
			} else {
				wasm = buildGuest(b, sdkTestModule)
			}
			db := benchDatabase(b, wasm)
			done := measureCPU(b)
			defer done()
			for i := 0; i < b.N; i++ {
				if _, err := db.Call(ctx, CallRequest{Reducer: g.reducer}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHostCall measures one host call (bytes_source_len) from the WAT
// guest: a call making 10,000 host calls against one making none; the metric
// ns/hostcall is the difference divided by 10,000.
func BenchmarkHostCall(b *testing.B) {
	ctx := context.Background()
	db := benchDatabase(b, readTestdata(b, "abi_guest.wasm"))
	const n = 10_000
	for _, calls := range []uint32{0, n} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			a := args(func(w *abi.Writer) { w.WriteU32(calls) })
			done := measureCPU(b)
			defer done()
			for i := 0; i < b.N; i++ {
				if _, err := db.Call(ctx, CallRequest{Reducer: "hostcalls", Args: a}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompile compiles the SDK test module (a Go guest, about 3.6 MB):
// cold (a new runtime with an empty cache directory each time) and from the
// on-disk cache (a new runtime on a filled directory: a restart).
// Validation and __describe_module__ are included.
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	wasm := buildGuest(b, sdkTestModule)
	compile := func(b *testing.B, dir string) {
		rt, err := New(ctx, WithCompilationCacheDir(dir))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Compile(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		rt.Close(ctx)
	}
	b.Run("cache=cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			compile(b, filepath.Join(b.TempDir(), "cache"))
		}
	})
	b.Run("cache=disk", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "cache")
		compile(b, dir)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			compile(b, dir)
		}
	})
}

// BenchmarkInstance creates (instantiate + _initialize) and closes one instance.
func BenchmarkInstance(b *testing.B) {
	ctx := context.Background()
	for _, g := range []string{"wat", "go"} {
		b.Run("guest="+g, func(b *testing.B) {
			var wasm []byte
			if g == "wat" {
				wasm = readTestdata(b, "abi_guest.wasm")
			} else {
				wasm = buildGuest(b, sdkTestModule)
			}
			db := benchDatabase(b, wasm)
			mod := db.Module()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				inst, err := mod.newInstance(ctx, db)
				if err != nil {
					b.Fatal(err)
				}
				inst.close(ctx)
			}
		})
	}
}
