package runtime

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/hostfuncs"
)

// The adversarial suite: hand-written hostile modules
// (testdata/adversarial/*.wat, built .wasm committed) against a real
// runtime and a real store. Every attack must fail its call with an error
// naming the limit, keep nothing it wrote, and leave both its own database
// and a bystander database in the same runtime serving.

func adversarialRuntime(t *testing.T, opts ...Option) *Runtime {
	return newTestRuntime(t, append([]Option{
		WithEnergyBudget(20_000_000),
		WithMaxCallDepth(10_000),
		WithMemoryLimitPages(64), // 4 MiB
		WithLimits(hostfuncs.Limits{MaxRowsWritten: 500, MaxLogBytes: 64 << 10, MaxHandles: 64}),
	}, opts...)...)
}

func TestAdversarialCalls(t *testing.T) {
	ctx := context.Background()
	rt := adversarialRuntime(t)
	st := newTestStore(t)
	attackMod, err := rt.Compile(ctx, readTestdata(t, "adversarial/attacks.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := rt.CreateDatabase(ctx, st, "attacker", attackMod)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close(ctx)
	bystanderMod, err := rt.Compile(ctx, readTestdata(t, "abi_guest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := rt.CreateDatabase(ctx, st, "bystander", bystanderMod)
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.Close(ctx)

	var okID, byID atomic.Uint64
	okID.Store(1)
	byID.Store(100)
	want := []uint64{}
	serving := func(t *testing.T) {
		t.Helper()
		id := okID.Add(1)
		if _, err := call(t, attacker, "ok", u64Args(id)); err != nil {
			t.Fatalf("the attacker's database no longer serves: %v", err)
		}
		want = append(want, id)
		if got := rowIDs(t, attacker, "T"); !slices.Equal(got, want) {
			t.Fatalf("attacker's rows = %v; want %v (only the honest calls' rows)", got, want)
		}
		if _, err := call(t, bystander, "insert", u64Args(byID.Add(1))); err != nil {
			t.Fatalf("the bystander database no longer serves: %v", err)
		}
	}
	serving(t)

	for _, tc := range []struct {
		reducer string
		target  error
		says    []string
	}{
		{"infinite_loop", ErrOutOfEnergy, []string{"out of energy", "20000000 units", "WithDatabaseEnergyBudget"}},
		{"call_tree", ErrOutOfEnergy, []string{"out of energy"}},
		{"recursion", ErrCallDepth, []string{"deeper than 10000", "WithDatabaseMaxCallDepth"}},
		{"memory_bomb", ErrMemoryLimit, []string{"limit of 64 pages (4 MiB)", "WithDatabaseMemoryLimitPages"}},
		{"log_flood", ErrOutOfEnergy, []string{"out of energy"}},
		{"insert_until_limit", ErrReducerFailed, []string{"row limit"}},
		{"leak_iterators", ErrOutOfEnergy, []string{"out of energy"}},
		{"bulk_loop", ErrOutOfEnergy, []string{"out of energy"}},
	} {
		t.Run(tc.reducer, func(t *testing.T) {
			logsBefore := len(attacker.Logs().Last(100_000))
			start := time.Now()
			_, err := call(t, attacker, tc.reducer, nil)
			if !errors.Is(err, tc.target) {
				t.Fatalf("err = %v; want %v", err, tc.target)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q; want it to say %q", err, s)
				}
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("stopped after %s", el)
			}
			if e, ok := EnergyUsed(err); !ok || e == 0 || (errors.Is(err, ErrOutOfEnergy) && e != 20_000_000) {
				t.Errorf("EnergyUsed = %d, %v", e, ok)
			}
			if tc.reducer == "log_flood" {
				n := 0
				for _, l := range attacker.Logs().Last(100_000)[logsBefore:] {
					n += len(l.Message)
				}
				if n > 64<<10+4<<10 {
					t.Errorf("log_flood logged %d bytes; the limit is 64 KiB", n)
				}
			}
			serving(t)
		})
	}

	// Each attack again, concurrently with bystander calls: the
	// bystander keeps committing while the attacker burns its budget.
	t.Run("bystander during attacks", func(t *testing.T) {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range []string{"infinite_loop", "call_tree", "recursion", "memory_bomb", "leak_iterators", "bulk_loop"} {
				call(t, attacker, r, nil)
			}
			close(stop)
		}()
		var worst time.Duration
		n := 0
		for done := false; !done; {
			select {
			case <-stop:
				done = true
			default:
			}
			start := time.Now()
			if _, err := call(t, bystander, "insert", u64Args(byID.Add(1))); err != nil {
				t.Fatalf("bystander during an attack: %v", err)
			}
			worst = max(worst, time.Since(start))
			n++
		}
		wg.Wait()
		// Generous: two shared cores, other engineers' jobs. The point is
		// that the bystander is never blocked behind the attacker.
		if worst > time.Second {
			t.Errorf("a bystander call took %s during the attacks", worst)
		}
		t.Logf("%d bystander calls during the attacks, slowest %s", n, worst)
		serving(t)
	})
}

// TestAdversarialDatabaseLimits: a database's own limits, lower than the
// runtime's, bind its calls only.
func TestAdversarialDatabaseLimits(t *testing.T) {
	ctx := context.Background()
	rt := adversarialRuntime(t)
	st := newTestStore(t)
	mod, err := rt.Compile(ctx, readTestdata(t, "adversarial/attacks.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	small, err := rt.CreateDatabase(ctx, st, "small", mod,
		WithDatabaseMemoryLimitPages(8), WithDatabaseEnergyBudget(2_000_000), WithDatabaseMaxCallDepth(100))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close(ctx)
	for _, tc := range []struct {
		reducer string
		target  error
		says    string
	}{
		{"memory_bomb", ErrMemoryLimit, "limit of 8 pages"},
		{"infinite_loop", ErrOutOfEnergy, "2000000 units"},
		{"recursion", ErrCallDepth, "deeper than 100"},
	} {
		_, err := call(t, small, tc.reducer, nil)
		if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v; want %v saying %q", tc.reducer, err, tc.target, tc.says)
		}
	}
	if _, err := call(t, small, "ok", u64Args(1)); err != nil {
		t.Fatal(err)
	}
	res, err := call(t, small, "ok", u64Args(2))
	if err != nil || res.Energy == 0 || res.Energy > 2_000_000 {
		t.Fatalf("ok: %v, energy %v", err, res)
	}
}

// TestAdversarialUploads: modules refused at upload, with the reason, while
// the databases already served keep serving.
func TestAdversarialUploads(t *testing.T) {
	ctx := context.Background()
	rt := adversarialRuntime(t, WithSetupEnergy(10_000_000))
	db, err := rt.CreateDatabase(ctx, newTestStore(t), "serving", mustCompile(t, rt, "abi_guest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	limited := adversarialRuntime(t, WithModuleLimits(ModuleLimits{MaxDataBytes: 64 << 10}))
	for _, tc := range []struct {
		rt      *Runtime
		file    string
		targets []error
		says    []string
	}{
		{rt, "init_trap.wasm", []error{ErrInvalidModule}, []string{"_initialize trapped", "unreachable"}},
		{rt, "init_spin.wasm", []error{ErrInvalidModule, ErrOutOfEnergy}, []string{"_initialize was stopped", "10000000 units"}},
		{rt, "forbidden_import.wasm", []error{ErrInvalidModule, ErrForbiddenImport}, []string{
			"wasi_snapshot_preview1.path_open, which this host does not provide",
			"spacetime_v1.exec, which this host does not provide",
			"imports the memory env.memory"}},
		{rt, "huge_memory.wasm", []error{ErrInvalidModule, ErrMemoryLimit}, []string{"starts at 65536 pages (4096 MiB)", "at most 64 pages"}},
		{rt, "huge_data.wasm", []error{ErrInvalidModule}, []string{"data[0]: out of bounds"}},
		{limited, "huge_data.wasm", []error{ErrInvalidModule, ErrModuleLimit}, []string{"more than 65536 bytes", "WithModuleLimits"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := tc.rt.Compile(ctx, readTestdata(t, "adversarial/"+tc.file))
			for _, target := range tc.targets {
				if !errors.Is(err, target) {
					t.Errorf("err = %v; want %v", err, target)
				}
			}
			for _, s := range tc.says {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("err = %v; want it to say %q", err, s)
				}
			}
			if _, err := call(t, db, "insert", u64Args(uint64(time.Now().UnixNano()))); err != nil {
				t.Fatalf("the served database stopped serving: %v", err)
			}
		})
	}
}

func mustCompile(t testing.TB, rt *Runtime, file string) *Module {
	t.Helper()
	mod, err := rt.Compile(context.Background(), readTestdata(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func TestCompileTimeout(t *testing.T) {
	rt := newTestRuntime(t, WithCompileTimeout(time.Nanosecond))
	_, err := rt.Compile(context.Background(), readTestdata(t, "abi_guest.wasm"))
	if !errors.Is(err, ErrInvalidModule) || !errors.Is(err, ErrModuleLimit) || !strings.Contains(err.Error(), "WithCompileTimeout") {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxHandlesBelowThreeRefused(t *testing.T) {
	_, err := New(context.Background(), WithLimits(hostfuncs.Limits{MaxHandles: 2}))
	if err == nil || !strings.Contains(err.Error(), "every call needs 3") {
		t.Fatalf("err = %v", err)
	}
	// With exactly 3 the call's own handles fit, and a scan is refused.
	db, _ := newWATDatabase(t, WithLimits(hostfuncs.Limits{MaxHandles: 3}))
	if _, err := call(t, db, "insert", u64Args(5)); err != nil {
		t.Fatal(err)
	}
}

// TestIdleModulesEvicted: compiled modules no database serves are closed
// beyond WithMaxIdleModules; a module a database serves never is.
func TestIdleModulesEvicted(t *testing.T) {
	ctx := context.Background()
	rt := newTestRuntime(t, WithMaxIdleModules(1))
	served := mustCompile(t, rt, "abi_guest.wasm")
	db, err := rt.CreateDatabase(ctx, newTestStore(t), "served", served)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	a := mustCompile(t, rt, "adversarial/attacks.wasm")
	if again := mustCompile(t, rt, "adversarial/attacks.wasm"); again != a {
		t.Fatal("identical bytes compiled twice")
	}
	b := mustCompile(t, rt, "v2_added_table.wasm") // a is now the oldest idle module beyond 1
	if !a.closed || b.closed || served.closed {
		t.Fatalf("closed: a %v, b %v, served %v; want only a", a.closed, b.closed, served.closed)
	}
	if _, err := rt.CreateDatabase(ctx, newTestStore(t), "late", a); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "compile it again") {
		t.Fatalf("attaching an evicted module: %v", err)
	}
	if a2 := mustCompile(t, rt, "adversarial/attacks.wasm"); a2 == a || a2.closed {
		t.Fatal("compiling evicted bytes again did not give a fresh module")
	}
	if _, err := call(t, db, "insert", u64Args(77)); err != nil {
		t.Fatalf("the served module stopped serving: %v", err)
	}
	// Closing the database releases its module to the idle list.
	db.Close(ctx)
	mustCompile(t, rt, "v2_changed_table.wasm")
	if !served.closed {
		t.Fatal("the released module was not evicted")
	}
}

// TestHostCallEnergy: each host call is charged its instruction plus the
// host call energy, deterministically.
func TestHostCallEnergy(t *testing.T) {
	db, _ := newWATDatabase(t, WithHostCallEnergy(1000))
	energy := func(n uint32) uint64 {
		res, err := call(t, db, "hostcalls", args(func(w *abi.Writer) { w.WriteU32(n) }))
		if err != nil {
			t.Fatal(err)
		}
		return res.Energy
	}
	e0, e100, e200 := energy(0), energy(100), energy(200)
	if per := (e200 - e100) / 100; e100-e0 != e200-e100 || per < 1000 || per > 1100 {
		t.Fatalf("energy %d, %d, %d: want the same step per 100 host calls, 1000 to 1100 a call", e0, e100, e200)
	}
	if again := energy(100); again != e100 {
		t.Fatalf("the same call used %d, then %d", e100, again)
	}
}

// TestForgedCountRefusedBeforeWazero: a 38-byte module whose export section
// claims 212 million entries. wazero sizes a map by that count before
// reading any entry (minutes of CPU and gigabytes, found by fuzzing the
// rewriter); the host's own decoder refuses it first, at once.
func TestForgedCountRefusedBeforeWazero(t *testing.T) {
	forged := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7e, 0x03, 0x02, 0x01, 0x00, 0x07, 0x08, 0xa9, 0xa9, 0xa9, 0x65, 0x65, 0x6b, 0x00, 0x00, 0x0a, 0x06, 0x01, 0x04, 0x00, 0x20, 0x70, 0x0b}
	rt := newTestRuntime(t)
	start := time.Now()
	_, err := rt.Compile(context.Background(), forged)
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "more than the section holds") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("refused after %s", el)
	}
}
