package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	spacetime "github.com/spacetime-go/spacetime"
	"github.com/spacetime-go/spacetime/modules/build"
	"github.com/spacetime-go/spacetime/modules/codegen"
	"github.com/spacetime-go/spacetime/modules/schema"
)

const (
	// projectFile names a project's database: `spacetime new --name` writes
	// it, so the name does not depend on the directory's.
	projectFile = "spacetime.toml"
	// sdkDir is where a project made by `spacetime new` keeps its copy of
	// the guest SDK (a hidden directory, so `go build ./...` skips it).
	sdkDir = ".spacetime-sdk"
	// sdkStamp records which SDK a project's copy is.
	sdkStamp = "SDK_VERSION"
)

// abs makes a path from the command line absolute against the app's
// working directory.
func (a *app) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.wd, p)
}

// isProject reports whether dir is a module project (has a schema).
func isProject(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, schema.FileName))
	return err == nil
}

// projectName is the database a project publishes to: the name in its
// spacetime.toml, else its directory's name.
func projectName(dir string) (string, error) {
	var pf struct {
		Name string `toml:"name"`
	}
	path := filepath.Join(dir, projectFile)
	if _, err := toml.DecodeFile(path, &pf); err == nil && pf.Name != "" {
		return pf.Name, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.Base(abs), nil
}

// ensureSDK refreshes a project's copy of the guest SDK when the project uses
// one (its go.mod replaces the SDK module with ./.spacetime-sdk) and the copy
// is missing or from another version of this tool, so the code generate
// writes and the SDK it calls always match.
func ensureSDK(dir string) (bool, error) {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(gomod, []byte("=> ./"+sdkDir)) {
		return false, nil
	}
	want, err := spacetime.SDKHash()
	if err != nil {
		return false, err
	}
	root := filepath.Join(dir, sdkDir)
	if have, err := os.ReadFile(filepath.Join(root, sdkStamp)); err == nil && strings.TrimSpace(string(have)) == want {
		return false, nil
	}
	return true, writeSDK(root)
}

// writeSDK writes the embedded guest SDK as a standalone Go module at root.
func writeSDK(root string) error {
	files, names, err := spacetime.SDKFiles()
	if err != nil {
		return fmt.Errorf("reading the embedded SDK: %w", err)
	}
	hash, err := spacetime.SDKHash()
	if err != nil {
		return err
	}
	// Start clean: a file removed from the SDK must not linger.
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("replacing %s: %w", root, err)
	}
	write := func(rel string, data []byte) error {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	}
	for _, n := range names {
		if err := write(n, files[n]); err != nil {
			return fmt.Errorf("writing the SDK: %w", err)
		}
	}
	if err := write("go.mod", fmt.Appendf(nil, "module %s\n\ngo %s\n", spacetime.ModulePath, goVersion)); err != nil {
		return fmt.Errorf("writing the SDK: %w", err)
	}
	if err := write(sdkStamp, []byte(hash+"\n")); err != nil {
		return fmt.Errorf("writing the SDK: %w", err)
	}
	return write("README.md", []byte(sdkReadme))
}

// goVersion is the language version of new projects and their SDK copy:
// the first with //go:wasmexport.
const goVersion = "1.24"

const sdkReadme = `# The spacetime guest SDK

A copy of the Go guest SDK (packages abi and modules/go/stdb) written by the
spacetime tool, so that this project builds with no network. The project's
go.mod points at it with a replace directive. Do not edit: ` + "`spacetime build`" + `
rewrites it when the tool's SDK changes.
`

var validProjectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

