package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

//go:generate sh -c "for f in testdata/*.wat testdata/adversarial/*.wat; do wat2wasm $DOLLAR{f} -o $DOLLAR{f%.wat}.wasm; done"

// TestWATBuilds checks that each committed .wasm is what its .wat builds to.
func TestWATBuilds(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm is not on PATH")
	}
	wats, _ := filepath.Glob("testdata/*.wat")
	adversarial, _ := filepath.Glob("testdata/adversarial/*.wat")
	wats = append(wats, adversarial...)
	if len(wats) == 0 {
		t.Fatal("no .wat files in testdata")
	}
	for _, wat := range wats {
		out := filepath.Join(t.TempDir(), "out.wasm")
		if b, err := exec.Command("wat2wasm", wat, "-o", out).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm %s: %v\n%s", wat, err, b)
		}
		got, _ := os.ReadFile(out)
		want, err := os.ReadFile(strings.TrimSuffix(wat, ".wat") + ".wasm")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: the committed .wasm is stale; run go generate ./runtime", wat)
		}
	}
}

func TestValidateRefusesModules(t *testing.T) {
	rt := newTestRuntime(t)
	for _, tc := range []struct {
		file   string
		target error
		want   string
	}{
		{"forbidden_import.wasm", ErrForbiddenImport, "module imports env.foo, which this host does not provide; allowed imports are spacetime_v1.bytes_sink_write"},
		{"forbidden_wasi.wasm", ErrForbiddenImport, "wasi_snapshot_preview1.path_open, which this host does not provide"},
		{"wrong_import_signature.wasm", ErrForbiddenImport, "imports spacetime_v1.console_log with signature (i32, i32) -> (i32), but the host function is (i32, i32, i32) -> (i32)"},
		{"missing_export.wasm", ErrMissingExport, "does not export __call_reducer__"},
		{"wrong_export_signature.wasm", ErrBadExport, "export __call_reducer__ has signature (i32, i32) -> (i32)"},
		{"memory_import.wasm", ErrForbiddenImport, "imports the memory env.memory"},
		{"start_section.wasm", ErrBadExport, "module has a start function, which the host cannot bound"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := rt.Compile(context.Background(), readTestdata(t, tc.file))
			if !errors.Is(err, ErrInvalidModule) || !errors.Is(err, tc.target) {
				t.Fatalf("err = %v; want ErrInvalidModule and %v", err, tc.target)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		_, err := rt.Compile(context.Background(), []byte("#!/bin/sh\necho hi\n"))
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "not a WebAssembly binary") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		small := newTestRuntime(t, WithMaxModuleSize(100))
		_, err := small.Compile(context.Background(), readTestdata(t, "abi_guest.wasm"))
		if !errors.Is(err, ErrModuleTooLarge) || !errors.Is(err, ErrInvalidModule) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		b := readTestdata(t, "abi_guest.wasm")
		for _, n := range []int{9, 20, 100, len(b) / 2} {
			if _, err := rt.Compile(context.Background(), b[:n]); !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("truncated to %d: err = %v", n, err)
			}
		}
	})
}

