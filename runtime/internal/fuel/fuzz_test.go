package fuel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// FuzzInstrument checks the rewrite against wazero's own decoder and
// validator, and checks what metering promises:
//   - whenever wazero accepts the original, it accepts the rewritten
//     module (or Instrument refused it as unsupported or over a limit);
//   - whenever wazero refuses the original, Instrument or wazero refuses the
//     rewritten one (the rewrite must never make an invalid module valid);
//   - every exported function of the rewritten module stops, well before
//     a generous deadline, on a small budget;
//   - a call that returns normally returns what the original returns, and
//     a trap that is not the metering's is the original's trap too.
//
// Run it with: go test ./runtime/internal/fuel -run '^$' -fuzz FuzzInstrument -fuzztime 60s
func FuzzInstrument(f *testing.F) {
	for _, dir := range []string{"testdata", "../../testdata", "../../testdata/adversarial"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil && len(b) < 1<<20 {
				f.Add(b)
			}
		}
	}
	ctx := context.Background()
	const budget = 20_000
	cfg := Config{InitialFuel: budget, MaxCallDepth: 300, Refuel: true}
	trace := os.Getenv("FUEL_TRACE") // a file each input is written to first: a worker that dies takes its output along
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if trace != "" {
			os.WriteFile(trace, wasm, 0o644)
		}
		fuzzInstrumentOne(t, ctx, wasm, cfg, budget)
	})
}

// TestReplayFuzzCache runs FuzzInstrument's whole cached corpus (the inputs
// a fuzzing session found interesting), timing each: set FUEL_CORPUS to
// the cache directory ($GOCACHE/fuzz/.../FuzzInstrument).
func TestReplayFuzzCache(t *testing.T) {
	dir := os.Getenv("FUEL_CORPUS")
	if dir == "" {
		t.Skip("FUEL_CORPUS is not set")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i, j := strings.Index(s, "[]byte("), strings.LastIndex(s, ")")
		if i < 0 || j < i {
			continue
		}
		wasm, err := strconv.Unquote(s[i+len("[]byte(") : j])
		if err != nil {
			continue
		}
		start := time.Now()
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(8 * time.Second):
				buf := make([]byte, 1<<20)
				n := goruntime.Stack(buf, true)
				panic(fmt.Sprintf("%s takes over 8 s:\n%s", file, buf[:n]))
			}
		}()
		t.Run(filepath.Base(file), func(t *testing.T) {
			fuzzInstrumentOne(t, context.Background(), []byte(wasm), Config{InitialFuel: 20_000, MaxCallDepth: 300, Refuel: true}, 20_000)
		})
		close(done)
		if el := time.Since(start); el > time.Second {
			t.Logf("%s took %s", filepath.Base(file), el)
		}
	}
}

func fuzzInstrumentOne(t *testing.T, ctx context.Context, wasm []byte, cfg Config, budget int64) {
	{
		// A runtime per input, so that no input depends on what earlier
		// ones left behind. The interpreter: it validates exactly as the
		// compiler does, compiles much faster, and honours a deadline.
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
			WithCoreFeatures(api.CoreFeaturesV2).
			WithMemoryLimitPages(16).
			WithCloseOnContextDone(true))
		defer rt.Close(ctx)
		if _, err := rt.NewHostModuleBuilder("env").
			NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = 1 }),
			[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export("host").
			Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
		meters := map[api.Module]*Meter{}
		if err := instantiateMeter(ctx, rt, meters); err != nil {
			t.Fatal(err)
		}
		res, err := Instrument(wasm, cfg)
		if forgedCount(wasm) || (err != nil && strings.Contains(err.Error(), errVectorCount)) {
			// A forged vector count. wazero sizes maps and slices by such
			// counts before reading the entries (a 38-byte module with an
			// export count of 212M kept CompileModule busy for minutes and
			// gigabytes; a type claiming 3 billion results, 3 GB): the
			// host refuses these before wazero sees them, and so does
			// this harness, whether the count is a section's or one
			// inside an entry (Instrument's refusal says which).
			return
		}
		orig, origErr := rt.CompileModule(ctx, wasm)
		if origErr == nil {
			defer orig.Close(ctx)
		}
		if err != nil {
			if origErr == nil && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
				t.Fatalf("wazero accepts the module, Instrument refuses it: %v", err)
			}
			return
		}
		rew, rewErr := rt.CompileModule(ctx, res.Wasm)
		switch {
		case origErr == nil && rewErr != nil:
			t.Fatalf("wazero accepts the original but not the rewritten module: %v", rewErr)
		case origErr != nil && rewErr == nil:
			rew.Close(ctx)
			t.Fatalf("the rewrite made an invalid module valid (wazero: %v)", origErr)
		case origErr != nil:
			return
		}
		defer rew.Close(ctx)
		for name, def := range rew.ExportedFunctions() {
			args := make([]uint64, len(def.ParamTypes()))
			for i := range args {
				args[i] = uint64(i + 3)
			}
			checkCall(t, ctx, rt, meters, orig, rew, name, args, budget, len(wasm))
		}
	}
}