func cmdNew(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("new")
	name := fs.String("name", "", "the project's name, which is also its database's name")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("new takes one directory, got %q", pos)
	}
	dir := a.wd
	if len(pos) == 1 {
		dir = a.abs(pos[0])
	}
	if *name == "" {
		if len(pos) == 1 {
			*name = filepath.Base(dir)
		} else {
			return usagef("new needs a name: spacetime new --name my_app [DIR]")
		}
	}
	if !validProjectName.MatchString(*name) {
		return usagef("project name %q must start with a letter and use only letters, digits, '_' and '-' (at most 64)", *name)
	}
	for _, f := range []string{schema.FileName, "go.mod", projectFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s already has a %s: `spacetime new` does not overwrite a project; choose an empty directory (spacetime new --name %s DIR)", dir, f, *name)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	files := map[string]string{
		"go.mod": fmt.Sprintf("module %s\n\ngo %s\n\nrequire %s v0.0.0\n\n// The guest SDK that came with the spacetime tool (no network needed).\nreplace %s => ./%s\n",
			*name, goVersion, spacetime.ModulePath, spacetime.ModulePath, sdkDir),
		projectFile:     fmt.Sprintf("# The spacetime project. `name` is the database that publish and dev use.\nname = %q\n", *name),
		schema.FileName: newSchema,
		"reducers.go":   newReducers,
		"README.md":     strings.ReplaceAll(newReadme, "NAME", *name),
		".gitignore":    "target/\n.spacetime/\n" + sdkDir + "/\n",
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", f, err)
		}
	}
	if err := writeSDK(filepath.Join(dir, sdkDir)); err != nil {
		return err
	}
	gen, err := codegen.GenerateDir(dir)
	if err != nil {
		return fmt.Errorf("generating code: %w", err)
	}
	if a.json {
		return a.printJSON(map[string]any{"name": *name, "dir": dir, "generated": gen})
	}
	rel := dir
	if r, err := filepath.Rel(a.wd, dir); err == nil && !strings.HasPrefix(r, "..") {
		rel = r
	}
	fmt.Fprintf(a.stdout, "Created project %s in %s\n", *name, rel)
	fmt.Fprintf(a.stdout, "  %-22s the tables and reducers\n  %-22s the reducers, in Go\n  %-22s generated from the schema\n\n",
		schema.FileName, "reducers.go", codegen.GoFileName)
	cd := ""
	if rel != "." {
		cd = "cd " + rel + " && "
	}
	fmt.Fprintf(a.stdout, "Next: %sspacetime dev\n", cd)
	return nil
}

const newSchema = `// The tables and reducers of this module. After editing, run ` + "`spacetime generate`" + `
// (build and dev do it for you) and write a Go function for each reducer.
table Message {
#[spacetimedb(primarykey)]
#[spacetimedb(autoinc)]
id: u64,
sender: IdentityId,
text: String,
sent_at: Timestamp,
}

reducer send_message(text: String);

// auth verifies a client's token and returns its identity; the server then
// runs the client's later calls as that identity.
reducer auth(token: String) -> IdentityId;

// Anyone may read the messages.
grant_access Message to public;
`

const newReducers = `package main

import (
	"errors"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

// Auth is the reducer auth. The host verifies the token (a JWT from an
// issuer the server trusts; ` + "`spacetime token mint --sub alice`" + ` makes one for
// the dev server) and the identity comes from its issuer and subject. The
// server then runs this client's later calls with ctx.Caller set to it.
func Auth(ctx *stdb.ReducerContext, token string) (stdb.Identity, error) {
	// VerifyToken asks the host to check the token and derives the
	// identity from its issuer and subject; tok.StringClaim reads others.
	tok, err := stdb.VerifyToken(token)
	if err != nil {
		return stdb.Identity{}, err
	}
	return tok.Identity, nil
}

// SendMessage is the reducer send_message: each call is one transaction.
// Returning an error rolls it back and fails the call with the error's
// message.
func SendMessage(ctx *stdb.ReducerContext, text string) error {
	if text == "" {
		return errors.New("a message needs some text")
	}
	if _, err := MessageTable.Insert(Message{
		Sender: ctx.Caller,
		Text:   text,
		SentAt: ctx.Timestamp,
	}); err != nil {
		return err
	}
	stdb.Infof("message from %s: %s", ctx.Caller, text)
	return nil
}
`

