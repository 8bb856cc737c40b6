package stdb_test

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/modules/build"
	"github.com/spacetime-go/spacetime/modules/guesttest"
	"github.com/spacetime-go/spacetime/modules/schema"
)

var sdktestDir = filepath.Join("..", "testdata", "sdktest")

func newHost(t *testing.T) (*guesttest.Host, *abi.ModuleDef) {
	t.Helper()
	wasm := guesttest.Build(t, sdktestDir)
	def, err := schema.ParseDir(sdktestDir)
	if err != nil {
		t.Fatal(err)
	}
	return guesttest.New(t, wasm), def
}

func reducerID(t *testing.T, def *abi.ModuleDef, name string) uint32 {
	t.Helper()
	_, id, ok := def.Reducer(name)
	if !ok {
		t.Fatalf("no reducer %s", name)
	}
	return id
}

func TestDescribeModule(t *testing.T) {
	h, def := newHost(t)
	got, err := abi.UnmarshalModuleDef(h.Describe(t))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(def)
	if string(g) != string(w) {
		t.Errorf("__describe_module__ wrote\n%s\nwant\n%s", g, w)
	}
}

func TestReducerCalls(t *testing.T) {
	h, def := newHost(t)
	caller := abi.Identity{1, 2, 3, 31: 0xff}
	const ts = int64(1_700_000_000_123_456)
	args := func(f func(w *abi.Writer)) []byte {
		var w abi.Writer
		f(&w)
		return w.Bytes()
	}
	u16 := func(v uint16) abi.Value { return abi.Some(abi.U16(v)) }
	echoArgs, err := abi.EncodeRow(nil,
		[]abi.Type{abi.TypeBytes, abi.TypeF64, abi.TypeBool, abi.TypeI8, abi.VecOf(abi.OptionOf(abi.TypeU16))},
		[]abi.Value{abi.Bytes([]byte("raw")), abi.F64(-2.5), abi.Bool(true), abi.I8(-7), abi.Vec(u16(1), abi.None(), u16(65535))})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		reducer  string
		args     []byte
		want     abi.CallResult
		wantRet  []byte
		wantErr  string // substring of the error message; exact when exact is set
		exact    bool
		wantLogs []string
		// wantLogPrefix is the start of the only log line.
		wantLogPrefix string
	}{
		{name: "noop commits", reducer: "noop", want: abi.CallCommitted},
		{name: "caller", reducer: "whoami", want: abi.CallCommitted, wantRet: caller[:]},
		{name: "timestamp", reducer: "now", want: abi.CallCommitted, wantRet: args(func(w *abi.Writer) { w.WriteI64(ts) })},
		{name: "every argument type", reducer: "echo", args: echoArgs, want: abi.CallCommitted,
			wantRet: args(func(w *abi.Writer) { w.WriteBytes([]byte("raw|-2.5|true|-7|1,none,65535")) })},
		{name: "returned error", reducer: "fail", args: args(func(w *abi.Writer) { w.WriteString("no you don't") }),
			want: abi.CallFailed, wantErr: "no you don't", exact: true},
		{name: "panic is recovered", reducer: "panic", args: args(func(w *abi.Writer) { w.WriteString("boom") }),
			want: abi.CallFailed, wantErr: "boom", exact: true},
		{name: "runtime panic is recovered", reducer: "nil_deref", want: abi.CallFailed, wantErr: "nil pointer dereference",
			wantLogPrefix: "0 reducer panicked: runtime error: invalid memory address or nil pointer dereference\ngoroutine"},
		{name: "truncated arguments", reducer: "fail", args: []byte{5, 0, 0, 0, 'a'},
			want: abi.CallFailed, wantErr: "fail: malformed reducer arguments"},
		{name: "trailing arguments", reducer: "noop", args: []byte{1},
			want: abi.CallFailed, wantErr: "noop: malformed reducer arguments: 1 bytes after the last parameter"},
		{name: "log", reducer: "log", args: args(func(w *abi.Writer) { w.WriteU32(abi.LogWarn); w.WriteString("careful") }),
			want: abi.CallCommitted, wantLogs: []string{"1 careful"}},
		{name: "a host error fails the call cleanly", reducer: "count_items", want: abi.CallFailed,
			wantErr: "table Item: the host does not know it (spacetime: NO_SUCH_TABLE)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.Logs = nil
			res, ret, msg, err := h.Call(reducerID(t, def, tt.reducer), caller, ts, tt.args)
			if err != nil {
				t.Fatalf("trap: %v", err)
			}
			if res != tt.want {
				t.Fatalf("result %d, want %d (error %q)", res, tt.want, msg)
			}
			if tt.wantRet != nil && string(ret) != string(tt.wantRet) {
				t.Errorf("return %x, want %x", ret, tt.wantRet)
			}
			if tt.exact && msg != tt.wantErr || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q, want %q", msg, tt.wantErr)
			}
			if tt.wantLogPrefix != "" && (len(h.Logs) != 1 || !strings.HasPrefix(h.Logs[0], tt.wantLogPrefix) || !strings.Contains(h.Logs[0], "main.NilDeref")) {
				t.Errorf("logs %q, want one line starting %q with the stack", h.Logs, tt.wantLogPrefix)
			}
			if tt.wantLogs != nil && strings.Join(h.Logs, "\n") != strings.Join(tt.wantLogs, "\n") {
				t.Errorf("logs %q, want %q", h.Logs, tt.wantLogs)
			}
		})
	}
	// The instance survives failures: a recovered panic is not a trap.
	if res, _, msg, err := h.Call(reducerID(t, def, "noop"), caller, ts, nil); err != nil || res != abi.CallCommitted {
		t.Fatalf("noop after failures: %d %q %v", res, msg, err)
	}
	if res, _, msg, _ := h.Call(math.MaxUint32, caller, ts, nil); res != abi.CallFailed || !strings.Contains(msg, "no reducer with id") {
		t.Errorf("unknown reducer id: %d %q", res, msg)
	}
}

