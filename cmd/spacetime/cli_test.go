package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/server"
)

// cli runs the tool in process with its own environment and working
// directory, as a user in a shell would.
type cli struct {
	t   testing.TB
	env map[string]string
	wd  string
}

func (c *cli) with(kv ...string) *cli {
	n := &cli{t: c.t, env: map[string]string{}, wd: c.wd}
	for k, v := range c.env {
		n.env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		n.env[kv[i]] = kv[i+1]
	}
	return n
}

func (c *cli) in(dir string) *cli {
	n := c.with()
	n.wd = dir
	return n
}

// run returns stdout, stderr and the error the process would exit with.
func (c *cli) run(ctx context.Context, args ...string) (string, string, error) {
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return c.env[k] }, wd: c.wd}
	err := a.run(ctx, args)
	return stdout.String(), stderr.String(), err
}

// ok runs a command that must succeed.
func (c *cli) ok(args ...string) (string, string) {
	c.t.Helper()
	out, errOut, err := c.run(context.Background(), args...)
	if err != nil {
		c.t.Fatalf("spacetime %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out, errOut
}

// fail runs a command that must fail and returns what it prints on stderr
// as a process would (exitCode's output).
func (c *cli) fail(args ...string) (string, int) {
	c.t.Helper()
	out, errOut, err := c.run(context.Background(), args...)
	if err == nil {
		c.t.Fatalf("spacetime %s succeeded, want a failure\nstdout:\n%s", strings.Join(args, " "), out)
	}
	var b bytes.Buffer
	code := exitCode(err, &b)
	return errOut + b.String(), code
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// repoRoot is the module root (two levels up from cmd/spacetime).
func repoRoot(t testing.TB) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// exampleProject assembles the tutorial's example (examples/secure_app,
// copied from source, with its auth reducer on real tokens) as a standalone
// project that uses the SDK embedded in the tool, like one `spacetime new`
// makes.
func exampleProject(t testing.TB) string {
	root := repoRoot(t)
	src := filepath.Join(root, "examples", "secure_app")
	dir := filepath.Join(t.TempDir(), "secure_app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasSuffix(n, "_test.go") || n == "spacetime_generated.go" || !(strings.HasSuffix(n, ".go") || n == "schema.spacetimedb") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gomod := "module secure_app\n\ngo " + goVersion + "\n\nrequire github.com/spacetime-go/spacetime v0.0.0\n\nreplace github.com/spacetime-go/spacetime => ./" + sdkDir + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startServer runs a real server on a free port with its own data directory.
func startServer(t testing.TB) (*server.Server, string) {
	t.Helper()
	dataDir := t.TempDir()
	ctx := context.Background()
	s, err := server.New(ctx, server.WithDataDir(dataDir), server.WithListenAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s, dataDir
}

// TestEndToEnd follows the tutorial with the real tool, a real server and
// the example module built from source.
func TestEndToEnd(t *testing.T) {
	srv, dataDir := startServer(t)
	project := exampleProject(t)
	cfgDir := t.TempDir()
	base := &cli{t: t, wd: t.TempDir(), env: map[string]string{
		"SPACETIME_SERVER":     srv.URL(),
		"SPACETIME_CONFIG_DIR": cfgDir,
		"SPACETIME_DATA_DIR":   dataDir,
	}}

	// publish builds the project (with progress) and creates the database.
	out, errOut := base.ok("publish", "--project", project)
	for _, want := range []string{"Compiling", "Built", "Publishing secure_app", "Created operator identity"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("publish progress lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "Created database secure_app") {
		t.Fatalf("publish stdout = %q", out)
	}
	wasm := filepath.Join(project, "target", "secure_app.wasm")

	t.Run("credentials", func(t *testing.T) {
		st, err := os.Stat(filepath.Join(cfgDir, credentialsFile))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("credentials mode = %v, want 0600", st.Mode().Perm())
		}
		// login keeps the identity that owns the database.
		out, _ := base.ok("login")
		if !strings.Contains(out, "Already logged in") {
			t.Errorf("login = %q", out)
		}
	})

	t.Run("call unauthenticated fails with the reducer's message", func(t *testing.T) {
		msg, code := base.fail("call", "create_post", "Hello, unauthenticated world!")
		want := `Reducer call failed: "Unauthorized: You must be logged in to create a post."`
		if strings.TrimSpace(msg) != want || code != 1 {
			t.Errorf("stderr = %q, exit %d; want %q, exit 1", msg, code, want)
		}
		if msg, code := base.fail("call", "nope"); code != 1 || !strings.Contains(msg, `has no reducer "nope"; it has: `) || !strings.Contains(msg, "create_post") {
			t.Errorf("unknown reducer: %q exit %d", msg, code)
		}
		// The real process: exit status 1 and exactly the tutorial's line.
		if !testing.Short() {
			cmd := exec.Command(toolBinary(t), "call", "create_post", "Hello, unauthenticated world!")
			cmd.Env = append(os.Environ(), "SPACETIME_SERVER="+srv.URL(), "SPACETIME_CONFIG_DIR="+cfgDir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || stderr.String() != want+"\n" || stdout.Len() != 0 {
				t.Errorf("binary: err %v, stdout %q, stderr %q; want exit 1 and %q", err, stdout.String(), stderr.String(), want)
			}
		}
		// --json also prints the server's answer for scripts.
		out, _, err := base.run(context.Background(), "call", "--json", "create_post", "x")
		var rerr *ReducerError
		if !errors.As(err, &rerr) {
			t.Fatalf("err = %v", err)
		}
		var ans map[string]any
		if err := json.Unmarshal([]byte(out), &ans); err != nil || ans["status"] != "failed" || ans["error"] != rerr.Message {
			t.Errorf("--json output = %q (%v)", out, err)
		}
	})

	// A subscriber in "a second terminal" sees alice's post arrive.
	subCtx, cancelSub := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelSub()
	type result struct {
		out, errOut string
		err         error
	}
	subDone := make(chan result, 1)
	var subOut, subErr syncBuffer
	go func() {
		a := &app{stdout: &subOut, stderr: &subErr, getenv: func(k string) string { return base.env[k] }, wd: base.wd}
		err := a.run(subCtx, []string{"subscribe", "SELECT * FROM Post", "--count", "1", "--timeout", "50s"})
		subDone <- result{out: subOut.String(), errOut: subErr.String(), err: err}
	}()
	// Post only once the subscription is live, so the post arrives as an
	// update rather than among the initial rows.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(subErr.String(), "Subscribed to") && time.Now().Before(deadline); {
		if strings.Contains(subErr.String(), "error") || len(subDone) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("token mint, auth, create_post as alice", func(t *testing.T) {
		tok, _ := base.ok("token", "mint", "--sub", "alice", "--claim", "email=alice@example.com")
		tok = strings.TrimSpace(tok)
		if strings.Count(tok, ".") != 2 {
			t.Fatalf("token = %q", tok)
		}
		out, _ := base.ok("call", "auth", tok)
		alice := auth.IdentityFromClaims(auth.DevIssuerName, "alice")
		if !strings.Contains(out, "Authenticated as "+alice.String()) {
			t.Errorf("auth output = %q, want identity %s", out, alice)
		}
		base.ok("call", "create_post", "Hello from Alice!")
		// --anonymous ignores the saved session.
		if msg, _ := base.fail("call", "--anonymous", "create_post", "nope"); !strings.Contains(msg, "You must be logged in") {
			t.Errorf("anonymous call: %q", msg)
		}
	})

	t.Run("subscribe --count", func(t *testing.T) {
		select {
		case r := <-subDone:
			if r.err != nil && strings.Contains(r.err.Error(), "not available on this server yet") {
				t.Skipf("the server does not serve subscriptions yet: %v", r.err)
			}
			if r.err != nil {
				t.Fatalf("subscribe: %v\n%s", r.err, r.out)
			}
			if !strings.Contains(r.out, "+ Post ") || !strings.Contains(r.out, "Hello from Alice!") {
				t.Errorf("subscribe output:\n%s", r.out)
			}
		case <-time.After(55 * time.Second):
			t.Fatalf("subscribe did not end; output so far:\n%s", subOut.String())
		}
		// --count 0 prints the initial rows and exits; --json is one server
		// message per line.
		out, _ := base.ok("subscribe", "--json", "--count", "0", "SELECT * FROM Post")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var last map[string]json.RawMessage
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["SubscribeApplied"] == nil || !strings.Contains(out, "Hello from Alice!") {
			t.Errorf("subscribe --json:\n%s", out)
		}
	})

	t.Run("sql", func(t *testing.T) {
		out, _ := base.ok("sql", "SELECT * FROM Post")
		if !strings.Contains(out, "content") || !strings.Contains(out, "Hello from Alice!") {
			t.Errorf("sql output:\n%s", out)
		}
		out, _ = base.ok("sql", "--json", "SELECT * FROM Post")
		var res []struct {
			Table   string           `json:"table"`
			Columns []string         `json:"columns"`
			Rows    []map[string]any `json:"rows"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 || res[0].Table != "Post" || len(res[0].Rows) != 1 || res[0].Rows[0]["content"] != "Hello from Alice!" {
			t.Errorf("sql --json = %s (%v)", out, err)
		}
		if msg, code := base.fail("sql", "SELEC nonsense"); code != 1 || !strings.Contains(msg, "sql on secure_app") {
			t.Errorf("bad query: %q exit %d", msg, code)
		}
		// grant_access through the CLI's read paths: a private message from
		// bob to alice is seen by the two of them, under their sessions, and
		// by nobody else; a table no grant opens is refused, not empty.
		alice := auth.IdentityFromClaims(auth.DevIssuerName, "alice")
		bob := base.with("SPACETIME_CONFIG_DIR", t.TempDir())
		carol := base.with("SPACETIME_CONFIG_DIR", t.TempDir())
		for who, c := range map[string]*cli{"bob": bob, "carol": carol} {
			tok, _ := c.ok("token", "mint", "--sub", who)
			c.ok("call", "auth", strings.TrimSpace(tok))
		}
		bob.ok("call", "send_message", alice.String(), "psst, alice")
		for _, tc := range []struct {
			name string
			c    *cli
			args []string
			sees bool
		}{
			{"alice", base, []string{"sql", "--as-user", "SELECT * FROM PrivateMessage"}, true},
			{"bob", bob, []string{"sql", "--as-user", "SELECT * FROM PrivateMessage"}, true},
			{"carol", carol, []string{"sql", "--as-user", "SELECT * FROM PrivateMessage"}, false},
			{"anonymous", base, []string{"sql", "--anonymous", "SELECT * FROM PrivateMessage"}, false},
			{"alice subscribing", base, []string{"subscribe", "--as-user", "--count", "0", "SELECT * FROM PrivateMessage"}, true},
			{"anonymous subscribing", base, []string{"subscribe", "--anonymous", "--count", "0", "SELECT * FROM PrivateMessage"}, false},
			{"the owner", base, []string{"sql", "SELECT * FROM PrivateMessage"}, true},
		} {
			if out, _ := tc.c.ok(tc.args...); strings.Contains(out, "psst, alice") != tc.sees {
				t.Errorf("%s: sees the message = %v, want %v:\n%s", tc.name, !tc.sees, tc.sees, out)
			}
		}
		if msg, _ := base.fail("sql", "--anonymous", "SELECT * FROM identity"); !strings.Contains(msg, "grant_access") {
			t.Errorf("anonymous read of the identity table: %q", msg)
		}

		// The host's identity table, read by the owner: timestamps print as times.
		out, _ = base.ok("sql", "SELECT * FROM identity")
		if !strings.Contains(out, "alice") || !regexp.MustCompile(`\b20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}Z\b`).MatchString(out) {
			t.Errorf("sql on the identity table:\n%s", out)
		}
	})

	t.Run("describe", func(t *testing.T) {
		out, _ := base.ok("describe")
		for _, want := range []string{"Database secure_app", "table Post", "create_post(content: String)", "auth(token: String) -> IdentityId", "grant_access Post to public;",
			"table identity (system table: the host writes it, the module reads it)", "last_seen"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe lacks %q:\n%s", want, out)
			}
		}
		out, _ = base.ok("describe", "--json")
		var d struct {
			Database string `json:"database"`
			Module   struct {
				Tables []struct {
					Name   string `json:"name"`
					System bool   `json:"system"`
				} `json:"tables"`
			} `json:"module"`
		}
		// The module's tables (User and Post first), then the host's identity system table.
		err := json.Unmarshal([]byte(out), &d)
		n := len(d.Module.Tables)
		if err != nil || d.Database != "secure_app" || n < 3 ||
			d.Module.Tables[1].Name != "Post" || d.Module.Tables[n-1].Name != "identity" || !d.Module.Tables[n-1].System {
			t.Errorf("describe --json = %s (%v)", out, err)
		}
	})

	t.Run("logs", func(t *testing.T) {
		out, _ := base.ok("logs")
		if !strings.Contains(out, "Post created successfully by identity") {
			t.Errorf("logs:\n%s", out)
		}
		out, _ = base.ok("logs", "--json", "-n", "1")
		var l logLine
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &l); err != nil || l.Message == "" || l.Seq == 0 {
			t.Errorf("logs --json = %q (%v)", out, err)
		}
		// -f streams until interrupted.
		ctx, cancel := context.WithCancel(context.Background())
		var fout syncBuffer
		done := make(chan error, 1)
		go func() {
			a := &app{stdout: &fout, stderr: io.Discard, getenv: func(k string) string { return base.env[k] }, wd: base.wd}
			done <- a.run(ctx, []string{"logs", "-f", "-n", "0"})
		}()
		// With -n 0 only lines logged after the stream opened appear; the
		// stream's start is not observable, so post until one shows.
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(fout.String(), "Post created successfully") && time.Now().Before(deadline) {
			base.ok("call", "create_post", "another post")
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("logs -f ended with %v", err)
		}
		if !strings.Contains(fout.String(), "Post created successfully") {
			t.Errorf("logs -f printed %q", fout.String())
		}
	})

	t.Run("republish a built module", func(t *testing.T) {
		out, _ := base.ok("publish", "secure_app", "--wasm", wasm)
		if !strings.Contains(out, "Updated database secure_app") {
			t.Errorf("republish = %q", out)
		}
		out, _ = base.ok("publish", "--json", "copy", "--wasm", wasm)
		var res publishAnswer
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Database != "copy" || !res.Created || res.ModuleHash == "" {
			t.Errorf("publish --json = %s (%v)", out, err)
		}
	})

	t.Run("typescript bindings", func(t *testing.T) {
		tsc := os.Getenv("SPACETIME_TEST_TSC")
		if tsc == "" {
			tsc, _ = exec.LookPath("tsc")
		}
		node, _ := exec.LookPath("node")
		out := filepath.Join(t.TempDir(), "bindings")
		base.ok("generate", project, "--lang", "typescript", "--out", out)
		if tsc == "" || node == "" {
			t.Skip("no tsc (set SPACETIME_TEST_TSC) or node: the bindings are generated but not compiled")
		}
		js := filepath.Join(out, "js")
		if b, err := exec.Command(tsc, "--strict", "--target", "es2022", "--module", "es2022", "--lib", "es2022,dom", "--outDir", js, filepath.Join(out, tsFileName)).CombinedOutput(); err != nil {
			t.Fatalf("tsc: %v\n%s", err, b)
		}
		os.WriteFile(filepath.Join(js, "package.json"), []byte(`{"type":"module"}`), 0o644)
		os.WriteFile(filepath.Join(js, "run.js"), []byte(tsClientScript), 0o644)
		tok, _ := base.ok("token", "mint", "--sub", "tsuser")
		b, err := exec.Command(node, filepath.Join(js, "run.js"), srv.URL(), strings.TrimSpace(tok)).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, b)
		}
		want := "reducer error: Unauthorized: You must be logged in to create a post.\nidentity: " + auth.IdentityFromClaims(auth.DevIssuerName, "tsuser").String() + "\nposted: true\n"
		if string(b) != want {
			t.Errorf("node output:\n%s\nwant:\n%s", b, want)
		}
	})

	t.Run("database resolution", func(t *testing.T) {
		// Two databases now: without a hint the tool asks for one.
		msg, code := base.fail("sql", "SELECT * FROM Post")
		if code != 2 || !strings.Contains(msg, "2 databases (copy, secure_app)") || !strings.Contains(msg, "--db") {
			t.Errorf("ambiguous: %q exit %d", msg, code)
		}
		for _, tt := range []struct {
			name string
			c    *cli
			args []string
			want string
		}{
			{"flag", base, []string{"describe", "--db", "copy"}, "Database copy"},
			{"flag before command", base, []string{"--db=copy", "describe"}, ""},
			{"env", base.with("SPACETIME_DB", "copy"), []string{"describe"}, "Database copy"},
			{"flag beats env", base.with("SPACETIME_DB", "copy"), []string{"describe", "--db", "secure_app"}, "Database secure_app"},
			{"project directory", base.in(project), []string{"describe"}, "Database secure_app"},
			{"positional", base, []string{"describe", "copy"}, "Database copy"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, _, err := tt.c.run(context.Background(), tt.args...)
				if tt.want == "" {
					if err == nil {
						t.Errorf("want an error (--db is not a global flag)")
					}
					return
				}
				if err != nil || !strings.Contains(out, tt.want) {
					t.Errorf("out = %q, err = %v; want %q", out, err, tt.want)
				}
			})
		}
	})

	t.Run("server flag and env", func(t *testing.T) {
		down := "http://127.0.0.1:1"
		want := "cannot reach the server at " + down + ": is it running? Start one with `spacetime start` or `spacetime dev`"
		for _, args := range [][]string{
			{"--server", down, "list"},
			{"list", "--server=" + down},
		} {
			msg, code := base.fail(args...)
			if code != 1 || !strings.Contains(msg, want) {
				t.Errorf("%v: %q exit %d", args, msg, code)
			}
		}
		msg, _ := base.with("SPACETIME_SERVER", down).fail("call", "create_post", "x")
		if !strings.Contains(msg, want) {
			t.Errorf("env: %q", msg)
		}
		out, _ := base.ok("list", "--json")
		var l struct {
			Databases []dbInfo `json:"databases"`
		}
		if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Databases) != 2 {
			t.Errorf("list --json = %s", out)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if msg, code := base.fail("delete", "copy"); code != 2 || !strings.Contains(msg, "--yes") {
			t.Errorf("delete without --yes: %q exit %d", msg, code)
		}
		if out, _ := base.ok("delete", "copy", "--yes"); !strings.Contains(out, "Deleted database copy") {
			t.Errorf("delete = %q", out)
		}
		if msg, _ := base.fail("describe", "--db", "copy"); !strings.Contains(msg, `no database named "copy"`) {
			t.Errorf("describe after delete: %q", msg)
		}
		// One database left: commands find it without --db.
		if out, _ := base.ok("describe"); !strings.Contains(out, "Database secure_app") {
			t.Errorf("describe = %q", out)
		}
	})

	t.Run("token mint", func(t *testing.T) {
		out, _ := base.ok("token", "mint", "--json", "--sub", "bob", "--ttl", "5m")
		var m struct {
			Token, Issuer, Subject, Identity string
			ExpiresAt                        time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil || m.Subject != "bob" || m.Identity != auth.IdentityFromClaims(auth.DevIssuerName, "bob").String() || time.Until(m.ExpiresAt) > 6*time.Minute {
			t.Errorf("token mint --json = %s (%v)", out, err)
		}
		msg, _ := base.with("SPACETIME_DATA_DIR", t.TempDir()).fail("token", "mint", "--sub", "x")
		if !strings.Contains(msg, "no server key in") {
			t.Errorf("no key: %q", msg)
		}
		if msg, code := base.fail("token", "mint"); code != 2 || !strings.Contains(msg, "--sub") {
			t.Errorf("no --sub: %q exit %d", msg, code)
		}
	})

	t.Run("operator token from another server key is replaced", func(t *testing.T) {
		other, _ := startServer(t)
		otherCfg := t.TempDir()
		base.with("SPACETIME_SERVER", other.URL(), "SPACETIME_CONFIG_DIR", otherCfg).ok("login")
		a := &app{getenv: func(k string) string { return base.env[k] }}
		oa := &app{getenv: func(k string) string { return map[string]string{"SPACETIME_CONFIG_DIR": otherCfg}[k] }}
		oc, err := oa.loadCredentials()
		if err != nil {
			t.Fatal(err)
		}
		creds, err := a.loadCredentials()
		if err != nil {
			t.Fatal(err)
		}
		creds.server(srv.URL()).Token = oc.server(other.URL()).Token
		if err := a.saveCredentials(creds); err != nil {
			t.Fatal(err)
		}
		out, errOut := base.ok("publish", "fresh", "--wasm", wasm)
		if !strings.Contains(out, "Created database fresh") || !strings.Contains(errOut, "no longer accepts the stored operator token") {
			t.Errorf("publish with a foreign token: stdout %q stderr %q", out, errOut)
		}
	})

	t.Run("stale session is forgotten", func(t *testing.T) {
		creds, err := (&app{getenv: func(k string) string { return base.env[k] }}).loadCredentials()
		if err != nil {
			t.Fatal(err)
		}
		creds.server(srv.URL()).Databases["secure_app"].Token = "not.a.token"
		a := &app{getenv: func(k string) string { return base.env[k] }}
		if err := a.saveCredentials(creds); err != nil {
			t.Fatal(err)
		}
		msg, _ := base.fail("call", "--db", "secure_app", "create_post", "x")
		if !strings.Contains(msg, "call auth") {
			t.Errorf("stale session: %q", msg)
		}
		msg, _ = base.fail("call", "--db", "secure_app", "create_post", "x")
		if !strings.Contains(msg, "You must be logged in") {
			t.Errorf("after forgetting: %q", msg)
		}
	})
}

// TestNewBuildOffline: a project from `spacetime new` builds with no
// network and no module cache entry for this repository.
func TestNewBuildOffline(t *testing.T) {
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	t.Setenv("GONOSUMDB", "")
	dir := filepath.Join(t.TempDir(), "my_app")
	c := &cli{t: t, wd: filepath.Dir(dir), env: map[string]string{"SPACETIME_CONFIG_DIR": t.TempDir()}}
	out, _ := c.ok("new", "--name", "my_app", "my_app")
	if !strings.Contains(out, "Created project my_app") || !strings.Contains(out, "cd my_app && spacetime dev") {
		t.Errorf("new = %q", out)
	}
	for _, f := range []string{"go.mod", "schema.spacetimedb", "reducers.go", "README.md", "spacetime_generated.go", projectFile, filepath.Join(sdkDir, "go.mod"), filepath.Join(sdkDir, "abi", "bsatn.go"), filepath.Join(sdkDir, "modules", "go", "stdb", "table.go")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("new did not write %s: %v", f, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, sdkDir, "abi", "*_test.go")); len(m) > 0 {
		t.Errorf("the SDK copy has tests: %v", m)
	}
	if msg, _ := c.fail("new", "--name", "my_app", "my_app"); !strings.Contains(msg, "does not overwrite") {
		t.Errorf("second new: %q", msg)
	}
	_, errOut := c.in(dir).ok("build")
	if !strings.Contains(errOut, "Built") {
		t.Errorf("build progress: %q", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "target", "my_app.wasm")); err != nil {
		t.Error(err)
	}
	// A stale SDK copy is refreshed by build.
	os.WriteFile(filepath.Join(dir, sdkDir, sdkStamp), []byte("old\n"), 0o644)
	os.Remove(filepath.Join(dir, sdkDir, "abi", "bsatn.go"))
	if refreshed, err := ensureSDK(dir); err != nil || !refreshed {
		t.Fatalf("ensureSDK = %v, %v", refreshed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, sdkDir, "abi", "bsatn.go")); err != nil {
		t.Error(err)
	}
	if name, _ := projectName(dir); name != "my_app" {
		t.Errorf("projectName = %q", name)
	}
}

// TestDev runs `spacetime dev` on a new project: it publishes, shows the
// module's log, and republishes when a file changes.
func TestDev(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module twice")
	}
	dir := filepath.Join(t.TempDir(), "chat")
	c := &cli{t: t, wd: filepath.Dir(dir), env: map[string]string{"SPACETIME_CONFIG_DIR": t.TempDir()}}
	c.ok("new", "--name", "chat", dir)
	dataDir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdout: &out, stderr: &errOut, getenv: func(k string) string { return c.env[k] }, wd: dir}
		done <- a.run(ctx, []string{"dev", "--listen", "127.0.0.1:0", "--data-dir", dataDir})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev ended with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("dev did not stop")
		}
	}()
	waitFor := func(what string, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("dev output lacks %q\nstdout:\n%s\nstderr:\n%s", what, out.String(), errOut.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("Created database chat", 90*time.Second)
	url := regexp.MustCompile(`server on (http://\S+)`).FindStringSubmatch(out.String())
	if url == nil {
		t.Fatalf("no URL in %q", out.String())
	}
	user := c.in(dir).with("SPACETIME_SERVER", url[1], "SPACETIME_DATA_DIR", dataDir)
	user.ok("call", "send_message", "first")
	waitFor("message from", 20*time.Second)

	// Change the reducer: dev rebuilds and republishes.
	src := filepath.Join(dir, "reducers.go")
	data, _ := os.ReadFile(src)
	data = bytes.Replace(data, []byte(`"message from %s`), []byte(`"v2 message from %s`), 1)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("Updated database chat", 90*time.Second)
	user.ok("call", "send_message", "second")
	waitFor("v2 message from", 20*time.Second)
	if out, _ := user.ok("sql", "SELECT * FROM Message"); !strings.Contains(out, "second") {
		t.Errorf("sql after republish:\n%s", out)
	}
	// The new project's auth reducer accepts the dev server's tokens.
	tok, _ := user.ok("token", "mint", "--sub", "alice")
	user.ok("call", "auth", strings.TrimSpace(tok))
	user.ok("call", "send_message", "as alice")
	alice := auth.IdentityFromClaims(auth.DevIssuerName, "alice").String()
	waitFor("message from "+alice+": as alice", 20*time.Second)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// toolBinary builds the tool once per test binary.
func toolBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "spacetime-cli-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "spacetime")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestBinary checks what only the real process shows: exit statuses and
// what reaches stderr.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tool")
	}
	bin := toolBinary(t)
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"server down", []string{"--server", "http://127.0.0.1:1", "call", "create_post", "hi"}, 1, "cannot reach the server at http://127.0.0.1:1: is it running?"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"sql", "--nope", "x"}, 2, "unknown flag --nope for sql"},
		{"help", []string{"--help"}, 0, ""},
		{"version", []string{"--version"}, 0, ""},
		{"call failure exit status", []string{"--server", "http://127.0.0.1:1", "call", "--db", "x", "r"}, 1, "error: cannot reach"},
		{"unknown language", []string{"generate", "--lang", "rust", "."}, 2, "--lang rust is not supported yet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), "SPACETIME_CONFIG_DIR="+t.TempDir())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d, %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}

func TestCallArgs(t *testing.T) {
	str := []paramT{{"s", "String"}}
	for _, tt := range []struct {
		name   string
		args   []string
		params []paramT
		want   string
	}{
		{"plain text", []string{"Hello from Alice!"}, nil, `["Hello from Alice!"]`},
		{"json values", []string{"42", "true", `{"a":1}`, `[1,2]`, "null", `"quoted"`}, nil, `[42,true,{"a":1},[1,2],null,"quoted"]`},
		{"number for a String parameter", []string{"42"}, str, `["42"]`},
		{"quoted for a String parameter", []string{`"42"`}, str, `["42"]`},
		{"negative number", []string{"-5"}, nil, `[-5]`},
		{"none", nil, nil, `[]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(callArgs(tt.args, params(t, tt.params))); got != tt.want {
				t.Errorf("callArgs = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		wantPos []string
		wantDB  string
		wantErr string
	}{
		{"flags after", []string{"create_post", "hi", "--db", "x"}, []string{"create_post", "hi"}, "x", ""},
		{"equals", []string{"--db=x", "r"}, []string{"r"}, "x", ""},
		{"negative number", []string{"r", "-5", "-1.5e3"}, []string{"r", "-5", "-1.5e3"}, "", ""},
		{"double dash", []string{"r", "--", "--db"}, []string{"r", "--db"}, "", ""},
		{"missing value", []string{"r", "--db"}, nil, "", "needs a value"},
		{"unknown", []string{"--frob"}, nil, "", "unknown flag --frob"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
			fs := a.flagSet("call")
			db := fs.String("db", "", "")
			pos, err := parseFlags(fs, tt.args, false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(pos, "|") != strings.Join(tt.wantPos, "|") || *db != tt.wantDB {
				t.Errorf("pos = %q, db = %q, err = %v", pos, *db, err)
			}
		})
	}
}

type paramT struct{ name, typ string }

func params(t *testing.T, ps []paramT) []abi.ParamDef {
	var out []abi.ParamDef
	for _, p := range ps {
		ty, err := abi.ParseType(p.typ)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, abi.ParamDef{Name: p.name, Type: ty})
	}
	return out
}

// TestStart runs `spacetime start` with its settings from the environment
// and stops it as Ctrl-C would.
func TestStart(t *testing.T) {
	dataDir := t.TempDir()
	c := &cli{t: t, wd: t.TempDir(), env: map[string]string{
		"SPACETIME_CONFIG_DIR": t.TempDir(),
		"SPACETIME_LISTEN":     "127.0.0.1:0",
		"SPACETIME_DATA_DIR":   dataDir,
	}}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdout: &out, stderr: io.Discard, getenv: func(k string) string { return c.env[k] }, wd: c.wd}
		done <- a.run(ctx, []string{"start", "--json"})
	}()
	var started struct {
		URL     string `json:"url"`
		DataDir string `json:"data_dir"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for json.Unmarshal([]byte(out.String()), &started) != nil || started.URL == "" {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("start printed %q; err %v", out.String(), <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if started.DataDir != dataDir {
		t.Errorf("data dir = %q, want %q from SPACETIME_DATA_DIR", started.DataDir, dataDir)
	}
	if out, _ := c.with("SPACETIME_SERVER", started.URL).ok("login"); !strings.Contains(out, "Logged in to "+started.URL) {
		t.Errorf("login = %q", out)
	}
	// The server's key is in the data directory: token mint finds it there.
	c.ok("token", "mint", "--sub", "carol")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("start ended with %v", err)
	}
	msg, _ := c.fail("start", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	if !strings.Contains(msg, "config") {
		t.Errorf("missing config: %q", msg)
	}
}

// tsClientScript uses the compiled TypeScript bindings against a server.
const tsClientScript = `import { Client, ReducerError } from "./index.js";
const [server, token] = process.argv.slice(2);
const c = new Client(server);
try {
  await c.createPost("anonymous");
  console.log("no error");
} catch (e) {
  if (!(e instanceof ReducerError)) throw e;
  console.log("reducer error: " + e.message);
}
console.log("identity: " + (await c.auth(token)));
await c.createPost("Hello from TypeScript");
const res = await c.sql("SELECT * FROM Post");
console.log("posted: " + res[0].rows.some((r) => r.content === "Hello from TypeScript"));
`

func TestTypeScriptTypes(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"u8", "number"}, {"i64", "U64"}, {"u64", "U64"}, {"f32", "number"}, {"bool", "boolean"},
		{"String", "string"}, {"Bytes", "Bytes"}, {"IdentityId", "IdentityId"}, {"Timestamp", "Timestamp"},
		{"Option<String>", "string | null"}, {"Vec<u32>", "number[]"}, {"Vec<Option<String>>", "(string | null)[]"},
		{"Option<Option<u8>>", "{ some: number | null } | null"},
	} {
		ty, err := abi.ParseType(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tsType(ty); got != tt.want {
			t.Errorf("tsType(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
	def := &abi.ModuleDef{Reducers: []abi.ReducerDef{
		{Name: "sql", Params: []abi.ParamDef{{Name: "new", Type: abi.Type{Kind: abi.KindString}}}},
		{Name: "init", Lifecycle: "init"},
	}}
	src := renderTypeScript(def, `we"ird`)
	for _, want := range []string{`async sqlReducer(new_: string): Promise<null>`, `export const DATABASE = "we\"ird";`} {
		if !strings.Contains(src, want) {
			t.Errorf("bindings lack %q", want)
		}
	}
	if strings.Contains(src, "init(") {
		t.Error("bindings expose a lifecycle reducer")
	}
}
