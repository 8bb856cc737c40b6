package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is three levels up from server/adminui/browsertest.
func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", "..", ".."))
}

// need finds what the test runs with, or skips (fails under
// SPACETIME_REQUIRE_BROWSER=1) saying how to install it.
func need(t *testing.T) (chromium, node string) {
	t.Helper()
	missing := func(what, how string) {
		msg := fmt.Sprintf("browser test skipped: %s not found (%s); set SPACETIME_REQUIRE_BROWSER=1 to make this a failure", what, how)
		if os.Getenv("SPACETIME_REQUIRE_BROWSER") == "1" {
			t.Fatal(strings.Replace(msg, "skipped", "cannot run", 1))
		}
		t.Skip(msg)
	}
	chromium = os.Getenv("SPACETIME_CHROMIUM")
	if chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		missing("chromium", "apt-get install chromium, or set SPACETIME_CHROMIUM to a Chromium binary")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node", "apt-get install nodejs")
	}
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core", "run npm ci in server/adminui/browsertest/testdata")
	}
	return chromium, node
}

// statSources looks at every source file the test builds from. The test
// builds the tool and the module in subprocesses, which go test's cache does
// not see; the files a test stats are part of its cache key, so a change to
// any of them reruns this test instead of replaying an old pass.
func statSources(t *testing.T, root string) {
	t.Helper()
	exts := map[string]bool{".go": true, ".js": true, ".mjs": true, ".css": true, ".html": true, ".svg": true, ".json": true, ".mod": true, ".sum": true, ".spacetimedb": true}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case ".git", "node_modules", "target", "docs", ".spacetime":
				return filepath.SkipDir
			}
			return nil
		}
		if exts[filepath.Ext(path)] {
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// run runs a command and returns its standard output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestAdminPageInBrowser signs in to the admin page of a real server and
// uses it as an operator would: see TESTS in testdata/admin.test.mjs.
func TestAdminPageInBrowser(t *testing.T) {
	chromium, node := need(t)
	root := repoRoot(t)
	statSources(t, root)
	tmp := t.TempDir()
	start := time.Now()

	bin := filepath.Join(tmp, "spacetime")
	run(t, root, nil, "go", "build", "-o", bin, "./cmd/spacetime")
	wasm := filepath.Join(tmp, "secure_app.wasm")
	run(t, root, []string{"GOOS=wasip1", "GOARCH=wasm"}, "go", "build", "-buildmode=c-shared", "-o", wasm, "./examples/secure_app")
	t.Logf("built the tool and the module in %v", time.Since(start).Round(time.Millisecond))

	dataDir := filepath.Join(tmp, "data")
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, bin, "start", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	srv.WaitDelay = 10 * time.Second
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	serverLog := &syncWriter{b: &strings.Builder{}}
	srv.Stderr = serverLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		srv.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", serverLog.String())
		}
	})
	urlRe := regexp.MustCompile(`listening on (http://\S+)`)
	var url string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatalf("the server did not say where it listens:\n%s", serverLog.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	// The operator publishes; Alice and Bob each have their own CLI
	// configuration (a session per server and database).
	cli := func(config string, args ...string) string {
		return run(t, tmp, []string{"SPACETIME_SERVER=" + url, "SPACETIME_CONFIG_DIR=" + config, "SPACETIME_DATA_DIR=" + dataDir, "SPACETIME_DB=secure_app"}, bin, args...)
	}
	opConfig := filepath.Join(tmp, "operator")
	cli(opConfig, "publish", "secure_app", "--wasm", wasm)
	users := map[string]struct{ config, identity string }{}
	for _, u := range []string{"alice", "bob", "carol"} {
		config := filepath.Join(tmp, u)
		tok := strings.TrimSpace(cli(config, "token", "mint", "--sub", u))
		var res struct {
			Identity string `json:"identity"`
		}
		if err := json.Unmarshal([]byte(cli(config, "--json", "call", "auth", tok)), &res); err != nil || len(res.Identity) != 64 {
			t.Fatalf("auth as %s: %v %+v", u, err, res)
		}
		cli(config, "call", "create_post", "Hello from "+u+"!")
		users[u] = struct{ config, identity string }{config, res.Identity}
	}
	t.Logf("server, module and users ready in %v", time.Since(start).Round(time.Millisecond))

	shots := filepath.Join(tmp, "screenshots")
	if os.Getenv("SPACETIME_UPDATE_SCREENSHOTS") == "1" {
		shots = filepath.Join(root, "docs", "screenshots")
	}
	nodeStart := time.Now()
	cmd := exec.Command(node, "admin.test.mjs")
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(),
		"BASE_URL="+url,
		"CHROMIUM="+chromium,
		"SPACETIME_BIN="+bin,
		"SPACETIME_DATA_DIR="+dataDir,
		"OPERATOR_CREDENTIALS="+filepath.Join(opConfig, "credentials.json"),
		"OPERATOR_CONFIG="+opConfig,
		"MODULE_WASM="+wasm,
		"ALICE_CONFIG="+users["alice"].config,
		"ALICE_ID="+users["alice"].identity,
		"BOB_CONFIG="+users["bob"].config,
		"BOB_ID="+users["bob"].identity,
		"CAROL_CONFIG="+users["carol"].config,
		"CAROL_ID="+users["carol"].identity,
		"SCREENSHOTS="+shots,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node admin.test.mjs (%v):\n%s", time.Since(nodeStart).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("the browser test failed: %v", err)
	}
}

// syncWriter collects the server's log from exec's copying goroutine.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
