package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/spacetime-go/spacetime/abi"
)

// ErrABI is wrapped by CheckABI's errors: the module does not fit the ABI the
// host speaks, so publishing it would fail.
var ErrABI = errors.New("module does not match the host ABI")

// CheckABI compiles wasm (with wazero's interpreter, which is quick to
// compile) and checks that it imports only functions of abi.HostFuncs (with
// their signatures) and abi.WASIImports, and exports memory,
// __describe_module__ and __call_reducer__ with the documented signatures.
// It reports every mismatch, not only the first.
func CheckABI(ctx context.Context, wasm []byte) error {
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return fmt.Errorf("%w: not a valid WebAssembly module: %w", ErrABI, err)
	}
	defer cm.Close(ctx)
	return checkCompiled(cm)
}

func checkCompiled(cm wazero.CompiledModule) error {
	host := map[string]abi.HostFunc{}
	for _, f := range abi.HostFuncs {
		host[f.Name] = f
	}
	var problems []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case abi.ImportModule:
			want, ok := host[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s, which the host does not provide", mod, name))
				continue
			}
			if got := sig(f.ParamTypes(), f.ResultTypes()); got != sig2(want.Params, want.Results) {
				problems = append(problems, fmt.Sprintf("imports %s.%s as %s; the host's is %s", mod, name, got, sig2(want.Params, want.Results)))
			}
		case abi.WASIModule:
			if !slices.Contains(abi.WASIImports, name) {
				problems = append(problems, fmt.Sprintf("imports WASI function %s, which the host does not provide", name))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s from namespace %q; only %s and %s exist", mod, name, mod, abi.ImportModule, abi.WASIModule))
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s; a module must define its own", mod, name))
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		problems = append(problems, "exports no memory named "+abi.ExportMemory)
	}
	exports := cm.ExportedFunctions()
	i32, i64 := "i32", "i64"
	wantExports := map[string]string{
		abi.ExportDescribeModule: sig2([]string{i32}, nil),
		abi.ExportCallReducer:    sig2([]string{i32, i64, i64, i64, i64, i64, i64, i64, i32, i32, i32}, []string{i32}),
	}
	for _, name := range []string{abi.ExportDescribeModule, abi.ExportCallReducer} {
		f, ok := exports[name]
		if !ok {
			problems = append(problems, "exports no function "+name+" (is the guest SDK linked, and the module built with -buildmode=c-shared?)")
			continue
		}
		if got := sig(f.ParamTypes(), f.ResultTypes()); got != wantExports[name] {
			problems = append(problems, fmt.Sprintf("exports %s as %s; the ABI says %s", name, got, wantExports[name]))
		}
	}
	if f, ok := exports[abi.ExportInitialize]; ok && (len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0) {
		problems = append(problems, "exports "+abi.ExportInitialize+" with parameters or results; it takes none")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w (ABI version %d):\n  %s", ErrABI, abi.Version, strings.Join(problems, "\n  "))
	}
	return nil
}

func sig(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) []string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = api.ValueTypeName(t)
		}
		return out
	}
	return sig2(name(params), name(results))
}

func sig2(params, results []string) string {
	return "(" + strings.Join(params, ", ") + ") -> (" + strings.Join(results, ", ") + ")"
}
