package fuel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

//go:generate sh -c "wat2wasm meter.wat -o testdata/meter.wasm"

func readWasm(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWATBuilds checks that each committed .wasm is what its .wat builds to.
func TestWATBuilds(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm is not on PATH")
	}
	for wat, flags := range map[string][]string{
		"meter.wat":          nil,
		"tailcall.wat":       {"--enable-tail-call"},
		"invalid_global.wat": {"--no-check"},
		"invalid_local.wat":  {"--no-check"},
		"renumber.wat":       {"--enable-tail-call", "--debug-names"},
	} {
		out := filepath.Join(t.TempDir(), "out.wasm")
		args := append(append([]string{}, flags...), filepath.Join("testdata", wat), "-o", out)
		if b, err := exec.Command("wat2wasm", args...).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm %s: %v\n%s", wat, err, b)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, readWasm(t, strings.TrimSuffix(wat, ".wat")+".wasm")) {
			t.Errorf("%s: the committed .wasm is stale; rebuild it with wat2wasm %s", wat, strings.Join(flags, " "))
		}
	}
}

// harness runs instrumented modules in a real wazero runtime.
type harness struct {
	t   testing.TB
	ctx context.Context
	rt  wazero.Runtime
	// meters are the instances' Meters, for the refuel import.
	meters map[api.Module]*Meter
}

// instantiateMeter provides the refuel import: the Meter of the calling
// instance refills its global. An instance without one (not started)
// keeps its global, so the check traps as without slices.
func instantiateMeter(ctx context.Context, rt wazero.Runtime, meters map[api.Module]*Meter) error {
	_, err := rt.NewHostModuleBuilder(MeterModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, _ []uint64) {
		if mt := meters[mod]; mt != nil {
			g := mod.ExportedGlobal(FuelGlobal).(api.MutableGlobal)
			g.Set(uint64(mt.Refuel(int64(g.Get()))))
		}
	}), nil, nil).Export(RefuelFunc).
		Instantiate(ctx)
	return err
}

func newHarness(t testing.TB, closeOnDone bool) *harness {
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall).
		WithCloseOnContextDone(closeOnDone)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	t.Cleanup(func() { rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {}),
		[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export("host").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	meters := map[api.Module]*Meter{}
	if err := instantiateMeter(ctx, rt, meters); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, ctx: ctx, rt: rt, meters: meters}
}

type metered struct {
	h   *harness
	mod api.Module
	g   api.MutableGlobal
	d   api.MutableGlobal
	// meter hands out the budget in slices when the module was
	// instrumented with Config.Refuel.
	meter *Meter
}

func (h *harness) load(wasm []byte, cfg Config) *metered {
	h.t.Helper()
	res, err := Instrument(wasm, cfg)
	if err != nil {
		h.t.Fatalf("Instrument: %v", err)
	}
	mod, err := h.rt.InstantiateWithConfig(h.ctx, res.Wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		h.t.Fatalf("instantiating the rewritten module: %v", err)
	}
	m := &metered{h: h, mod: mod, g: mod.ExportedGlobal(FuelGlobal).(api.MutableGlobal)}
	if res.Depth {
		m.d = mod.ExportedGlobal(DepthGlobal).(api.MutableGlobal)
	}
	if res.Refuel {
		m.meter = &Meter{}
		h.meters[mod] = m.meter
	}
	return m
}

// loadSliced loads wasm instrumented with Config.Refuel, its calls handed
// their budget slice units at a time.
func (h *harness) loadSliced(wasm []byte, cfg Config, slice int64) *metered {
	h.t.Helper()
	cfg.Refuel = true
	m := h.load(wasm, cfg)
	m.meter.Slice = slice
	return m
}

// left is the fuel left: the global, plus the reserve when sliced.
func (m *metered) left() int64 {
	if m.meter != nil {
		return m.meter.Left(int64(m.g.Get()))
	}
	return int64(m.g.Get())
}

// call runs fn with budget and returns its results, the energy it used and
// its error.
func (m *metered) call(fn string, budget int64, args ...uint64) ([]uint64, int64, error) {
	if m.meter != nil {
		m.g.Set(uint64(m.meter.Start(budget)))
	} else {
		m.g.Set(uint64(budget))
	}
	out, err := m.mod.ExportedFunction(fn).Call(m.h.ctx, args...)
	return out, budget - m.left(), err
}

