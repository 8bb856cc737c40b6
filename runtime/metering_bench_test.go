package runtime

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/spacetime-go/spacetime/abi"
)

const computeGuest = "runtime/testdata/computeguest"

// meteringModes are the ways of running the same module, compared in one
// run by BenchmarkMetering:
//   - plain: unmetered, no deadline enforcement in the guest (the baseline);
//   - fuel: metered, no call depth counter;
//   - metered: the default (fuel and the call depth counter);
//   - closeondone: unmetered, wazero's WithCloseOnContextDone (the
//     previous way of stopping a runaway);
//   - whole: metered, the whole budget at once (no refuel calls, as
//     before slices);
//   - slice1k: metered in slices of 1,000 units, to price a refuel call;
//   - norefuel: metered as before slices (no refuel import at all).
var meteringModes = []struct {
	name string
	opt  Option
}{
	{"plain", func(c *config) { c.noMetering = true }},
	{"fuel", func(c *config) { c.maxCallDepth = 0 }},
	{"metered", func(c *config) {}},
	{"closeondone", func(c *config) { c.noMetering, c.closeOnDone = true, true }},
	{"whole", WithEnergySlice(1 << 62)},
	{"slice1k", WithEnergySlice(1000)},
	{"norefuel", func(c *config) { c.noRefuel = true }},
}

// BenchmarkMetering runs a compute-heavy Go reducer under each mode: work
// (sort, SHA-256, a map with string keys, recursive fib: typical reducer
// computation) and arith (a tight integer loop). Each op is one committed
// call; energy/op is the fuel the metered modes count.
//
//	go test ./runtime -run '^$' -bench BenchmarkMetering -count 6 | benchstat -col /mode -
func BenchmarkMetering(b *testing.B) {
	ctx := context.Background()
	wasm := buildGuest(b, computeGuest)
	for _, r := range []struct {
		reducer string
		n       uint32
	}{{"work", 2000}, {"arith", 200_000}} {
		for _, mode := range meteringModes {
			b.Run(fmt.Sprintf("reducer=%s/mode=%s", r.reducer, mode.name), func(b *testing.B) {
				db := meteringDatabase(b, wasm, mode.opt)
				a := args(func(w *abi.Writer) { w.WriteU32(r.n) })
				res, err := db.Call(ctx, CallRequest{Reducer: r.reducer, Args: a})
				if err != nil {
					b.Fatal(err)
				}
				done := measureCPU(b)
				for i := 0; i < b.N; i++ {
					if _, err := db.Call(ctx, CallRequest{Reducer: r.reducer, Args: a}); err != nil {
						b.Fatal(err)
					}
				}
				done()
				b.ReportMetric(float64(res.Energy), "energy/op")
			})
		}
	}
}

// meteringRuntimes keeps one runtime per mode for the test binary: compiling
// the guest costs about a second.
var meteringRuntimes = map[string]*Runtime{}

