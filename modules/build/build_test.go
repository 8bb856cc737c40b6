package build

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingReducer builds a module whose schema declares a reducer with no
// Go function: the error must name it and say what to do. (Successful builds
// are tested by examples/secure_app and modules/go/stdb, which build real
// modules once per test binary.)
func TestMissingReducer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go compiler")
	}
	dir := filepath.Join("testdata", "missing_reducer")
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "spacetime_generated.go")) })
	var progress bytes.Buffer
	_, err := Build(context.Background(), dir, WithOutput(filepath.Join(t.TempDir(), "m.wasm")), WithProgress(&progress))
	if !errors.Is(err, ErrBuildFailed) {
		t.Fatalf("err = %v, want ErrBuildFailed", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"building " + dir + " failed",
		filepath.Join(dir, "spacetime_generated.go") + ":",
		"undefined: Forgotten",
		"hint: Forgotten is a reducer declared in schema.spacetimedb with no Go function",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "# command-line-arguments") {
		t.Errorf("error keeps go build's noise:\n%s", msg)
	}
	if !strings.Contains(progress.String(), "Compiling "+dir+" to WebAssembly") {
		t.Errorf("progress = %q", progress.String())
	}
}

func TestNotADirectory(t *testing.T) {
	_, err := Build(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "is not a module directory") {
		t.Errorf("err = %v", err)
	}
}

func TestSchemaErrorStopsBuild(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "schema.spacetimedb"), []byte("table T { a: u8 "), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "schema.spacetimedb:1:") {
		t.Errorf("err = %v, want the schema's position", err)
	}
}

func TestDefaultOutput(t *testing.T) {
	if got, want := DefaultOutput(filepath.Join("a", "my-app")), filepath.Join("a", "my-app", "target", "my_app.wasm"); got != want {
		t.Errorf("DefaultOutput = %s, want %s", got, want)
	}
}

// wasmModule assembles a module from sections (id, payload).
func wasmModule(sections ...[]byte) []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range sections {
		out = append(out, s[0], byte(len(s)-1))
		out = append(out, s[1:]...)
	}
	return out
}

func name(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestCheckABIRefuses(t *testing.T) {
	// type 0: (i32) -> (); type 1: () -> ()
	types := cat([]byte{1, 2}, []byte{0x60, 1, 0x7f, 0}, []byte{0x60, 0, 0})
	imports := cat([]byte{2, 2},
		name("env"), name("open"), []byte{0, 1},
		name("spacetime_v1"), name("console_log"), []byte{0, 0}) // wrong signature
	bad := wasmModule(types, imports)
	err := CheckABI(context.Background(), bad)
	if !errors.Is(err, ErrABI) {
		t.Fatalf("err = %v, want ErrABI", err)
	}
	for _, want := range []string{
		`imports env.open from namespace "env"`,
		"imports spacetime_v1.console_log as (i32) -> (); the host's is (i32, i32, i32) -> (i32)",
		"exports no memory named memory",
		"exports no function __describe_module__",
		"exports no function __call_reducer__",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := CheckABI(context.Background(), []byte("not wasm")); !errors.Is(err, ErrABI) {
		t.Errorf("garbage: err = %v", err)
	}
}