func TestEnergyIsExactAndDeterministic(t *testing.T) {
	h := newHarness(t, false)
	m := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000})
	out, used, err := m.call("straight", 1000, 0)
	if err != nil || out[0] != 3 {
		t.Fatalf("straight: %v %v", out, err)
	}
	if used != 4 {
		t.Fatalf("straight used %d; want 4 (const, const, add, end)", used)
	}
	// count: each iteration is 7 instructions, from local.get to br_if.
	var per []int64
	for _, n := range []uint64{1, 2, 3, 100} {
		out, used, err := m.call("count", 1e6, n)
		if err != nil || out[0] != n {
			t.Fatalf("count(%d): %v %v", n, out, err)
		}
		per = append(per, used)
	}
	step := per[1] - per[0]
	if step != 7 || per[2]-per[1] != step || per[3]-per[0] != 99*step {
		t.Fatalf("count energy %v: not linear with 7 a loop iteration", per)
	}
	// Bulk memory instructions pay for their length: a unit per 8 bytes.
	_, small, err := m.call("bulk", 1e6, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, big, err := m.call("bulk", 1e6, 65536)
	if err != nil || big-small != 65536/8 {
		t.Fatalf("memory.fill of 64 KiB cost %d more than of nothing (err %v); want %d", big-small, err, 65536/8)
	}
	// And one the budget does not cover does not run.
	if _, _, err := m.call("bulk", 1000, 65536); err == nil || int64(m.g.Get()) >= 0 {
		t.Fatalf("memory.fill of 64 KiB on 1000 units: err %v", err)
	}
	// The same call in a second instance costs the same.
	m2 := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000})
	if _, used2, _ := m2.call("count", 1e6, 100); used2 != per[3] {
		t.Fatalf("second instance used %d, first %d", used2, per[3])
	}
}

func TestControlFlowStillWorks(t *testing.T) {
	h := newHarness(t, false)
	m := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000, MaxCallDepth: 100})
	for _, tc := range []struct {
		fn   string
		args []uint64
		want []uint64
	}{
		{"br_out", []uint64{1}, []uint64{10}},
		{"br_out", []uint64{0}, []uint64{20}},
		{"multi", []uint64{9}, []uint64{9, 7}},
		{"call_multi", nil, []uint64{5}},
		{"indirect", []uint64{0}, []uint64{3}},
		{"indirect", []uint64{1}, []uint64{3}},
		{"table_switch", []uint64{0}, []uint64{3}},
		{"table_switch", []uint64{1}, []uint64{2}},
		{"table_switch", []uint64{2}, []uint64{1}},
		{"table_switch", []uint64{9}, []uint64{1}},
		{"tree", []uint64{5}, nil},
		{"nested", []uint64{10}, []uint64{38}},
		{"many_locals", []uint64{50}, []uint64{0}},
	} {
		out, used, err := m.call(tc.fn, 1e6, tc.args...)
		if err != nil || len(out) != len(tc.want) {
			t.Fatalf("%s%v: %v %v", tc.fn, tc.args, out, err)
		}
		for i := range out {
			if out[i] != tc.want[i] {
				t.Fatalf("%s%v = %v; want %v", tc.fn, tc.args, out, tc.want)
			}
		}
		if used <= 0 {
			t.Fatalf("%s used %d", tc.fn, used)
		}
		if d := m.d.Get(); d != 100 {
			t.Fatalf("%s left the depth counter at %d; want it back at 100", tc.fn, d)
		}
	}
}

// TestRunawaysStop: each runaway stops with the fuel below zero.
func TestRunawaysStop(t *testing.T) {
	h := newHarness(t, false)
	for _, tc := range []struct {
		file, fn string
		args     []uint64
	}{
		{"meter.wasm", "spin", nil},
		{"meter.wasm", "empty_blocks", nil},
		{"meter.wasm", "spin_host", nil},
		{"meter.wasm", "tree", []uint64{60}},
		{"meter.wasm", "recurse", nil},
		{"tailcall.wasm", "tail_spin", nil},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			m := h.load(readWasm(t, tc.file), Config{InitialFuel: 1000})
			_, _, err := m.call(tc.fn, 100_000, tc.args...)
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("err = %v; want an unreachable trap", err)
			}
			if left := int64(m.g.Get()); left >= 0 {
				t.Fatalf("fuel left %d; a fuel trap leaves it below zero", left)
			}
		})
	}
}

func TestTailCallsCount(t *testing.T) {
	h := newHarness(t, false)
	m := h.load(readWasm(t, "tailcall.wasm"), Config{InitialFuel: 1000, MaxCallDepth: 10})
	out, used1, err := m.call("tail_down", 1e6, 1000) // deeper than MaxCallDepth: tail calls do not nest
	if err != nil || out[0] != 42 {
		t.Fatalf("tail_down: %v %v", out, err)
	}
	_, used2, _ := m.call("tail_down", 1e6, 2000)
	if used2 <= used1 {
		t.Fatalf("energy %d for 2000 tail calls, %d for 1000", used2, used1)
	}
	if d := m.d.Get(); d != 10 {
		t.Fatalf("depth counter %d after tail calls; want 10", d)
	}
}

