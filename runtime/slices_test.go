package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	goruntime "runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// gcPauses reads the histogram of GC stop-the-world pauses: from the
// decision to stop the world (so waiting for every goroutine to stop is
// included) to the world starting again.
func gcPauses() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

// newPauses counts the pauses from before to after, and those of at least
// over (by their bucket's lower bound).
func newPauses(before, after *metrics.Float64Histogram, over time.Duration) (n, long uint64) {
	for i := range after.Counts {
		d := after.Counts[i] - before.Counts[i]
		n += d
		if after.Buckets[i] >= over.Seconds() {
			long += d
		}
	}
	return n, long
}

// longestNewPause returns the upper bound of the highest bucket that
// gained pauses from before to after.
func longestNewPause(before, after *metrics.Float64Histogram) time.Duration {
	for i := len(after.Counts) - 1; i >= 0; i-- {
		if after.Counts[i] > before.Counts[i] {
			hi := after.Buckets[i+1]
			if math.IsInf(hi, 1) {
				hi = after.Buckets[i]
			}
			return time.Duration(hi * 1e9)
		}
	}
	return 0
}

// spinWhileCollecting runs the attacker's infinite_loop (out of energy
// after budget units) in one goroutine and runtime.GC in this one, again
// and again until the call ends. It returns the longest runtime.GC (or
// wait to start collecting), the longest stop-the-world pause, how many
// collections finished while the guest was still running, and the call's
// error.
func spinWhileCollecting(t *testing.T, db *Database) (worst, pause time.Duration, during int, callErr error) {
	worst, pause, during, _, _, callErr = spinWhileCollectingPauses(t, db)
	return
}

// spinWhileCollectingPauses is spinWhileCollecting that also counts the
// stop-the-world pauses, and those of 50 ms or more.
func spinWhileCollectingPauses(t *testing.T, db *Database) (worst, pause time.Duration, during int, pauses, long uint64, callErr error) {
	t.Helper()
	before := gcPauses()
	var done atomic.Bool
	started := make(chan struct{})
	finished := make(chan error, 1)
	t0 := time.Now()
	go func() {
		close(started)
		_, err := call(t, db, "infinite_loop", nil)
		done.Store(true)
		t.Logf("the call took %s", time.Since(t0))
		finished <- err
	}()
	// Waits spin rather than sleep: a sleeping goroutine's timer may be
	// on the P the guest holds, which runs no timers until the guest
	// returns (one more thing a guest that never calls the host holds up).
	spin := func(d time.Duration) {
		for t := time.Now(); time.Since(t) < d; {
		}
	}
	<-started
	spin(10 * time.Millisecond) // into the loop
	// This goroutine only wanted to run: anything past 10 ms is time the
	// guest held it up (a stop-the-world under way, or no P to run on).
	worst = time.Since(t0) - 10*time.Millisecond
	t.Logf("collecting from %s", time.Since(t0))
	for !done.Load() {
		t0 := time.Now()
		goruntime.GC()
		d := time.Since(t0)
		worst = max(worst, d)
		if !done.Load() {
			during++
		}
		spin(5 * time.Millisecond)
	}
	after := gcPauses()
	pauses, long = newPauses(before, after, 50*time.Millisecond)
	return worst, longestNewPause(before, after), during, pauses, long, <-finished
}