// oobCalls names, in order, the host calls the oob reducer makes, and the
// errno each must return.
var oobCalls = []struct {
	fn    string
	errno abi.Errno
}{
	{"table_id_from_name", abi.ErrnoOutOfBounds}, {"table_id_from_name", abi.ErrnoOutOfBounds},
	{"index_id_from_name", abi.ErrnoOutOfBounds}, {"index_id_from_name", abi.ErrnoOutOfBounds},
	{"table_row_count", abi.ErrnoOutOfBounds}, {"table_row_count", abi.ErrnoOutOfBounds},
	{"table_scan", abi.ErrnoOutOfBounds}, {"table_scan", abi.ErrnoOutOfBounds},
	{"index_scan_point", abi.ErrnoOutOfBounds}, {"index_scan_point", abi.ErrnoOutOfBounds},
	{"index_scan_range", abi.ErrnoOutOfBounds}, {"index_scan_range", abi.ErrnoOutOfBounds}, {"index_scan_range", abi.ErrnoOutOfBounds},
	{"row_iter_advance", abi.ErrnoOutOfBounds}, {"row_iter_advance", abi.ErrnoOutOfBounds},
	{"row_insert", abi.ErrnoOutOfBounds}, {"row_insert", abi.ErrnoOutOfBounds},
	{"row_update", abi.ErrnoOutOfBounds}, {"row_update", abi.ErrnoOutOfBounds},
	{"row_delete_by_index_point", abi.ErrnoOutOfBounds}, {"row_delete_by_index_point", abi.ErrnoOutOfBounds},
	{"bytes_source_read", abi.ErrnoOutOfBounds}, {"bytes_source_read", abi.ErrnoOutOfBounds},
	{"bytes_source_len", abi.ErrnoOutOfBounds}, {"bytes_source_len", abi.ErrnoOutOfBounds},
	{"bytes_sink_write", abi.ErrnoOutOfBounds}, {"bytes_sink_write", abi.ErrnoOutOfBounds},
	{"jwt_verify", abi.ErrnoOutOfBounds}, {"jwt_verify", abi.ErrnoOutOfBounds},
	{"identity_from_claims", abi.ErrnoOutOfBounds}, {"identity_from_claims", abi.ErrnoOutOfBounds}, {"identity_from_claims", abi.ErrnoOutOfBounds},
	{"caller_claims", abi.ErrnoOutOfBounds}, {"caller_claims", abi.ErrnoOutOfBounds},
	{"console_log", abi.ErrnoOutOfBounds}, {"console_log", abi.ErrnoOutOfBounds},
	// row_iter_close takes no pointer: a bad handle instead.
	{"row_iter_close", abi.ErrnoBadHandle},
	// The iterator opened before the bad calls still works.
	{"row_iter_advance", abi.ErrnoOK},
}