func TestCallDepth(t *testing.T) {
	h := newHarness(t, false)
	m := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000, MaxCallDepth: 50})
	if _, _, err := m.call("down", 1e6, 49); err != nil { // 50 frames
		t.Fatalf("down(49) within the depth limit: %v", err)
	}
	_, _, err := m.call("down", 1e6, 50)
	if err == nil || m.d.Get() != 0 || int64(m.g.Get()) < 0 {
		t.Fatalf("down(50): err %v, depth %d, fuel %d; want a trap at depth 0 with fuel left", err, m.d.Get(), int64(m.g.Get()))
	}
	m = h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000, MaxCallDepth: 1000})
	_, _, err = m.call("recurse", 1e9)
	if err == nil || m.d.Get() != 0 {
		t.Fatalf("recurse: err %v, depth %d", err, m.d.Get())
	}
	// A recursion through a loop head, where the depth check is the head's.
	for _, slice := range []int64{0, 100} {
		m = h.loadSliced(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000, MaxCallDepth: 50}, slice)
		_, _, err = m.call("loop_recurse", 1e9, 1)
		if err == nil || m.d.Get() != 0 || m.left() < 0 {
			t.Fatalf("loop_recurse, slices of %d: err %v, depth %d, fuel left %d; want a trap at depth 0 with fuel left", slice, err, m.d.Get(), m.left())
		}
	}
}

func TestInitialFuelBoundsUnsetCalls(t *testing.T) {
	h := newHarness(t, false)
	m := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 5000})
	if _, err := m.mod.ExportedFunction("spin").Call(h.ctx); err == nil || int64(m.g.Get()) >= 0 {
		t.Fatalf("spin on the initial budget: %v", err)
	}
}

func TestRefusesWhatWouldBecomeValid(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"invalid_global.wasm", "global 1 does not exist"},
		{"invalid_local.wasm", "local 1 does not exist"},
	} {
		_, err := Instrument(readWasm(t, tc.file), Config{InitialFuel: 1})
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want ErrMalformed saying %q", tc.file, err, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	wasm := readWasm(t, "meter.wasm")
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{MaxFunctions: 3}, "functions; at most 3"},
		{Limits{MaxBodyBytes: 8}, "at most 8 are accepted"},
		{Limits{MaxTableElements: 1}, "a table starts with 2 elements"},
		{Limits{MaxLocals: 1}, "more than 1 locals"},
		{Limits{MaxSectionEntries: 2}, "at most 2 are accepted"},
	} {
		_, err := Instrument(wasm, Config{InitialFuel: 1, Limits: tc.lim})
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v; want ErrLimit with %q", tc.lim, err, tc.want)
		}
	}
}

func TestMalformed(t *testing.T) {
	wasm := readWasm(t, "meter.wasm")
	// Cuts inside the last section (the code) can never be well-formed;
	// cuts at other section boundaries can.
	for n := len(wasm) - 20; n < len(wasm); n++ {
		if _, err := Instrument(wasm[:n], Config{InitialFuel: 1}); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
	bad := append([]byte(nil), wasm...)
	bad = append(bad, 0x0a, 0x01, 0x00) // a second code section
	if _, err := Instrument(bad, Config{InitialFuel: 1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("repeated section: %v", err)
	}
}

// TestForgedNameSection: a name section claiming 2^28 function names in a
// few bytes is refused before wazero would allocate for them.
func TestForgedNameSection(t *testing.T) {
	wasm := append([]byte(nil), readWasm(t, "meter.wasm")...)
	body := append([]byte{4}, "name"...)
	body = append(body, 1, 5, 0x80, 0x80, 0x80, 0x80, 0x01) // function names: count 2^28
	wasm = append(wasm, 0)
	wasm = appendU32(wasm, uint32(len(body)))
	wasm = append(wasm, body...)
	if _, err := Instrument(wasm, Config{InitialFuel: 1}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "name section") {
		t.Fatalf("err = %v", err)
	}
}

// TestTableMaximumCapped: a table without a maximum of its own gets
// MaxTableElements, so table.grow cannot allocate past it.
func TestTableMaximumCapped(t *testing.T) {
	h := newHarness(t, false)
	m := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000, Limits: Limits{MaxTableElements: 4}})
	out, _, err := m.call("grow_table", 1e6, 2)
	if err != nil || out[0] != 2 {
		t.Fatalf("growing the table from 2 to 4: %v %v", out, err)
	}
	out, _, err = m.call("grow_table", 1e6, 1)
	if err != nil || int32(out[0]) != -1 {
		t.Fatalf("growing the table past 4: %v %v; want -1", out, err)
	}
}
