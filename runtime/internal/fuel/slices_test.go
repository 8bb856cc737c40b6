package fuel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// outcome is what a call leaves that must not depend on the slice size.
type outcome struct {
	out  []uint64
	used int64
	left int64
	err  string
}

func (o outcome) String() string {
	return fmt.Sprintf("out %v used %d left %d err %q", o.out, o.used, o.left, o.err)
}

// TestSlicesDoNotChangeEnergy: the same calls, handed their budget whole
// (no refuel import), or in slices of every size from 1 unit up, return
// the same, use the same energy, and stop out of fuel at the same point
// with the same fuel left.
func TestSlicesDoNotChangeEnergy(t *testing.T) {
	h := newHarness(t, false)
	type call struct {
		file, fn string
		budget   int64
		args     []uint64
	}
	calls := []call{
		{"meter.wasm", "straight", 1000, []uint64{0}},
		{"meter.wasm", "count", 1e6, []uint64{1000}},
		{"meter.wasm", "tree", 1e6, []uint64{8}},
		{"meter.wasm", "multi", 1000, []uint64{3}},
		{"meter.wasm", "call_multi", 1000, nil},
		{"meter.wasm", "indirect", 1000, []uint64{1}},
		{"meter.wasm", "bulk", 1e6, []uint64{65536}},
		{"meter.wasm", "bulk", 5000, []uint64{65536}}, // refused before it runs
		{"meter.wasm", "spin", 100_000, nil},
		{"meter.wasm", "empty_blocks", 100_000, nil},
		{"meter.wasm", "spin_host", 100_000, nil},
		{"meter.wasm", "tree", 100_000, []uint64{60}},
		{"meter.wasm", "down", 1e6, []uint64{150}},
		{"meter.wasm", "recurse", 1e6, nil},
		{"tailcall.wasm", "tail_spin", 100_000, nil},
		{"tailcall.wasm", "tail_down", 1e6, []uint64{1000}},
		{"renumber.wasm", "spin_table", 100_000, nil},
		{"renumber.wasm", "table", 1000, []uint64{2}},
		{"meter.wasm", "nested", 1e6, []uint64{10}},
		{"meter.wasm", "nested", 1e7, []uint64{100_000}}, // leaves both loops by br_if
		{"meter.wasm", "nested", 500, []uint64{100}},     // out of fuel in the inner loop
		{"meter.wasm", "many_locals", 1e6, []uint64{50}},
		{"meter.wasm", "many_locals", 300, []uint64{50}},
		{"meter.wasm", "loop_recurse", 1e6, []uint64{1}},  // out of depth
		{"meter.wasm", "loop_recurse", 2000, []uint64{1}}, // out of fuel first
	}
	// count(100) at every budget around its exact cost: whether it
	// finishes must not depend on the slices either.
	_, exact, err := h.load(readWasm(t, "meter.wasm"), Config{InitialFuel: 1000}).call("count", 1e6, 100)
	if err != nil {
		t.Fatal(err)
	}
	for b := exact - 12; b <= exact+1; b++ {
		calls = append(calls, call{"meter.wasm", "count", b, []uint64{100}})
	}
	cfg := Config{InitialFuel: 1000, MaxCallDepth: 200, HostCallCost: 5}
	for _, c := range calls {
		run := func(m *metered) outcome {
			out, used, err := m.call(c.fn, c.budget, c.args...)
			o := outcome{out: out, used: used, left: m.left()}
			if err != nil {
				o.err = firstLine(err)
			}
			return o
		}
		want := run(h.load(readWasm(t, c.file), cfg))
		for _, slice := range []int64{1, 2, 7, 100, 4096, 0, 1 << 40} {
			m := h.loadSliced(readWasm(t, c.file), cfg, slice)
			got := run(m)
			if got.err != want.err || got.used != want.used || got.left != want.left || !slices.Equal(got.out, want.out) {
				t.Errorf("%s%v on %d units, slices of %d: %v; with the whole budget: %v", c.fn, c.args, c.budget, slice, got, want)
			}
			if slice > 0 && slice < 100 && want.used > 4*slice && m.meter.Refuels == 0 {
				t.Errorf("%s%v: slices of %d, %d units used, no refuel", c.fn, c.args, slice, want.used)
			}
		}
	}
}

// TestRenumbered: with the refuel import, every construct that names a
// function still names the same one.
func TestRenumbered(t *testing.T) {
	h := newHarness(t, false)
	for _, slice := range []int64{0, 3} {
		t.Run(fmt.Sprint("slice=", slice), func(t *testing.T) {
			m := h.loadSliced(readWasm(t, "renumber.wasm"), Config{InitialFuel: 1000, MaxCallDepth: 50}, slice)
			for _, tc := range []struct {
				fn   string
				args []uint64
				want uint64
			}{
				{"started", nil, 1}, // the start function ran
				{"direct", nil, 7},
				{"host", nil, 4}, // the harness's env.host returns its argument
				{"tail", nil, 9},
				{"table", []uint64{0}, 5},
				{"table", []uint64{1}, 7},
				{"table", []uint64{2}, 9},
				{"reffunc", nil, 11},
				{"global_ref", nil, 7},
				{"seven", nil, 7},
			} {
				out, _, err := m.call(tc.fn, 1000, tc.args...)
				if err != nil || len(out) != 1 || out[0] != tc.want {
					t.Errorf("%s%v = %v, %v; want %d", tc.fn, tc.args, out, err, tc.want)
				}
			}
			// The name section names the same functions.
			_, _, err := m.call("boom", 1000)
			if err == nil || !strings.Contains(err.Error(), "boom") {
				t.Errorf("boom: %v; want a trap whose stack trace names boom", err)
			}
		})
	}
}

func TestMeterModuleImportRefused(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	wasm = append(wasm, 1, 4, 1, 0x60, 0, 0) // type [] -> []
	imp := []byte{1}
	imp = appendU32(imp, uint32(len(MeterModule)))
	imp = append(imp, MeterModule...)
	imp = appendU32(imp, uint32(len(RefuelFunc)))
	imp = append(imp, RefuelFunc...)
	imp = append(imp, 0, 0)
	wasm = append(wasm, 2)
	wasm = appendU32(wasm, uint32(len(imp)))
	wasm = append(wasm, imp...)
	if _, err := Instrument(wasm, Config{InitialFuel: 1, Refuel: true}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "reserves") {
		t.Fatalf("err = %v; want ErrUnsupported: the host reserves the module", err)
	}
}