// fuzzSlice is the slice the fuzz targets hand budgets out in: small, so
// that calls refuel often.
const fuzzSlice = 97

func checkCall(t *testing.T, ctx context.Context, rt wazero.Runtime, meters map[api.Module]*Meter, orig, rew wazero.CompiledModule, name string, args []uint64, budget int64, size int) {
	t.Helper()
	mcfg := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	rm, err := rt.InstantiateModule(ctx, rew, mcfg)
	if err != nil {
		return // imports it cannot have, data out of bounds, ...
	}
	defer rm.Close(ctx)
	g := rm.ExportedGlobal(FuelGlobal).(api.MutableGlobal)
	d := rm.ExportedGlobal(DepthGlobal).(api.MutableGlobal)
	meter := &Meter{Slice: fuzzSlice}
	meters[rm] = meter
	defer delete(meters, rm)
	g.Set(uint64(meter.Start(budget)))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := rm.ExportedFunction(name).Call(cctx, args...)
	if cctx.Err() != nil {
		t.Fatalf("%s ran on a budget of %d until the deadline: the metering did not stop it", name, budget)
	}
	left := meter.Left(int64(g.Get()))
	fuelTrap := left < 0
	if fuelTrap && err == nil {
		// Overspent in its last segments: allowed (the host counts it out of
		// energy), but unchecked segments are straight-line code: it cannot
		// overspend by more than the module's size.
		if -left > int64(size) {
			t.Fatalf("%s overspent by %d", name, -left)
		}
	}
	if fuelTrap || d.Get() == 0 {
		return
	}
	om, err2 := rt.InstantiateModule(ctx, orig, mcfg)
	if err2 != nil {
		t.Fatalf("the rewritten module instantiates, the original does not: %v", err2)
	}
	defer om.Close(ctx)
	octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
	defer ocancel()
	oout, oerr := om.ExportedFunction(name).Call(octx, args...)
	if octx.Err() != nil {
		t.Fatalf("%s: the rewritten module returned, the original ran on", name)
	}
	if (err == nil) != (oerr == nil) {
		t.Fatalf("%s: rewritten err %v, original err %v", name, err, oerr)
	}
	if err != nil {
		if firstLine(err) != firstLine(oerr) {
			t.Fatalf("%s: rewritten trapped with %q, the original with %q", name, firstLine(err), firstLine(oerr))
		}
		return
	}
	if !slices.Equal(out, oout) {
		t.Fatalf("%s: rewritten returned %v, the original %v", name, out, oout)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// errVectorCount is in Instrument's refusal of a vector count, at any
// depth, that claims more entries than the bytes left could hold.
const errVectorCount = "more than its section holds"

// forgedCount reports whether a section's vector count exceeds the
// section's size, or a section runs past the module's end. wazero
// allocates by such counts before reading entries.
func forgedCount(wasm []byte) bool {
	if len(wasm) < 8 {
		return false
	}
	r := &reader{b: wasm, off: 8}
	for !r.eof() {
		id, err := r.u8()
		if err != nil {
			return false
		}
		size, err := r.u32()
		if err != nil {
			return false
		}
		body, err := r.bytes(uint64(size))
		if err != nil {
			// A section longer than the module: invalid for everyone, and
			// wazero decodes what there is first, allocating by the counts
			// inside (a type claiming 3 billion parameters: 6 GB).
			return true
		}
		if id != secCustom && id != secStart && id != secDataCount {
			br := &reader{b: body}
			if n, err := br.u32(); err == nil && uint64(n) > uint64(len(body)) {
				return true
			}
		}
	}
	return false
}