func TestOutOfBoundsPointersToEveryHostFunction(t *testing.T) {
	for _, f := range abi.HostFuncs {
		if !slices.ContainsFunc(oobCalls, func(c struct {
			fn    string
			errno abi.Errno
		}) bool {
			return c.fn == f.Name
		}) {
			t.Errorf("the oob reducer does not call %s", f.Name)
		}
	}
	db, _ := newWATDatabase(t)
	for round := 0; round < 2; round++ { // the instance survives and runs again
		res, err := call(t, db, "oob", nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		r := abi.NewReader(res.Return)
		got := r.ReadBytes()
		if r.Err() != nil || len(got) != len(oobCalls) {
			t.Fatalf("return = %x; want %d errnos", res.Return, len(oobCalls))
		}
		for i, c := range oobCalls {
			want := c.errno
			if i == len(oobCalls)-1 {
				want = abi.ErrnoOK // one row (from init): advance fills the buffer
			}
			if abi.Errno(got[i]) != want {
				t.Errorf("call %d (%s): errno %v, want %v", i, c.fn, abi.Errno(got[i]), want)
			}
		}
	}
	// Nothing the bad calls could have written was: only init's row is there.
	if ids := rowIDs(t, db, "T"); !slices.Equal(ids, []uint64{1}) {
		t.Fatalf("rows = %v, want [1]", ids)
	}
}

func TestCallOutcomes(t *testing.T) {
	db, _ := newWATDatabase(t, WithDeadline(200*time.Millisecond), WithEnergyBudget(50_000_000))
	ctx := context.Background()

	res, err := call(t, db, "insert", u64Args(42))
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Commit.Delta; d == nil || len(d.Tables) != 1 || d.Tables[0].Name != "T" || len(d.Tables[0].Inserts) != 1 ||
		binary.LittleEndian.Uint64(d.Tables[0].Inserts[0]) != 42 {
		t.Fatalf("delta = %+v; want one insert of 42 into T", res.Commit.Delta)
	}

	// Duplicate key: the reducer reports it as its own failure.
	_, err = call(t, db, "insert", u64Args(42))
	var rerr *ReducerError
	if !errors.As(err, &rerr) || rerr.Message != "boom" || !errors.Is(err, ErrReducerFailed) {
		t.Fatalf("duplicate insert: err = %v", err)
	}

	// An error after a write: rolled back, and the instance serves again.
	_, err = call(t, db, "fail", nil)
	if !errors.As(err, &rerr) || rerr.Message != "boom" || rerr.Reducer != "fail" {
		t.Fatalf("fail: err = %v", err)
	}
	if _, err := call(t, db, "insert", u64Args(43)); err != nil {
		t.Fatalf("after a reducer error: %v", err)
	}

	// A trap after a write: rolled back, instance discarded, next call fine.
	_, err = call(t, db, "trap", nil)
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "trapped") {
		t.Fatalf("trap: err = %v", err)
	}
	if _, err := call(t, db, "insert", u64Args(44)); err != nil {
		t.Fatalf("after a trap: %v", err)
	}

	// An infinite loop: stopped when its energy runs out.
	start := time.Now()
	_, err = call(t, db, "spin", nil)
	if !errors.Is(err, ErrOutOfEnergy) || !errors.Is(err, ErrDeadline) ||
		!strings.Contains(err.Error(), "out of energy") || !strings.Contains(err.Error(), "50000000 units") ||
		!strings.Contains(err.Error(), "WithEnergyBudget") {
		t.Fatalf("spin: err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("spin stopped after %s", el)
	}
	// A per-call budget overrides the default.
	_, err = db.Call(ctx, CallRequest{Reducer: "spin", Energy: 1000})
	if !errors.Is(err, ErrOutOfEnergy) || !strings.Contains(err.Error(), "1000 units") {
		t.Fatalf("spin with 1000 units: err = %v", err)
	}
	if _, err := call(t, db, "insert", u64Args(45)); err != nil {
		t.Fatalf("after running out of energy: %v", err)
	}
	// The deadline is checked at host calls: a call whose deadline has
	// passed is stopped at its first write.
	_, err = db.Call(ctx, CallRequest{Reducer: "insert", Args: u64Args(996), Timeout: time.Nanosecond})
	if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("insert past its deadline: err = %v", err)
	}
	// A cancelled caller: the call fails (at its energy or its first host call).
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = db.Call(cctx, CallRequest{Reducer: "spin"})
	cancel()
	if err == nil {
		t.Fatal("spin with a cancelled caller succeeded")
	}
	if res, err := call(t, db, "noop", nil); err != nil || res.Energy == 0 {
		t.Fatalf("noop: %v, energy %v", err, res)
	}

	if ids := rowIDs(t, db, "T"); !slices.Equal(ids, []uint64{1, 42, 43, 44, 45}) {
		t.Fatalf("rows = %v; want [1 42 43 44 45] (999 from fail, 998 from trap and 997 from spin rolled back)", ids)
	}
}

// TestCloseOnContextDone: with wazero's WithCloseOnContextDone on, a guest
// is stopped at its deadline even in a loop with energy to spare.
func TestCloseOnContextDone(t *testing.T) {
	db, _ := newWATDatabase(t, WithCloseOnContextDone(true))
	start := time.Now()
	_, err := db.Call(context.Background(), CallRequest{Reducer: "spin", Timeout: 20 * time.Millisecond})
	if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrOutOfEnergy) {
		t.Fatalf("spin: err = %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("spin stopped after %s; deadline 20ms", el)
	}
}

func TestCallRefusals(t *testing.T) {
	db, _ := newWATDatabase(t)
	for _, tc := range []struct {
		name, reducer string
		args          []byte
		target        error
		want          string
	}{
		{"unknown reducer", "nope", nil, ErrNoSuchReducer, `no reducer "nope"`},
		{"lifecycle", "init", nil, ErrNoSuchReducer, "init is the init lifecycle reducer"},
		{"short args", "insert", []byte{1, 2, 3}, ErrInvalidArguments, "argument 1 (id: u64) of reducer insert"},
		{"extra args", "insert", make([]byte, 9), ErrInvalidArguments, "1 bytes are left"},
		{"args to a reducer without params", "noop", []byte{0}, ErrInvalidArguments, "takes 0 arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(t, db, tc.reducer, tc.args)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %v containing %q", err, tc.target, tc.want)
			}
		})
	}
}

