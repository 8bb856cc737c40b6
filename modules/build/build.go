package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/modules/codegen"
	"github.com/spacetime-go/spacetime/modules/schema"
)

// ErrBuildFailed is wrapped by the error Build returns when the Go compiler
// rejects the module; the error's text is the compiler's, made readable.
var ErrBuildFailed = errors.New("module build failed")

type options struct {
	out      string
	progress io.Writer
	generate bool
	check    bool
	goCmd    string
	every    time.Duration
}

// Option configures Build.
type Option func(*options)

// WithOutput sets the .wasm file to write (default DIR/target/NAME.wasm).
func WithOutput(path string) Option { return func(o *options) { o.out = path } }

// WithProgress writes progress lines ("building...", "still compiling",
// "built ... in ...") to w. Without it Build is silent.
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// WithGenerate says whether to run `spacetime generate` first when the
// directory has a schema.spacetimedb (default true), so the generated code
// can never be stale.
func WithGenerate(on bool) Option { return func(o *options) { o.generate = on } }

// WithABICheck says whether to check the built module's imports and exports
// against the ABI (default true; see CheckABI).
func WithABICheck(on bool) Option { return func(o *options) { o.check = on } }

// WithGoCommand sets the go tool to run (default "go" from PATH).
func WithGoCommand(path string) Option { return func(o *options) { o.goCmd = path } }

// DefaultOutput is where Build writes dir's module unless told otherwise.
func DefaultOutput(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	name := strings.ReplaceAll(filepath.Base(abs), "-", "_")
	return filepath.Join(dir, "target", name+".wasm")
}

// Build compiles the Go module in dir to WebAssembly and returns the path of
// the .wasm file.
func Build(ctx context.Context, dir string, opts ...Option) (string, error) {
	o := options{generate: true, check: true, goCmd: "go", every: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.out == "" {
		o.out = DefaultOutput(dir)
	}
	progress := func(format string, args ...any) {
		if o.progress != nil {
			fmt.Fprintf(o.progress, format+"\n", args...)
		}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("build: %s is not a module directory (it should hold %s and the reducers' .go files)", dir, schema.FileName)
	}
	if o.generate {
		if _, err := os.Stat(filepath.Join(dir, schema.FileName)); err == nil {
			path, err := codegen.GenerateDir(dir)
			if err != nil {
				return "", fmt.Errorf("build: generating code from %s: %w", filepath.Join(dir, schema.FileName), err)
			}
			progress("Generated %s", path)
		}
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}

	cmd := exec.CommandContext(ctx, o.goCmd, "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output

	progress("Compiling %s to WebAssembly (GOOS=wasip1 GOARCH=wasm)...", dir)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("build: cannot run the Go toolchain (%s): %w; install Go 1.24 or later and put it on PATH", o.goCmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				if ctx.Err() != nil {
					return "", fmt.Errorf("build: %w", ctx.Err())
				}
				return "", &Error{Dir: dir, Output: explain(dir, output.String())}
			}
			wasm, err := os.ReadFile(out)
			if err != nil {
				return "", fmt.Errorf("build: the compiler succeeded but wrote no %s: %w", out, err)
			}
			if o.check {
				if err := CheckABI(ctx, wasm); err != nil {
					return "", fmt.Errorf("build: %s: %w", o.out, err)
				}
			}
			progress("Built %s (%.1f MB) in %.1fs", o.out, float64(len(wasm))/1e6, time.Since(start).Seconds())
			return out, nil
		case <-tick.C:
			progress("  still compiling (%.0fs)...", time.Since(start).Seconds())
		}
	}
}

// Error is a compile failure, with the compiler's output.
type Error struct {
	Dir    string
	Output string
}

func (e *Error) Error() string {
	return fmt.Sprintf("building %s failed:\n%s", e.Dir, strings.TrimRight(e.Output, "\n"))
}

func (e *Error) Unwrap() error { return ErrBuildFailed }

var undefinedInGenerated = regexp.MustCompile(regexp.QuoteMeta(codegen.GoFileName) + `:\d+:\d+: undefined: (\w+)`)

// explain makes compiler output point at files the user can open, and
// explains the mistake everyone makes first: a reducer declared in the
// schema with no Go function.
func explain(dir, out string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(line, "# ") { // "# command-line-arguments": noise
			continue
		}
		if strings.HasPrefix(line, "./") {
			line = filepath.Join(dir, line[2:])
		}
		b.WriteString(line)
		b.WriteByte('\n')
		if m := undefinedInGenerated.FindStringSubmatch(line); m != nil {
			fmt.Fprintf(&b, "  hint: %s is a reducer declared in %s with no Go function; write it in a .go file of %s (its signature is in %s)\n",
				m[1], schema.FileName, dir, codegen.GoFileName)
		}
	}
	return b.String()
}
