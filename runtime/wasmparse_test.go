package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzValidateWasm: the validator reads untrusted bytes before anything
// else does; it must never panic nor allocate beyond the input's size.
func FuzzValidateWasm(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.wasm")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\x0f"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\x05\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = validateWasm(b, 1<<20)
	})
}

func TestParseWasmExports(t *testing.T) {
	info, err := parseWasm(readTestdata(t, "abi_guest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ex, ok := info.export("__call_reducer__")
	if !ok {
		t.Fatal("no __call_reducer__")
	}
	sig, ok := info.funcSig(ex.idx)
	if !ok || sig.String() != sigCall.String() {
		t.Fatalf("signature %s, want %s", sig, sigCall)
	}
	if n := len(info.imports); n != 23 {
		t.Fatalf("%d imports, want 23", n)
	}
}