func meteringDatabase(b testing.TB, wasm []byte, opt Option) *Database {
	ctx := context.Background()
	key := fmt.Sprintf("%p", opt)
	rt, ok := meteringRuntimes[key]
	if !ok {
		var err error
		rt, err = New(ctx, opt, WithEnergyBudget(1<<50), WithDeadline(1<<40))
		if err != nil {
			b.Fatal(err)
		}
		meteringRuntimes[key] = rt
	}
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

// threadCPU is the CPU time of the calling thread (lock it first): the
// guest runs on the caller's goroutine, so this is the call's own cost
// without the time the thread waited for a core.
// getrusage(RUSAGE_THREAD) counts in scheduler ticks here, too coarse for
// a call of a millisecond; clock_gettime(CLOCK_THREAD_CPUTIME_ID) is exact.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTime = 3
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkMeteringRatio is BenchmarkMetering as same-run ratios, for a
// machine too loaded for absolute times: every iteration calls the reducer
// in the plain database and in the mode's database, back to back in
// alternating order, measuring the thread's CPU time of each; x-plain is
// the median of mode/plain.
//
//	go test ./runtime -run '^$' -bench BenchmarkMeteringRatio -count 6 | benchstat -
func BenchmarkMeteringRatio(b *testing.B) {
	wasm := buildGuest(b, computeGuest)
	for _, r := range []struct {
		reducer string
		n       uint32
	}{{"work", 2000}, {"arith", 200_000}} {
		for _, mode := range meteringModes[1:] {
			b.Run(fmt.Sprintf("reducer=%s/mode=%s", r.reducer, mode.name), func(b *testing.B) {
				base := meteringDatabase(b, wasm, meteringModes[0].opt)
				db := meteringDatabase(b, wasm, mode.opt)
				req := CallRequest{Reducer: r.reducer, Args: args(func(w *abi.Writer) { w.WriteU32(r.n) })}
				goruntime.LockOSThread()
				defer goruntime.UnlockOSThread()
				timed := func(d *Database) time.Duration { return callThreadCPU(b, d, req) }
				timed(base)
				timed(db)
				ratios := make([]float64, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var p, m time.Duration
					if i%2 == 0 {
						p, m = timed(base), timed(db)
					} else {
						m, p = timed(db), timed(base)
					}
					if p > 0 {
						ratios = append(ratios, float64(m)/float64(p))
					}
				}
				b.StopTimer()
				if len(ratios) > 0 {
					slices.Sort(ratios)
					b.ReportMetric(ratios[len(ratios)/2], "x-plain")
				}
			})
		}
	}
}

// BenchmarkInstrument is the upload-time cost of decoding and metering a Go
// guest (the SDK test module, about 3.6 MB).
func BenchmarkInstrument(b *testing.B) {
	wasm := buildGuest(b, sdkTestModule)
	rt := sharedRuntime(b)
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rt.prepare(wasm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeteringModes is BenchmarkMeteringRatio with every mode in
// every iteration: each iteration calls the reducer once in the plain
// database and once in each mode's, in an order that rotates, so that
// all modes see the same load (on a shared machine the load drifts
// between sub-benchmarks by more than the differences between modes).
// x-MODE is the median over iterations of MODE's thread CPU time over
// plain's in the same iteration.
//
//	go test ./runtime -run '^$' -bench BenchmarkMeteringModes -benchtime 60x -count 6
func BenchmarkMeteringModes(b *testing.B) {
	wasm := buildGuest(b, computeGuest)
	for _, r := range []struct {
		reducer string
		n       uint32
	}{{"work", 2000}, {"arith", 200_000}} {
		b.Run("reducer="+r.reducer, func(b *testing.B) {
			var dbs []*Database
			var names []string
			for _, m := range meteringModes {
				switch m.name {
				case "closeondone", "slice1k": // an order of magnitude slower: BenchmarkMeteringRatio has them
					continue
				}
				dbs = append(dbs, meteringDatabase(b, wasm, m.opt))
				names = append(names, m.name)
			}
			req := CallRequest{Reducer: r.reducer, Args: args(func(w *abi.Writer) { w.WriteU32(r.n) })}
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			timed := func(d *Database) time.Duration { return callThreadCPU(b, d, req) }
			for _, d := range dbs {
				timed(d)
			}
			ratios := make([][]float64, len(dbs))
			ts := make([]time.Duration, len(dbs))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range dbs {
					j := (k + i) % len(dbs)
					ts[j] = timed(dbs[j])
				}
				if ts[0] <= 0 {
					continue
				}
				for j := 1; j < len(dbs); j++ {
					ratios[j] = append(ratios[j], float64(ts[j])/float64(ts[0]))
				}
			}
			b.StopTimer()
			for j := 1; j < len(dbs); j++ {
				if len(ratios[j]) > 0 {
					slices.Sort(ratios[j])
					b.ReportMetric(ratios[j][len(ratios[j])/2], "x-"+names[j])
				}
			}
		})
	}
}

// callThreadCPU makes one call of req on d and returns the calling thread's
// CPU time for it (the guest runs on the caller's goroutine; the caller has
// locked its OS thread).
func callThreadCPU(b *testing.B, d *Database, req CallRequest) time.Duration {
	t0 := threadCPU()
	if _, err := d.Call(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	return threadCPU() - t0
}
