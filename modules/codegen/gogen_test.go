package codegen

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/modules/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden compares the generated Go for each testdata/NAME/schema.spacetimedb
// with the committed testdata/NAME/spacetime_generated.go; run with -update
// after an intended change. TestGoldenCompiles type-checks those directories
// for wasip1.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", schema.FileName))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			def, err := schema.ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := GenerateGo(def)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, []byte(Header+"\n")) {
				t.Errorf("output does not start with %q", Header)
			}
			golden := filepath.Join(dir, GoFileName)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("generated code differs from %s; run go test ./modules/codegen -update and review the diff", golden)
			}
		})
	}
}

// TestGoldenCompiles type-checks the golden directories (generated code plus
// the reducers they declare) for GOOS=wasip1 GOARCH=wasm with go vet, which
// is much faster than a full wasm build; the example and the SDK test module
// get full builds in their own tests.
func TestGoldenCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	cmd := exec.Command("go", "vet", "./testdata/tutorial", "./testdata/full")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generated code does not compile for wasip1: %v\n%s", err, out)
	}
	// The generated BSATN methods against the host's codec, on the host.
	if out, err := exec.Command("go", "test", "./testdata/full").CombinedOutput(); err != nil {
		t.Fatalf("round trip of generated rows: %v\n%s", err, out)
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ in, exp, unexp string }{
		{"identity_id", "IdentityID", "identityID"},
		{"create_post", "CreatePost", "createPost"},
		{"User", "User", "user"},
		{"id", "ID", "id"},
		{"url_path", "URLPath", "urlPath"},
		{"type", "Type", "type_"},
		{"ctx", "Ctx", "ctx_"},
		{"_x", "X", "x"},
		{"a__b", "AB", "ab"},
	} {
		if got := exported(tt.in); got != tt.exp {
			t.Errorf("exported(%q) = %q, want %q", tt.in, got, tt.exp)
		}
		if got := unexported(tt.in); got != tt.unexp {
			t.Errorf("unexported(%q) = %q, want %q", tt.in, got, tt.unexp)
		}
	}
}

func TestCollisions(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"reducer and table", "table Post { a: u8 }\nreducer post();", "table Post and reducer post both become the Go name Post"},
		{"columns", "table T { user_id: u8, User_id: u8 }", "columns user_id and User_id of table T both become the Go field UserID"},
		{"handle", "table User { a: u8 }\ntable UserTable { a: u8 }\nreducer user_table();", "both become the Go name UserTable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			def, err := schema.Parse("s", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = GenerateGo(def)
			if !errors.Is(err, ErrCodegen) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrCodegen containing %q", err, tt.want)
			}
		})
	}
}

func TestWrongABIVersion(t *testing.T) {
	_, err := GenerateGo(&abi.ModuleDef{ABIVersion: abi.Version + 1})
	if !errors.Is(err, ErrCodegen) {
		t.Errorf("err = %v", err)
	}
}

func TestGenerateDir(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "tutorial", schema.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, schema.FileName), src, 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := GenerateDir(dir, WithPackage("bindings"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte("package bindings\n")) || bytes.Contains(got, []byte("func main()")) {
		t.Errorf("WithPackage(bindings) output:\n%s", got)
	}
	// A schema error comes back as the parser's error, with its position.
	if err := os.WriteFile(filepath.Join(dir, schema.FileName), []byte("table T { a: nope }"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateDir(dir); !errors.Is(err, schema.ErrSchema) || !strings.Contains(err.Error(), "schema.spacetimedb:1:14") {
		t.Errorf("err = %v", err)
	}
}

func BenchmarkGenerateGo(b *testing.B) {
	for _, name := range []string{"tutorial", "full"} {
		def, err := schema.ParseFile(filepath.Join("testdata", name, schema.FileName))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := GenerateGo(def); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzGenerate checks that every schema the parser accepts either generates
// Go that parses (GenerateGo runs go/format on it) or is refused with
// ErrCodegen, never anything else and never a panic.
func FuzzGenerate(f *testing.F) {
	for _, name := range []string{"tutorial", "full"} {
		b, err := os.ReadFile(filepath.Join("testdata", name, schema.FileName))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("table _ { _: u8, _1: Option<Vec<Bytes>> }\nreducer _x(type: u8, ctx: String) -> Option<Timestamp>;"))
	f.Fuzz(func(t *testing.T, src []byte) {
		def, err := schema.Parse("fuzz", src)
		if err != nil {
			return
		}
		if _, err := GenerateGo(def); err != nil && !errors.Is(err, ErrCodegen) {
			t.Fatalf("GenerateGo: %v", err)
		}
	})
}
