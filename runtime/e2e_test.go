package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
)

// Go guests are built once per test binary, into one temporary directory.
var guests struct {
	mu    sync.Mutex
	dir   string
	built map[string][]byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guests.dir != "" {
		os.RemoveAll(guests.dir)
	}
	os.Exit(code)
}

// buildGuest builds the Go package pkg (relative to the repository root) as a
// module: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
func buildGuest(t testing.TB, pkg string) []byte {
	t.Helper()
	guests.mu.Lock()
	defer guests.mu.Unlock()
	if b, ok := guests.built[pkg]; ok {
		return b
	}
	if _, err := os.Stat(filepath.Join("..", pkg)); err != nil {
		t.Skipf("%s is not in the tree yet", pkg)
	}
	if guests.dir == "" {
		d, err := os.MkdirTemp("", "runtime-guests-")
		if err != nil {
			t.Fatal(err)
		}
		guests.dir, guests.built = d, map[string][]byte{}
	}
	out := filepath.Join(guests.dir, strings.ReplaceAll(pkg, "/", "_")+".wasm")
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
	guests.built[pkg] = b
	return b
}

const (
	sdkTestModule = "modules/go/testdata/sdktest"
	secureApp     = "examples/secure_app"
)

func newGoDatabase(t testing.TB, pkg string, opts ...Option) *Database {
	t.Helper()
	ctx := context.Background()
	wasm := buildGuest(t, pkg)
	// One compilation cache for the Go guests of the whole test binary: each
	// test has its own runtime, but compiles from the cache after the first.
	opts = append([]Option{WithCompilationCacheDir(filepath.Join(guests.dir, "cache"))}, opts...)
	rt := newTestRuntime(t, opts...)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	db, err := rt.CreateDatabase(ctx, newTestStore(t), "e2e", mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(ctx) })
	return db
}

func args(f func(w *abi.Writer)) []byte {
	w := abi.NewWriter(nil)
	f(w)
	return w.Bytes()
}

func TestSecureAppCreatePost(t *testing.T) {
	db := newGoDatabase(t, secureApp)
	ctx := context.Background()
	post := args(func(w *abi.Writer) { w.WriteString("Hello from Alice!") })

	_, err := db.Call(ctx, CallRequest{Reducer: "create_post", Args: post})
	var rerr *ReducerError
	if !errors.As(err, &rerr) || rerr.Message != "Unauthorized: You must be logged in to create a post." {
		t.Fatalf("unauthenticated create_post: err = %v", err)
	}
	// Signed in but with no profile: the next check refuses, nothing is written.
	alice := auth.IdentityFromClaims("https://issuer.example/", "alice")
	_, err = db.Call(ctx, CallRequest{Reducer: "create_post", Args: post, Caller: alice})
	if !errors.As(err, &rerr) || !strings.HasPrefix(rerr.Message, "Unauthorized:") {
		t.Fatalf("create_post without a profile: err = %v", err)
	}
	if n, _ := db.Store().Snapshot().Count(mustTable(t, db, "Post")); n != 0 {
		t.Fatalf("%d posts after refused calls", n)
	}
}