// BenchmarkCall measures a reducer call through the SDK under the minimal
// test host: the export call, argument reading and decoding, dispatch, and
// for insert_item the row encoding, row_insert and the auto-increment
// read-back. The real host's table work comes on top (runtime benchmarks).
func BenchmarkCall(b *testing.B) {
	wasm := guesttest.Build(b, sdktestDir)
	def, err := schema.ParseDir(sdktestDir)
	if err != nil {
		b.Fatal(err)
	}
	h := guesttest.New(b, wasm)
	h.AcceptInserts = true
	var w abi.Writer
	w.WriteString("a name of some length")
	w.WriteI32(42)
	w.WriteSome()
	w.WriteString("a note")
	w.WriteLen(2)
	w.WriteString("tag1")
	w.WriteString("tag2")
	insertArgs := w.Bytes()
	for _, bc := range []struct {
		reducer string
		args    []byte
	}{
		{"noop", nil},
		{"whoami", nil},
		{"insert_item", insertArgs},
	} {
		_, id, _ := def.Reducer(bc.reducer)
		b.Run(bc.reducer, func(b *testing.B) {
			for b.Loop() {
				res, _, msg, err := h.Call(id, abi.Identity{1}, 1, bc.args)
				if err != nil || res != abi.CallCommitted {
					b.Fatalf("%d %q %v", res, msg, err)
				}
			}
		})
	}
}

// TestImportsEveryHostFunction checks that the SDK binds every function of
// abi.HostFuncs with the documented signature: the test module uses them all,
// and build.CheckABI (run by the build) has already refused any mismatch.
func TestImportsEveryHostFunction(t *testing.T) {
	wasm := guesttest.Build(t, sdktestDir)
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range cm.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod == abi.ImportModule {
			got[name] = true
		}
	}
	for _, f := range abi.HostFuncs {
		if !got[f.Name] {
			t.Errorf("the SDK test module does not import %s", f.Name)
		}
	}
	if err := build.CheckABI(ctx, wasm); err != nil {
		t.Error(err)
	}
}
