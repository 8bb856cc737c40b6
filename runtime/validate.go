package runtime

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
)

// validateWasm checks an uploaded binary before it is compiled: its size, that
// it imports only what this host provides with exactly the documented
// signatures, and that it exports what the host calls.
func validateWasm(b []byte, maxSize int) error {
	if len(b) > maxSize {
		return fmt.Errorf("%w: %w: the module is %d bytes and this host accepts at most %d; build with -ldflags='-s -w' or raise the limit (runtime.WithMaxModuleSize)",
			ErrInvalidModule, ErrModuleTooLarge, len(b), maxSize)
	}
	info, err := parseWasm(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	var problems []error
	for _, im := range info.imports {
		if err := checkImport(info, im); err != nil {
			problems = append(problems, err)
		}
	}
	problems = append(problems, checkExports(info)...)
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidModule, errors.Join(problems...))
	}
	return nil
}

var hostFuncSigs = func() map[string]funcType {
	m := make(map[string]funcType, len(abi.HostFuncs))
	for _, f := range abi.HostFuncs {
		m[f.Name] = funcType{params: toValTypes(f.Params), results: toValTypes(f.Results)}
	}
	return m
}()

func toValTypes(ss []string) []valType {
	out := make([]valType, len(ss))
	for i, s := range ss {
		switch s {
		case "i32":
			out[i] = valI32
		case "i64":
			out[i] = valI64
		case "f32":
			out[i] = valF32
		case "f64":
			out[i] = valF64
		default:
			panic("abi: unknown value type " + s)
		}
	}
	return out
}

func allowedImports() string {
	names := make([]string, 0, len(abi.HostFuncs)+len(abi.WASIImports))
	for _, f := range abi.HostFuncs {
		names = append(names, abi.ImportModule+"."+f.Name)
	}
	sort.Strings(names)
	w := slices.Clone(abi.WASIImports)
	sort.Strings(w)
	for _, n := range w {
		names = append(names, abi.WASIModule+"."+n)
	}
	return strings.Join(names, ", ")
}

func checkImport(info *wasmInfo, im wasmImport) error {
	full := im.module + "." + im.name
	if im.kind != externFunc {
		return fmt.Errorf("%w: module imports the %s %s; this host provides functions only (the module must define and export its own memory)",
			ErrForbiddenImport, externName(im.kind), full)
	}
	var sig funcType
	if int64(im.typeIdx) < int64(len(info.types)) {
		sig = info.types[im.typeIdx]
	} else {
		return fmt.Errorf("import %s refers to type %d, which does not exist", full, im.typeIdx)
	}
	switch im.module {
	case abi.ImportModule:
		want, ok := hostFuncSigs[im.name]
		if !ok {
			return fmt.Errorf("%w: module imports %s, which this host does not provide (ABI version %d); allowed imports are %s",
				ErrForbiddenImport, full, abi.Version, allowedImports())
		}
		if !slices.Equal(sig.params, want.params) || !slices.Equal(sig.results, want.results) {
			return fmt.Errorf("%w: module imports %s with signature %s, but the host function is %s; rebuild against this ABI version's SDK",
				ErrForbiddenImport, full, sig, want)
		}
		return nil
	case abi.WASIModule:
		if !slices.Contains(abi.WASIImports, im.name) {
			return fmt.Errorf("%w: module imports %s, which this host does not provide (no files, network or environment); allowed imports are %s",
				ErrForbiddenImport, full, allowedImports())
		}
		return nil
	}
	return fmt.Errorf("%w: module imports %s, which this host does not provide; allowed imports are %s",
		ErrForbiddenImport, full, allowedImports())
}

var (
	sigDescribe = funcType{params: []valType{valI32}}
	sigCall     = funcType{
		params:  []valType{valI32, valI64, valI64, valI64, valI64, valI64, valI64, valI64, valI32, valI32, valI32},
		results: []valType{valI32},
	}
	sigInitialize = funcType{}
)

func checkExports(info *wasmInfo) []error {
	var problems []error
	// wazero runs a start function inside InstantiateModule, before the
	// host can put a deadline on it: a start function that loops would hang
	// the upload. Modules initialise in _initialize instead, which runs
	// under the setup timeout.
	if info.hasStart {
		problems = append(problems, fmt.Errorf("%w: module has a start function, which the host cannot bound; initialise in an exported %s instead (AssemblyScript: --exportStart %s)",
			ErrBadExport, abi.ExportInitialize, abi.ExportInitialize))
	}
	if ex, ok := info.export(abi.ExportMemory); !ok {
		problems = append(problems, fmt.Errorf("%w: module does not export its memory as %q", ErrMissingExport, abi.ExportMemory))
	} else if ex.kind != externMemory {
		problems = append(problems, fmt.Errorf("%w: export %q is a %s, not a memory", ErrBadExport, abi.ExportMemory, externName(ex.kind)))
	}
	for _, want := range []struct {
		name     string
		sig      funcType
		required bool
	}{
		{abi.ExportDescribeModule, sigDescribe, true},
		{abi.ExportCallReducer, sigCall, true},
		{abi.ExportInitialize, sigInitialize, false},
	} {
		ex, ok := info.export(want.name)
		if !ok {
			if want.required {
				problems = append(problems, fmt.Errorf("%w: module does not export %s%s; build it with the SDK (Go: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared)",
					ErrMissingExport, want.name, want.sig))
			}
			continue
		}
		if ex.kind != externFunc {
			problems = append(problems, fmt.Errorf("%w: export %s is a %s, not a function", ErrBadExport, want.name, externName(ex.kind)))
			continue
		}
		sig, ok := info.funcSig(ex.idx)
		if !ok {
			problems = append(problems, fmt.Errorf("%w: export %s refers to function %d, which does not exist", ErrBadExport, want.name, ex.idx))
			continue
		}
		if !slices.Equal(sig.params, want.sig.params) || !slices.Equal(sig.results, want.sig.results) {
			problems = append(problems, fmt.Errorf("%w: export %s has signature %s; the host calls it as %s",
				ErrBadExport, want.name, sig, want.sig))
		}
	}
	return problems
}