const newReadme = "# NAME\n\nA [spacetime](https://github.com/spacetime-go/spacetime) module.\n\n" +
	"| file | what |\n|---|---|\n" +
	"| `schema.spacetimedb` | tables, reducers and read grants |\n" +
	"| `reducers.go` | the reducers, one Go function each |\n" +
	"| `spacetime_generated.go` | generated from the schema (do not edit) |\n" +
	"| `spacetime.toml` | the project's name, which is its database's name |\n" +
	"| `.spacetime-sdk/` | the guest SDK, written by the tool |\n\n" +
	"```sh\n" +
	"spacetime dev                           # server on 127.0.0.1:3000, publish, republish on change, logs\n" +
	"spacetime call send_message 'Hello!'    # in another terminal\n" +
	"spacetime call auth \"$(spacetime token mint --sub alice)\"   # later calls run as alice\n" +
	"spacetime sql 'SELECT * FROM Message'\n" +
	"spacetime subscribe 'SELECT * FROM Message'\n" +
	"spacetime generate --lang typescript       # client bindings in module_bindings/\n" +
	"```\n"

func cmdGenerate(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("generate")
	lang := fs.String("lang", "go", "language of the generated code: go (the module's code) or typescript (client bindings, in DIR/module_bindings by default)")
	out := fs.String("out", "", "directory to write into (default: DIR)")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("generate takes one directory, got %q", pos)
	}
	dir := a.wd
	if len(pos) == 1 {
		dir = a.abs(pos[0])
	}
	switch *lang {
	case "go":
	case "typescript", "ts":
		outDir := ""
		if *out != "" {
			outDir = a.abs(*out)
		}
		path, err := generateTypeScript(dir, outDir)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(map[string]any{"generated": path})
		}
		fmt.Fprintln(a.stdout, "Generated", a.rel(path))
		return nil
	default:
		return usagef("generate: --lang %s is not supported yet; use --lang go (the module's code) or --lang typescript (client bindings)", *lang)
	}
	if _, err := ensureSDK(dir); err != nil {
		return err
	}
	var opts []codegen.Option
	if *out != "" {
		opts = append(opts, codegen.WithOutDir(a.abs(*out)))
	}
	path, err := codegen.GenerateDir(dir, opts...)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]any{"generated": path})
	}
	fmt.Fprintln(a.stdout, "Generated", a.rel(path))
	return nil
}

// rel shows a path relative to the working directory when it is inside it.
func (a *app) rel(p string) string {
	if r, err := filepath.Rel(a.wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func cmdBuild(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("build")
	out := fs.String("o", "", "the .wasm file to write (default: DIR/target/NAME.wasm)")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("build takes one directory, got %q", pos)
	}
	dir := a.wd
	if len(pos) == 1 {
		dir = a.abs(pos[0])
	}
	path, err := a.buildProject(ctx, dir, *out)
	if err != nil {
		return err
	}
	if a.json {
		st, _ := os.Stat(path)
		size := int64(0)
		if st != nil {
			size = st.Size()
		}
		return a.printJSON(map[string]any{"wasm": path, "bytes": size})
	}
	return nil
}

// buildProject generates and compiles dir, showing progress on stderr (so
// that --json output stays clean).
func (a *app) buildProject(ctx context.Context, dir, out string) (string, error) {
	if !isProject(dir) {
		if _, err := os.Stat(dir); err != nil {
			return "", fmt.Errorf("%s does not exist: give the directory of a module project (create one with `spacetime new --name NAME`)", dir)
		}
		return "", fmt.Errorf("%s has no %s: it is not a module project; create one with `spacetime new --name NAME` or pass the project's directory", dir, schema.FileName)
	}
	if refreshed, err := ensureSDK(dir); err != nil {
		return "", err
	} else if refreshed {
		fmt.Fprintf(a.stderr, "Updated the guest SDK in %s\n", filepath.Join(dir, sdkDir))
	}
	// Show paths as the user typed them: relative when they run the tool
	// from the directory the paths are relative to (tests use another).
	if wd, err := os.Getwd(); err == nil && wd == a.wd {
		dir = a.rel(dir)
	}
	opts := []build.Option{build.WithProgress(a.stderr)}
	if out != "" {
		opts = append(opts, build.WithOutput(a.abs(out)))
	} else {
		opts = append(opts, build.WithOutput(build.DefaultOutput(dir)))
	}
	path, err := build.Build(ctx, dir, opts...)
	if err != nil {
		return "", err
	}
	return path, nil
}
