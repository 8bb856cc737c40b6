// Command spacetime is the project's command-line tool. For now it has
// generate and build; the rest of the CLI (DESIGN.md) comes later and keeps
// its logic in library packages the same way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spacetime-go/spacetime/modules/build"
	"github.com/spacetime-go/spacetime/modules/codegen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "spacetime:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: spacetime COMMAND [ARGS]

commands:
  generate [DIR] [--lang go] [--out DIR]   write the module code for DIR/schema.spacetimedb
  build [DIR] [-o FILE]                    generate, then compile DIR to WebAssembly
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "generate":
		return cmdGenerate(args[1:], stdout, stderr)
	case "build":
		return cmdBuild(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// dirArg parses flags that may come before or after the one DIR argument.
func dirArg(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	dir := "."
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", err
		}
		if fs.NArg() > 0 {
			return "", fmt.Errorf("%s takes one directory, got %q too", fs.Name(), fs.Args())
		}
	}
	return dir, nil
}

func cmdGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", "go", "language of the generated code (go)")
	out := fs.String("out", "", "directory to write into (default: DIR)")
	dir, err := dirArg(fs, args)
	if err != nil {
		return err
	}
	if *lang != "go" {
		return fmt.Errorf("generate: --lang %s is not supported yet; use --lang go", *lang)
	}
	var opts []codegen.Option
	if *out != "" {
		opts = append(opts, codegen.WithOutDir(*out))
	}
	path, err := codegen.GenerateDir(dir, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Generated", path)
	return nil
}

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "the .wasm file to write (default: DIR/target/NAME.wasm)")
	dir, err := dirArg(fs, args)
	if err != nil {
		return err
	}
	opts := []build.Option{build.WithProgress(stdout)}
	if *out != "" {
		opts = append(opts, build.WithOutput(*out))
	}
	_, err = build.Build(ctx, dir, opts...)
	return err
}