// TestGCDoesNotWaitForASpinningCall: compiled guest code cannot be
// preempted by Go, so a collection's stop-the-world waits for the running
// guest to call the host. With the energy handed out in slices, the guest
// calls the host (refuel) at every slice, and collections finish while a
// call spins; with the whole budget at once (the control), a collection
// waits for the call to run out of energy.
func TestGCDoesNotWaitForASpinningCall(t *testing.T) {
	if testing.Short() {
		t.Skip("spins for a second or two")
	}
	ctx := context.Background()
	const budget = 1_000_000_000 // ~0.5-1 s of the tight loop
	for _, tc := range []struct {
		name  string
		slice int64
	}{
		{"sliced", DefaultEnergySlice},
		{"whole", 1 << 62},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := adversarialRuntime(t, WithEnergyBudget(budget), WithEnergySlice(tc.slice))
			st := newTestStore(t)
			mod := mustCompile(t, rt, "adversarial/attacks.wasm")
			db, err := rt.CreateDatabase(ctx, st, "spinner", mod)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close(ctx)
			worst, pause, during, pauses, long, err := spinWhileCollectingPauses(t, db)
			t.Logf("slice %d: longest stop-the-world %s (%d of %d pauses >= 50 ms), longest runtime.GC %s, %d collections finished while the guest spun",
				tc.slice, pause, long, pauses, worst, during)
			if !errors.Is(err, ErrOutOfEnergy) {
				t.Fatalf("infinite_loop: %v; want ErrOutOfEnergy", err)
			}
			if e, ok := EnergyUsed(err); !ok || e != budget {
				t.Fatalf("energy used %d, %v; want the whole budget %d", e, ok, budget)
			}
			if tc.slice == DefaultEnergySlice {
				// A slice is well under a millisecond of this loop. Generous
				// for a loaded 2-core machine, where the OS can keep any
				// thread off a core for tens of milliseconds: at most one
				// pause in ten reaches 50 ms (with the whole budget, the
				// pause that waits for the guest takes most of the call).
				// A collection's concurrent mark shares the other core with
				// whatever else runs: runtime.GC's own time is only logged.
				if during < 3 || long*10 > pauses {
					t.Fatalf("%d collections finished during the call, %d of %d stop-the-world pauses took 50 ms or more (longest %s); want at least 3 collections and at most one pause in ten that long",
						during, long, pauses, pause)
				}
				return
			}
			// The control: the measurement sees the problem slices solve.
			// A collection that starts while the guest spins waits for it
			// in a stop-the-world, or, when it started first, in its mark
			// phase (the guest's stack cannot be scanned until it stops),
			// where goroutines that allocate wait on it too.
			if worst < 50*time.Millisecond {
				t.Fatalf("with the whole budget at once, the longest runtime.GC took %s (stop-the-world %s); the guest should have held one up for most of the call", worst, pause)
			}
		})
	}
}

// TestSliceSizeDoesNotChangeEnergy: the energy of a call, and where a
// runaway stops, are the same for every slice size (package fuel tests
// this per instruction; here through a whole Go guest).
func TestSliceSizeDoesNotChangeEnergy(t *testing.T) {
	ctx := context.Background()
	wasm := buildGuest(t, computeGuest)
	var want []uint64
	for _, slice := range []int64{1 << 62, DefaultEnergySlice, 10_007, 997} {
		t.Run(fmt.Sprint("slice=", slice), func(t *testing.T) {
			db := meteringDatabase(t, wasm, WithEnergySlice(slice))
			var got []uint64
			for _, r := range []struct {
				reducer string
				n       uint32
				budget  int64
			}{{"work", 20, 0}, {"arith", 20_000, 0}, {"arith", 1 << 30, 5_000_000}} {
				res, err := db.Call(ctx, CallRequest{Reducer: r.reducer, Args: args(func(w *abi.Writer) { w.WriteU32(r.n) }), Energy: r.budget,
					Timestamp: time.UnixMicro(1_700_000_000_000_000)})
				e, ok := EnergyUsed(err)
				switch {
				case err == nil:
					e = res.Energy
				case r.budget == 0 || !errors.Is(err, ErrOutOfEnergy) || !ok:
					t.Fatalf("%s(%d): %v", r.reducer, r.n, err)
				}
				got = append(got, e)
			}
			if want == nil {
				want = got
			} else if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("energy %v in slices of %d; %v with the whole budget", got, slice, want)
			}
		})
	}
}