// TestSecureAppAuthFlow is the tutorial's session on the example with real
// tokens: auth verifies a token signed by the dev issuer and creates the
// caller's profile; create_post then commits as that identity; a tampered
// or foreign token is refused with the verifier's reason.
func TestSecureAppAuthFlow(t *testing.T) {
	key, v := newDevVerifier(t)
	db := newGoDatabase(t, secureApp, WithTokenVerifier(v))
	ctx := context.Background()
	call := func(reducer string, caller abi.Identity, a []byte) (*CallResult, error) {
		return db.Call(ctx, CallRequest{Reducer: reducer, Args: a, Caller: caller})
	}
	str := func(s string) []byte { return args(func(w *abi.Writer) { w.WriteString(s) }) }

	token, err := key.Mint("alice", time.Hour, map[string]any{"email": "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := call("auth", abi.Identity{}, str(token))
	if err != nil {
		t.Fatal(err)
	}
	alice := abi.NewReader(res.Return).ReadIdentity()
	if want := auth.IdentityFromClaims(key.IssuerName(), "alice"); alice != want {
		t.Fatalf("auth returned %s, want %s", alice, want)
	}
	if _, err := call("auth", abi.Identity{}, str(token)); err != nil {
		t.Fatalf("a second auth with the same token: %v", err)
	}
	if n, _ := db.Store().Snapshot().Count(mustTable(t, db, "User")); n != 1 {
		t.Fatalf("%d User rows after two logins of one user, want 1", n)
	}
	if _, err := call("create_post", alice, str("Hello from Alice!")); err != nil {
		t.Fatalf("create_post as alice: %v", err)
	}
	it, err := db.Store().Snapshot().Scan(mustTable(t, db, "Post"))
	if err != nil {
		t.Fatal(err)
	}
	row, ok := it.Next()
	if !ok {
		t.Fatal("no Post row after create_post")
	}
	// Post: post_id u64, author_identity_id IdentityId, content String, created_at u64.
	r := abi.NewReader(row)
	if id := r.ReadU64(); id != 1 {
		t.Errorf("post_id = %d, want 1 (autoinc)", id)
	}
	if author := r.ReadIdentity(); author != alice {
		t.Errorf("author = %s, want alice %s", author, alice)
	}
	if content := r.ReadString(); content != "Hello from Alice!" {
		t.Errorf("content = %q", content)
	}
	it.Close()

	// Alice edits her own profile; the row keyed by her identity changes.
	if _, err := call("update_profile", alice, args(func(w *abi.Writer) { w.WriteString("Alice"); w.WriteString("a@example.org") })); err != nil {
		t.Fatalf("update_profile: %v", err)
	}

	var rerr *ReducerError
	for name, bad := range map[string]string{
		"tampered": token[:len(token)-2] + "xx",
		"garbage":  "mock_token_alice",
	} {
		_, err := call("auth", abi.Identity{}, str(bad))
		if !errors.As(err, &rerr) || !strings.HasPrefix(rerr.Message, "Invalid or malformed authentication token: invalid token: ") {
			t.Errorf("%s token: err = %v", name, err)
		}
		if strings.Contains(rerr.Message, "TOKEN_INVALID") {
			t.Errorf("%s token: the message carries the errno name: %q", name, rerr.Message)
		}
		if strings.Contains(err.Error(), bad) {
			t.Errorf("%s token: the error echoes the token: %v", name, err)
		}
	}
	foreign, err := auth.OpenServerKey(t.TempDir(), auth.WithDevIssuerName("https://other.example/"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := foreign.Mint("mallory", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call("auth", abi.Identity{}, str(other)); !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "issuer") {
		t.Errorf("token of an untrusted issuer: err = %v", err)
	}
	if n, _ := db.Store().Snapshot().Count(mustTable(t, db, "User")); n != 1 {
		t.Fatalf("%d User rows after refused logins, want 1", n)
	}
}

func TestSDKModule(t *testing.T) {
	db := newGoDatabase(t, sdkTestModule, WithDeadline(2*time.Second))
	ctx := context.Background()
	alice := auth.IdentityFromClaims("https://issuer.example/", "alice")
	do := func(reducer string, a []byte) (*CallResult, error) {
		return db.Call(ctx, CallRequest{Reducer: reducer, Args: a, Caller: alice, Timestamp: time.UnixMicro(1_700_000_000_123_456)})
	}
	count := func() uint64 {
		t.Helper()
		res, err := do("count_items", nil)
		if err != nil {
			t.Fatal(err)
		}
		return abi.NewReader(res.Return).ReadU64()
	}
	insert := func(name string, score int32) []byte {
		return args(func(w *abi.Writer) {
			w.WriteString(name)
			w.WriteI32(score)
			w.WriteNone()
			w.WriteLen(0)
		})
	}

	t.Run("init ran at creation", func(t *testing.T) {
		res, err := do("incr", args(func(w *abi.Writer) { w.WriteString("init") }))
		if err != nil {
			t.Fatal(err)
		}
		if n := abi.NewReader(res.Return).ReadU64(); n != 2 {
			t.Fatalf("init counter after one incr = %d, want 2", n)
		}
	})

	t.Run("committed insert", func(t *testing.T) {
		res, err := do("insert_item", insert("first", 10))
		if err != nil {
			t.Fatal(err)
		}
		if id := abi.NewReader(res.Return).ReadU64(); id == 0 {
			t.Fatal("auto-increment id 0")
		}
		if res.Commit.Offset == 0 || res.Commit.Delta == nil || len(res.Commit.Delta.Tables) != 1 ||
			res.Commit.Delta.Tables[0].Name != "Item" || len(res.Commit.Delta.Tables[0].Inserts) != 1 {
			t.Fatalf("commit = %+v", res.Commit)
		}
		if count() != 1 {
			t.Fatal("count != 1")
		}
	})

	t.Run("error rolls back and the instance is reused", func(t *testing.T) {
		before := count()
		idle := db.cur.Load().idleInstances()
		_, err := do("insert_then_fail", args(func(w *abi.Writer) { w.WriteString("ghost") }))
		var rerr *ReducerError
		if !errors.As(err, &rerr) || rerr.Message != "failing after inserting ghost" {
			t.Fatalf("err = %v", err)
		}
		if got := db.cur.Load().idleInstances(); len(got) != 1 || got[0] != idle[0] {
			t.Fatal("the instance was not returned to the pool after a reducer error")
		}
		if count() != before {
			t.Fatal("the failed reducer's insert was kept")
		}
		_, err = do("fail", args(func(w *abi.Writer) { w.WriteString("my own message") }))
		if !errors.As(err, &rerr) || rerr.Message != "my own message" {
			t.Fatalf("fail: err = %v", err)
		}
	})

	t.Run("panic rolls back", func(t *testing.T) {
		before := count()
		_, err := do("panic", args(func(w *abi.Writer) { w.WriteString("oh no") }))
		var rerr *ReducerError
		if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "oh no") {
			t.Fatalf("err = %v", err)
		}
		if _, err := do("insert_item", insert("after-panic", 1)); err != nil {
			t.Fatal(err)
		}
		if count() != before+1 {
			t.Fatal("wrong count after panic and insert")
		}
	})

	t.Run("energy stops an infinite loop", func(t *testing.T) {
		start := time.Now()
		_, err := db.Call(ctx, CallRequest{Reducer: "infinite_loop", Energy: 100_000_000})
		if !errors.Is(err, ErrOutOfEnergy) || !errors.Is(err, ErrDeadline) || !strings.Contains(err.Error(), "100000000 units") {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("stopped after %s", el)
		}
		if _, err := do("noop", nil); err != nil {
			t.Fatalf("after a deadline: %v", err)
		}
	})

	t.Run("caller and timestamp", func(t *testing.T) {
		res, err := do("whoami", nil)
		if err != nil || abi.NewReader(res.Return).ReadIdentity() != alice {
			t.Fatalf("whoami = %x, %v", res.Return, err)
		}
		res, err = do("now", nil)
		if err != nil || abi.NewReader(res.Return).ReadTimestamp() != 1_700_000_000_123_456 {
			t.Fatalf("now = %x, %v", res.Return, err)
		}
	})

	t.Run("console log", func(t *testing.T) {
		_, err := do("log", args(func(w *abi.Writer) { w.WriteU32(abi.LogWarn); w.WriteString("careful") }))
		if err != nil {
			t.Fatal(err)
		}
		lines := db.Logs().Last(1)
		if len(lines) != 1 || lines[0].Message != "careful" || lines[0].Level != "warn" || lines[0].Reducer != "log" || lines[0].Caller != alice {
			t.Fatalf("log = %+v", lines)
		}
	})

	t.Run("jwt_verify with no issuers", func(t *testing.T) {
		_, err := do("auth", args(func(w *abi.Writer) { w.WriteString("a.b.c") }))
		var rerr *ReducerError
		if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "no token issuers are configured for this database") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("identity_from_claims and caller_claims", func(t *testing.T) {
		res, err := do("identity_of", args(func(w *abi.Writer) { w.WriteString("https://issuer.example/"); w.WriteString("alice") }))
		if err != nil || abi.NewReader(res.Return).ReadIdentity() != alice {
			t.Fatalf("identity_of = %x, %v", res.Return, err)
		}
		claims := `{"iss":"https://issuer.example/","sub":"alice"}`
		res, err = db.Call(ctx, CallRequest{Reducer: "caller_claims", Caller: alice, Claims: []byte(claims)})
		if err != nil {
			t.Fatal(err)
		}
		r := abi.NewReader(res.Return)
		if !r.ReadOptionTag() || r.ReadString() != claims {
			t.Fatalf("caller_claims = %q", res.Return)
		}
		res, err = db.Call(ctx, CallRequest{Reducer: "caller_claims"})
		if err != nil || res.Return[0] != 1 {
			t.Fatalf("caller_claims without a token = %x, %v", res.Return, err)
		}
	})

	t.Run("lifecycle", func(t *testing.T) {
		if _, err := db.CallLifecycle(ctx, abi.LifecycleClientConnected, CallRequest{Caller: alice}); err != nil {
			t.Fatal(err)
		}
		res, err := do("incr", args(func(w *abi.Writer) { w.WriteString("client_connected") }))
		if err != nil || abi.NewReader(res.Return).ReadU64() != 2 {
			t.Fatalf("client_connected counter: %x, %v", res.Return, err)
		}
	})

	t.Run("argument validation names the parameter", func(t *testing.T) {
		_, err := do("insert_item", args(func(w *abi.Writer) { w.WriteString("x"); w.WriteI32(1); w.WriteU8(7) }))
		if !errors.Is(err, ErrInvalidArguments) || !strings.Contains(err.Error(), "argument 3 (note: Option<String>)") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestSDKTrapDiscardsInstance runs a Go guest into the memory limit: the Go
// runtime aborts (a trap), the transaction rolls back, the instance goes.
func TestSDKTrapDiscardsInstance(t *testing.T) {
	// 16 MiB: small enough to reach quickly (zeroing memory is slow under
	// WithCloseOnContextDone).
	db := newGoDatabase(t, sdkTestModule, WithMemoryLimitPages(256))
	ctx := context.Background()
	if _, err := db.Call(ctx, CallRequest{Reducer: "insert_item", Args: args(func(w *abi.Writer) {
		w.WriteString("kept")
		w.WriteI32(1)
		w.WriteNone()
		w.WriteLen(0)
	})}); err != nil {
		t.Fatal(err)
	}
	idle := db.cur.Load().idleInstances()
	_, err := db.Call(ctx, CallRequest{Reducer: "alloc", Args: args(func(w *abi.Writer) { w.WriteU32(64) })})
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "trapped") {
		t.Fatalf("err = %v; want ErrTrap", err)
	}
	for _, inst := range db.cur.Load().idleInstances() {
		for _, old := range idle {
			if inst == old {
				t.Fatal("the trapped instance is back in the pool")
			}
		}
	}
	// The Go runtime's fatal error reached the module log through stderr.
	found := false
	for _, l := range db.Logs().Last(1000) {
		if strings.Contains(l.Message, "out of memory") && l.Reducer == "alloc" {
			found = true
		}
	}
	if !found {
		t.Error("the guest's out-of-memory message is not in the module log")
	}
	res, err := db.Call(ctx, CallRequest{Reducer: "count_items"})
	if err != nil {
		t.Fatalf("after a trap: %v", err)
	}
	if n := abi.NewReader(res.Return).ReadU64(); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
}

func TestJWTVerifyWithRealVerifier(t *testing.T) {
	key, v := newDevVerifier(t)
	db := newGoDatabase(t, sdkTestModule, WithTokenVerifier(v))
	token, err := key.Mint("bob", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Call(context.Background(), CallRequest{Reducer: "auth", Args: args(func(w *abi.Writer) { w.WriteString(token) })})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := abi.NewReader(res.Return).ReadIdentity(), auth.IdentityFromClaims(key.IssuerName(), "bob"); got != want {
		t.Fatalf("auth returned %s, want %s", got, want)
	}
	_, err = db.Call(context.Background(), CallRequest{Reducer: "auth", Args: args(func(w *abi.Writer) { w.WriteString(token + "x") })})
	var rerr *ReducerError
	if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "invalid token") {
		t.Fatalf("tampered token: err = %v", err)
	}
}

func mustTable(t testing.TB, db *Database, name string) (id storeTableID) {
	t.Helper()
	id, err := db.Store().TableID(name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var _ = fmt.Sprint
