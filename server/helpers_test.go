package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/runtime"
)

// Modules are built from source once per test binary, and compiled machine
// code is shared through one compilation cache, so that each test pays for
// neither a Go build nor a wazero compile.
var shared struct {
	mu       sync.Mutex
	dir      string
	built    map[string][]byte
	cacheDir string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func sharedDir(t testing.TB) string {
	if shared.dir == "" {
		d, err := os.MkdirTemp("", "server-test-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir, shared.built = d, map[string][]byte{}
		shared.cacheDir = filepath.Join(d, "cache")
	}
	return shared.dir
}

const (
	appModule   = "server/testdata/app"
	appV2Module = "server/testdata/app_v2"
	appBad      = "server/testdata/app_bad"
	secureApp   = "examples/secure_app"
)

// buildModule builds the Go module package pkg (relative to the repository
// root): GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
func buildModule(t testing.TB, pkg string) []byte {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	dir := sharedDir(t)
	if b, ok := shared.built[pkg]; ok {
		return b
	}
	out := filepath.Join(dir, strings.ReplaceAll(pkg, "/", "_")+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	shared.built[pkg] = b
	return b
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer starts a server on a free port with its data in dir.
func startServer(t testing.TB, dir string, opts ...Option) *Server {
	t.Helper()
	shared.mu.Lock()
	sharedDir(t)
	cache := shared.cacheDir
	shared.mu.Unlock()
	ctx := context.Background()
	opts = append([]Option{
		WithDataDir(dir),
		WithListenAddr("127.0.0.1:0"),
		WithLogger(testLogger(t)),
		WithRuntimeOptions(runtime.WithCompilationCacheDir(cache)),
	}, opts...)
	if raceEnabled {
		// Before the test's own options, which may set a timeout to test it.
		opts = append([]Option{WithRuntimeOptions(runtime.WithCompileTimeout(10 * time.Minute))}, opts...)
	}
	s, err := New(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func newServer(t testing.TB, opts ...Option) *Server {
	return startServer(t, t.TempDir(), opts...)
}

// response is an HTTP answer.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.code, err, r.body)
	}
	return m
}

func (r response) errorText(t testing.TB) string {
	t.Helper()
	s, _ := r.json(t)["error"].(string)
	if s == "" {
		t.Fatalf("answer %d has no error: %s", r.code, r.body)
	}
	return s
}

func do(t testing.TB, s *Server, method, path, token string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: res.StatusCode, header: res.Header, body: b}
}

// operator creates an operator identity and returns its token.
func operator(t testing.TB, s *Server) (string, string) {
	t.Helper()
	r := do(t, s, "POST", "/v1/identity", "", nil)
	if r.code != 200 {
		t.Fatalf("POST /v1/identity: %d %s", r.code, r.body)
	}
	m := r.json(t)
	return m["identity"].(string), m["token"].(string)
}

func publish(t testing.TB, s *Server, name, token string, wasm []byte, want int) response {
	t.Helper()
	r := do(t, s, "PUT", "/v1/database/"+name, token, wasm)
	if r.code != want {
		t.Fatalf("publish %s: got %d, want %d: %s", name, r.code, want, r.body)
	}
	return r
}

func call(t testing.TB, s *Server, db, reducer, token string, args ...any) response {
	t.Helper()
	if args == nil {
		args = []any{}
	}
	b, _ := json.Marshal(args)
	return do(t, s, "POST", "/v1/database/"+db+"/call/"+reducer, token, b)
}

func mustCall(t testing.TB, s *Server, db, reducer, token string, args ...any) map[string]any {
	t.Helper()
	r := call(t, s, db, reducer, token, args...)
	if r.code != 200 {
		t.Fatalf("call %s: %d %s", reducer, r.code, r.body)
	}
	return r.json(t)
}

// sqlRows runs a query and returns the rows of its one result.
func sql(t testing.TB, s *Server, db, token, q string) (response, []map[string]any) {
	t.Helper()
	r := do(t, s, "POST", "/v1/database/"+db+"/sql", token, []byte(q))
	if r.code != 200 {
		return r, nil
	}
	var res []struct {
		Rows    []map[string]any `json:"rows"`
		AsOwner bool             `json:"as_owner"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil || len(res) != 1 {
		t.Fatalf("sql answer: %v %s", err, r.body)
	}
	return r, res[0].Rows
}

// devToken mints a token of the server's own issuer, as `spacetime token mint` does.
func devToken(t testing.TB, s *Server, sub string) string {
	t.Helper()
	tok, err := s.key.Mint(sub, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// lookupTables returns the store tables of database name.
func (s *Server) lookupTables(t testing.TB, name string) []abi.TableDef {
	t.Helper()
	d, ok := s.lookup(name)
	if !ok {
		t.Fatalf("no database %s", name)
	}
	return d.rdb.Store().Tables()
}
