package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/modules/build"
	"github.com/spacetime-go/spacetime/modules/codegen"
	"github.com/spacetime-go/spacetime/modules/guesttest"
	"github.com/spacetime-go/spacetime/modules/schema"
)

// TestGeneratedCodeIsCurrent fails when schema.spacetimedb changed without
// `spacetime generate`.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	def, err := schema.ParseDir(".")
	if err != nil {
		t.Fatal(err)
	}
	want, err := codegen.GenerateGo(def)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(codegen.GoFileName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale; run: go run ./cmd/spacetime generate examples/secure_app", codegen.GoFileName)
	}
}

// TestBuildsToValidModule builds the example from source and compiles it
// with wazero's compiler, checking its imports and exports against the ABI.
func TestBuildsToValidModule(t *testing.T) {
	wasm := guesttest.Build(t, ".")
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cm.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != abi.ImportModule && mod != abi.WASIModule {
			t.Errorf("imports %s.%s", mod, name)
		}
	}
	if err := build.CheckABI(ctx, wasm); err != nil {
		t.Error(err)
	}
}

func TestDescribeMatchesSchema(t *testing.T) {
	h := guesttest.New(t, guesttest.Build(t, "."))
	got, err := abi.UnmarshalModuleDef(h.Describe(t))
	if err != nil {
		t.Fatal(err)
	}
	def, err := schema.ParseDir(".")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := got.Marshal()
	w, _ := def.Marshal()
	if !bytes.Equal(g, w) {
		t.Errorf("described\n%s\nschema\n%s", g, w)
	}
	post, _ := got.Table("Post")
	if post == nil || !post.Columns[0].AutoInc {
		t.Errorf("Post.post_id should be auto-increment: %+v", post)
	}
}

// The unauthenticated paths need no tables, so they run under the minimal
// test host; the runtime's end-to-end tests cover the rest.
func TestUnauthenticatedCallerIsRefused(t *testing.T) {
	h := guesttest.New(t, guesttest.Build(t, "."))
	def, err := schema.ParseDir(".")
	if err != nil {
		t.Fatal(err)
	}
	str := func(ss ...string) []byte {
		var w abi.Writer
		for _, s := range ss {
			w.WriteString(s)
		}
		return w.Bytes()
	}
	for _, tt := range []struct {
		reducer string
		args    []byte
		want    string
	}{
		{"create_post", str("Hello, unauthenticated world!"), "Unauthorized: You must be logged in to create a post."},
		{"update_profile", str("mallory", "m@example.com"), "Unauthorized: You must be logged in to update your profile."},
	} {
		_, id, _ := def.Reducer(tt.reducer)
		res, _, msg, err := h.Call(id, abi.Identity{}, 1, tt.args)
		if err != nil {
			t.Fatalf("%s trapped: %v", tt.reducer, err)
		}
		if res != abi.CallFailed || msg != tt.want {
			t.Errorf("%s by the zero identity: result %d, message %q; want failure %q", tt.reducer, res, msg, tt.want)
		}
	}
}
