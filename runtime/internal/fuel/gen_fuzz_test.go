package fuel

import (
	"context"
	"os"
	goruntime "runtime"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// progGen turns fuzz bytes into a valid module whose control flow is
// random: nested blocks, loops and ifs, branches of every kind to every
// label in scope, calls (direct, indirect, recursive), returns, and an
// imported host function. Byte-level fuzzing mostly produces modules
// wazero refuses; this one exercises the rewrite's control flow.
type progGen struct {
	in    []byte
	depth int // labels in scope in the current function
	nest  int
	body  []byte
}

func (g *progGen) next() byte {
	if len(g.in) == 0 {
		return 0
	}
	c := g.in[0]
	g.in = g.in[1:]
	return c
}

const (
	genLocals = 3 // i32 locals of every generated function, after its i32 parameter
	genFuncs  = 3 // defined functions, after the import
)

func (g *progGen) emit(b ...byte) { g.body = append(g.body, b...) }

// expr leaves one i32.
func (g *progGen) expr(budget int) {
	switch c := g.next() % 6; {
	case c == 0 || budget <= 0:
		g.emit(0x41)
		g.body = appendS64(g.body, int64(int8(g.next())))
	case c == 1 || c == 2:
		g.emit(0x20, g.next()%(1+genLocals))
	case c == 3:
		g.expr(budget - 1)
		g.expr(budget - 1)
		g.emit([]byte{0x6a, 0x6b, 0x71, 0x72, 0x46, 0x48}[g.next()%6]) // add sub and or eq lt_s
	case c == 4:
		g.expr(budget - 1)
		g.emit(0x10, 0) // call the import
	default:
		// A call of a defined function with a small argument.
		g.expr(budget - 1)
		g.emit(0x41, 7, 0x71) // i32.and 7
		g.emit(0x10, 1+g.next()%genFuncs)
	}
}

func (g *progGen) stmts(n int) {
	for i := 0; i < n && len(g.in) > 0; i++ {
		g.stmt()
	}
}

func (g *progGen) stmt() {
	if g.nest > 6 {
		g.expr(1)
		g.emit(0x21, 1+g.next()%genLocals)
		return
	}
	switch g.next() % 10 {
	case 0, 1:
		g.expr(2)
		g.emit(0x21, 1+g.next()%genLocals) // local.set
	case 2:
		g.emit(0x02, 0x40) // block
		g.depth++
		g.nest++
		g.stmts(int(g.next() % 4))
		g.depth--
		g.nest--
		g.emit(0x0b)
	case 3:
		// A loop that counts a local down, so the original terminates
		// unless the fuzzer makes it branch back some other way.
		l := 1 + g.next()%genLocals
		g.emit(0x03, 0x40)
		g.depth++
		g.nest++
		g.stmts(int(g.next() % 3))
		g.emit(0x20, l, 0x41, 1, 0x6b, 0x22, l, 0x41, 0, 0x4a, 0x0d, 0) // l--; br_if 0 (l > 0)
		g.depth--
		g.nest--
		g.emit(0x0b)
	case 4:
		g.expr(2)
		g.emit(0x04, 0x40) // if
		g.depth++
		g.nest++
		g.stmts(int(g.next() % 3))
		if g.next()%2 == 0 {
			g.emit(0x05)
			g.stmts(int(g.next() % 3))
		}
		g.depth--
		g.nest--
		g.emit(0x0b)
	case 5:
		// br_if to any label; the function's own takes its i32 result.
		t := g.next() % byte(g.depth)
		if int(t) == g.depth-1 {
			g.emit(0x20, 1)
			g.expr(1)
			g.emit(0x0d, t, 0x1a)
		} else {
			g.expr(1)
			g.emit(0x0d, t)
		}
	case 6:
		if g.next()%4 == 0 {
			t := g.next() % byte(g.depth)
			if int(t) == g.depth-1 {
				g.emit(0x20, 1)
			}
			g.emit(0x0c, t) // br
		}
	case 7:
		// br_table: targets all of one arity, so either inner labels only
		// or the function's alone.
		n := 1 + g.next()%3
		if g.depth == 1 {
			g.emit(0x20, 1)
			g.expr(1)
			g.emit(0x0e, n)
			for i := byte(0); i <= n; i++ {
				g.emit(0)
			}
			break
		}
		g.expr(1)
		g.emit(0x0e, n)
		for i := byte(0); i <= n; i++ {
			g.emit(g.next() % byte(g.depth-1))
		}
	case 8:
		if g.next()%4 == 0 {
			g.emit(0x20, 1, 0x0f) // return local 1
		}
	default:
		g.expr(1)
		g.emit(0x41, 0, 0x11, 0, 0, 0x1a) // call_indirect (table slot 0: function 1), drop
	}
}

// module builds: type 0 (i32)->i32; import env.host; genFuncs functions of
// type 0; a table with function 1; exports f0..f2.
func (g *progGen) module() []byte {
	var code [][]byte
	for f := 0; f < genFuncs; f++ {
		g.body, g.depth, g.nest = nil, 1, 0
		g.emit(1, genLocals, 0x7f)
		g.stmts(int(g.next()%6) + 1)
		g.emit(0x20, 1, 0x0b) // return local 1
		code = append(code, g.body)
	}
	sec := func(out []byte, id byte, body []byte) []byte {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		return append(out, body...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = sec(m, 1, []byte{1, 0x60, 1, 0x7f, 1, 0x7f})
	m = sec(m, 2, append(append([]byte{1, 3}, "env"...), append([]byte{4}, "host\x00\x00"...)...))
	m = sec(m, 3, []byte{genFuncs, 0, 0, 0})
	m = sec(m, 4, []byte{1, 0x70, 0, 1})
	m = sec(m, 7, []byte{3, 2, 'f', '0', 0, 1, 2, 'f', '1', 0, 2, 2, 'f', '2', 0, 3})
	m = sec(m, 9, []byte{1, 0, 0x41, 0, 0x0b, 1, 1})
	var cb []byte
	cb = appendU32(cb, genFuncs)
	for _, c := range code {
		cb = appendU32(cb, uint32(len(c)))
		cb = append(cb, c...)
	}
	return sec(m, 10, cb)
}

// FuzzMeteredPrograms runs random valid programs original and metered: a
// metered call that returns must return what the original returns, and use
// the same energy each time; a call that does not finish must stop with the
// fuel below zero or at the depth limit, never at the deadline.
//
//	go test ./runtime/internal/fuel -run '^$' -fuzz FuzzMeteredPrograms -fuzztime 60s
func FuzzMeteredPrograms(f *testing.F) {
	for _, s := range []string{"", "\x02\x03\x04\x05", "\x03\x03\x05\x01\x09\x02\x00\x07\x01\x02\x03", "\x04\x05\x06\x07\x08\x09\x03\x02\x01\x00\x05\x05"} {
		f.Add([]byte(s), uint8(5))
	}
	ctx := context.Background()
	trace := os.Getenv("FUEL_TRACE") // each input is written here first
	f.Fuzz(func(t *testing.T, prog []byte, arg uint8) {
		wasm := (&progGen{in: prog}).module()
		if trace != "" {
			os.WriteFile(trace, append([]byte{arg}, prog...), 0o644)
			// A worker that hangs says nothing (the coordinator discards
			// its output): leave its goroutines' stacks beside the input.
			dump := time.AfterFunc(10*time.Second, func() {
				buf := make([]byte, 1<<20)
				os.WriteFile(trace+".stacks", buf[:goruntime.Stack(buf, true)], 0o644)
			})
			defer dump.Stop()
		}
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCloseOnContextDone(true))
		defer rt.Close(ctx)
		if _, err := rt.NewHostModuleBuilder("env").
			NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = s[0]*3 + 1 }),
			[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export("host").
			Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
		meters := map[api.Module]*Meter{}
		if err := instantiateMeter(ctx, rt, meters); err != nil {
			t.Fatal(err)
		}
		orig, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			t.Fatalf("the generator made an invalid module: %v", err)
		}
		const budget = 50_000
		cfg := Config{InitialFuel: budget, MaxCallDepth: 100, HostCallCost: 3}
		res, err := Instrument(wasm, cfg)
		if err != nil {
			t.Fatalf("Instrument: %v", err)
		}
		rew, err := rt.CompileModule(ctx, res.Wasm)
		if err != nil {
			t.Fatalf("the rewritten module is invalid: %v", err)
		}
		// The same, handed its budget in slices of 1 to 64 units.
		cfg.Refuel = true
		sliced, err := Instrument(wasm, cfg)
		if err != nil {
			t.Fatalf("Instrument with Refuel: %v", err)
		}
		rewSliced, err := rt.CompileModule(ctx, sliced.Wasm)
		if err != nil {
			t.Fatalf("the rewritten module with the refuel import is invalid: %v", err)
		}
		slice := 1 + int64(arg%64)
		for _, fn := range []string{"f0", "f1", "f2"} {
			run := func(cm wazero.CompiledModule) ([]uint64, error, int64, uint64, bool) {
				m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close(ctx)
				var g, d api.MutableGlobal
				var mt *Meter
				if x := m.ExportedGlobal(FuelGlobal); x != nil {
					g, d = x.(api.MutableGlobal), m.ExportedGlobal(DepthGlobal).(api.MutableGlobal)
					g.Set(budget)
					if cm == rewSliced {
						mt = &Meter{Slice: slice}
						meters[m] = mt
						defer delete(meters, m)
						g.Set(uint64(mt.Start(budget)))
					}
				}
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				out, err := m.ExportedFunction(fn).Call(cctx, uint64(arg))
				if g == nil {
					return out, err, 0, 0, cctx.Err() != nil
				}
				if mt != nil {
					return out, err, mt.Left(int64(g.Get())), d.Get(), cctx.Err() != nil
				}
				return out, err, int64(g.Get()), d.Get(), cctx.Err() != nil
			}
			out, err, left, depth, timedOut := run(rew)
			// Slices change nothing a call returns, spends or leaves.
			sout, serr, sleft, sdepth, stimedOut := run(rewSliced)
			if stimedOut || (serr == nil) != (err == nil) || (err != nil && firstLine(serr) != firstLine(err)) ||
				sleft != left || sdepth != depth || !slices.Equal(sout, out) {
				t.Fatalf("%s: in slices of %d: %v %v, left %d, depth %d; whole: %v %v, left %d, depth %d",
					fn, slice, sout, serr, sleft, sdepth, out, err, left, depth)
			}
			if timedOut {
				t.Fatalf("%s ran on a budget of %d until the deadline", fn, budget)
			}
			if err != nil {
				if left >= 0 && depth != 0 {
					// Neither limit: the original must trap the same way.
					if _, oerr, _, _, _ := run(orig); oerr == nil || firstLine(oerr) != firstLine(err) {
						t.Fatalf("%s: metered trapped with %v, the original with %v", fn, err, oerr)
					}
				}
				continue
			}
			if depth != 100 {
				t.Fatalf("%s returned with the depth counter at %d; want 100", fn, depth)
			}
			out2, _, left2, _, _ := run(rew)
			if left2 != left || !slices.Equal(out, out2) {
				t.Fatalf("%s: two runs left %d and %d fuel", fn, left, left2)
			}
			if left < 0 {
				continue // overspent in its last segments: the host calls that out of energy
			}
			oout, oerr, _, _, otimedOut := run(orig)
			if otimedOut || oerr != nil || !slices.Equal(out, oout) {
				t.Fatalf("%s: metered returned %v, the original %v (err %v, timed out %v)", fn, out, oout, oerr, otimedOut)
			}
		}
	})
}