func TestModuleLog(t *testing.T) {
	db, _ := newWATDatabase(t)
	caller := abi.Identity{0xc2, 0x00, 7}
	if _, err := db.Call(context.Background(), CallRequest{Reducer: "log", Caller: caller}); err != nil {
		t.Fatal(err)
	}
	lines := db.Logs().Last(10)
	if len(lines) != 1 {
		t.Fatalf("lines = %+v", lines)
	}
	l := lines[0]
	if l.Message != "hello from wat" || l.Reducer != "log" || l.Caller != caller || l.Level != "info" || l.Seq != 1 {
		t.Fatalf("line = %+v", l)
	}
	// A follower waiting after the last line wakes on the next.
	done := make(chan error, 1)
	go func() { done <- db.Logs().Wait(context.Background(), l.Seq) }()
	if _, err := db.Call(context.Background(), CallRequest{Reducer: "log"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, missed := db.Logs().Since(l.Seq); len(got) != 1 || missed != 0 {
		t.Fatalf("Since = %+v, %d", got, missed)
	}
}

func TestIdenticalBytesCompileOnce(t *testing.T) {
	rt := newTestRuntime(t)
	b := readTestdata(t, "abi_guest.wasm")
	m1, err := rt.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := rt.Compile(context.Background(), slices.Clone(b))
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatal("the same bytes compiled twice")
	}
	if len(m1.Def().Reducers) != 10 || m1.Def().Tables[0].Name != "T" {
		t.Fatalf("def = %+v", m1.Def())
	}
}

func TestCreateExistingDatabaseRefused(t *testing.T) {
	// CreateDatabase on an existing name fails
	// without touching the existing database or running init again.
	db, st := newWATDatabase(t)
	_, err := db.rt.CreateDatabase(context.Background(), st, "wat", db.Module())
	if err == nil {
		t.Fatal("creating an existing database succeeded")
	}
	if ids := rowIDs(t, db, "T"); !slices.Equal(ids, []uint64{1}) {
		t.Fatalf("rows = %v", ids)
	}
}

// TestWASIWorld checks what WASI gives a guest: clocks from the call's
// timestamp, randomness from the call's inputs, no environment or
// arguments, stdout into the module log.
func TestWASIWorld(t *testing.T) {
	db, _ := newWATDatabase(t)
	ctx := context.Background()
	type world struct {
		wall, mono   uint64
		random       []byte
		envc, envLen uint32
		argc, argLen uint32
	}
	get := func(ts int64, caller abi.Identity) world {
		t.Helper()
		res, err := db.Call(ctx, CallRequest{Reducer: "wasi", Timestamp: time.UnixMicro(ts), Caller: caller})
		if err != nil {
			t.Fatal(err)
		}
		r := abi.NewReader(res.Return)
		b := r.ReadBytes()
		if r.Err() != nil || len(b) != 48 {
			t.Fatalf("return = %x", res.Return)
		}
		le := binary.LittleEndian
		return world{le.Uint64(b), le.Uint64(b[8:]), b[16:32], le.Uint32(b[32:]), le.Uint32(b[36:]), le.Uint32(b[40:]), le.Uint32(b[44:])}
	}
	const ts = 1_700_000_000_123_456
	alice := abi.Identity{0xc2, 0, 1}
	w1 := get(ts, alice)
	// The first reading of the wall clock is the timestamp plus one tick (1 µs).
	if w1.wall != ts*1000+1000 {
		t.Errorf("wall clock = %d, want %d", w1.wall, ts*1000+1000)
	}
	if w1.envc != 0 || w1.envLen != 0 || w1.argc != 0 || w1.argLen != 0 {
		t.Errorf("the guest sees an environment or arguments: %+v", w1)
	}
	w2 := get(ts, alice)
	if !bytes.Equal(w1.random, w2.random) || w1.wall != w2.wall {
		t.Errorf("the same inputs gave different randomness or time: %x/%d vs %x/%d", w1.random, w1.wall, w2.random, w2.wall)
	}
	if w2.mono <= w1.mono {
		t.Errorf("the monotonic clock went back: %d then %d", w1.mono, w2.mono)
	}
	if w3 := get(ts+1, alice); bytes.Equal(w3.random, w1.random) {
		t.Error("another timestamp gave the same randomness")
	}
	if w4 := get(ts, abi.Identity{0xc2, 0, 2}); bytes.Equal(w4.random, w1.random) {
		t.Error("another caller gave the same randomness")
	}
	lines := db.Logs().Last(1)
	if len(lines) != 1 || lines[0].Message != "hello from wat" || lines[0].Reducer != "wasi" || lines[0].Level != "info" {
		t.Fatalf("stdout did not reach the module log: %+v", lines)
	}
}

func TestInitFailureDropsDatabase(t *testing.T) {
	ctx := context.Background()
	rt := newTestRuntime(t)
	st := newTestStore(t)
	mod, err := rt.Compile(ctx, readTestdata(t, "v2_added_table.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.CreateDatabase(ctx, st, "doomed", mod)
	if !errors.Is(err, ErrReducerFailed) || !strings.Contains(err.Error(), "init says no") {
		t.Fatalf("err = %v", err)
	}
	if _, err := st.Database("doomed"); err == nil {
		t.Fatal("the database whose init failed still exists")
	}
}

func TestRepublish(t *testing.T) {
	ctx := context.Background()
	db, _ := newWATDatabase(t)
	if _, err := call(t, db, "insert", u64Args(5)); err != nil {
		t.Fatal(err)
	}
	changed, err := db.rt.Compile(ctx, readTestdata(t, "v2_changed_table.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, changed); !errors.Is(err, ErrSchemaChange) || !strings.Contains(err.Error(), "table T") {
		t.Fatalf("changing T's column type: err = %v", err)
	}
	if _, err := call(t, db, "insert", u64Args(6)); err != nil {
		t.Fatalf("the old version stopped serving after a refused update: %v", err)
	}
	added, err := db.rt.Compile(ctx, readTestdata(t, "v2_added_table.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, added); err != nil {
		t.Fatal(err)
	}
	if db.Module() != added {
		t.Fatal("the new version does not serve")
	}
	if _, err := db.Store().TableID("U"); err != nil {
		t.Fatalf("table U was not added: %v", err)
	}
	if _, err := call(t, db, "insert", u64Args(7)); !errors.Is(err, ErrNoSuchReducer) {
		t.Fatalf("the old version's reducer still runs: %v", err)
	}
	if _, err := call(t, db, "noop", nil); err != nil {
		t.Fatal(err)
	}
	if ids := rowIDs(t, db, "T"); !slices.Equal(ids, []uint64{1, 5, 6}) {
		t.Fatalf("rows = %v", ids)
	}
}

// TestConcurrentCalls runs reducers from many goroutines on one database,
// with a log follower reading at the same time (run it with -race).
func TestConcurrentCalls(t *testing.T) {
	db, _ := newWATDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	followed := make(chan int, 1)
	go func() {
		var seq uint64
		n := 0
		for db.Logs().Wait(ctx, seq) == nil {
			lines, _ := db.Logs().Since(seq)
			n += len(lines)
			seq = lines[len(lines)-1].Seq
		}
		followed <- n
	}()
	const workers, each = 8, 20
	errs := make(chan error, workers)
	offsets := make(chan uint64, workers*each)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				res, err := db.Call(ctx, CallRequest{Reducer: "insert", Args: u64Args(uint64(1000 + w*each + i))})
				if err != nil {
					errs <- err
					return
				}
				offsets <- res.Commit.Offset
				if _, err := db.Call(ctx, CallRequest{Reducer: "log"}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(offsets)
	seen := map[uint64]bool{}
	for o := range offsets {
		if seen[o] {
			t.Fatalf("two commits at offset %d", o)
		}
		seen[o] = true
	}
	if ids := rowIDs(t, db, "T"); len(ids) != 1+workers*each {
		t.Fatalf("%d rows, want %d", len(ids), 1+workers*each)
	}
	cancel()
	if n := <-followed; n != workers*each {
		t.Fatalf("the follower read %d lines, want %d", n, workers*each)
	}
}
