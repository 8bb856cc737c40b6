package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err the way users read it and returns the process's exit
// status: 0 on success, 2 for a command line that could not be understood,
// 1 for everything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var silent *silentError
	var rerr *ReducerError
	switch {
	case errors.As(err, &silent):
	case errors.As(err, &rerr):
		// The tutorial's line, exactly: the reducer's own message.
		fmt.Fprintln(stderr, rerr.Error())
	default:
		fmt.Fprintln(stderr, "error:", err)
	}
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// usageError is a command line the tool could not understand.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// silentError fails the command without printing anything more: the
// reason has already been written (for example a build's compiler output).
type silentError struct{ err error }

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() error { return e.err }

const usage = `spacetime: a database server whose application logic runs as WebAssembly reducers

usage: spacetime [--server URL] [--json] COMMAND [ARGS]

Projects:
  new --name NAME [DIR]              create a module project (builds offline)
  generate [DIR] [--lang go|typescript] [--out DIR]
                                     write the code for DIR/schema.spacetimedb
  build [DIR] [-o FILE]              generate, then compile DIR to WebAssembly
  dev [DIR]                          run a server, publish DIR, republish on change, show logs

Servers:
  start [--listen ADDR] [--data-dir DIR] [--config FILE]
                                     run a server
  login [--new]                      get an operator identity from the server and keep it
  token mint --sub SUBJECT [--ttl DURATION] [--claim KEY=VALUE]...
                                     sign a token with the server's dev issuer

Databases:
  publish [NAME] [--project DIR | --wasm FILE]
                                     build (with --project) and upload a module
  call [--db NAME] REDUCER [ARG...]  call a reducer (each ARG is JSON, or else a string)
  sql [--db NAME] QUERY              run a query
  subscribe [--db NAME] QUERY... [--count N] [--timeout DURATION]
                                     print the rows of live queries, then their updates
  logs [--db NAME] [-f]              print (and follow) the module's log
  describe [--db NAME]               show the database's tables, reducers and grants
  list                               list the server's databases
  delete NAME --yes                  delete a database and its data (owner only)

Global flags (before or after the command):
  --server URL   the server (env SPACETIME_SERVER, default http://127.0.0.1:3000)
  --json         machine-readable output on stdout

Without --db, the database is $SPACETIME_DB, else the module project in the
current directory, else the only database on the server.
Credentials live in $SPACETIME_CONFIG_DIR (default: the user config dir/spacetime).
Run 'spacetime COMMAND --help' for a command's flags.
`

// command is one subcommand.
type command struct {
	run     func(ctx context.Context, a *app, args []string) error
	summary string
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"new":       {cmdNew, "new --name NAME [DIR]"},
		"generate":  {cmdGenerate, "generate [DIR] [--lang go|typescript] [--out DIR]"},
		"build":     {cmdBuild, "build [DIR] [-o FILE]"},
		"publish":   {cmdPublish, "publish [NAME] [--project DIR | --wasm FILE]"},
		"call":      {cmdCall, "call [--db NAME] REDUCER [ARG...]"},
		"sql":       {cmdSQL, "sql [--db NAME] QUERY"},
		"subscribe": {cmdSubscribe, "subscribe [--db NAME] QUERY... [--count N] [--timeout DURATION]"},
		"logs":      {cmdLogs, "logs [--db NAME] [-f] [-n LINES]"},
		"describe":  {cmdDescribe, "describe [--db NAME]"},
		"list":      {cmdList, "list"},
		"delete":    {cmdDelete, "delete NAME --yes"},
		"login":     {cmdLogin, "login [--new]"},
		"token":     {cmdToken, "token mint --sub SUBJECT [--ttl DURATION] [--claim KEY=VALUE]..."},
		"start":     {cmdStart, "start [--listen ADDR] [--data-dir DIR] [--config FILE]"},
		"dev":       {cmdDev, "dev [DIR] [--listen ADDR] [--data-dir DIR] [--config FILE]"},
	}
}

// run is the whole tool, minus the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	wd, _ := os.Getwd()
	a := &app{stdout: stdout, stderr: stderr, getenv: os.Getenv, wd: wd}
	return a.run(ctx, args)
}

// app is what a command sees of its environment. Tests build one with their
// own environment and working directory instead of changing the process's.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	wd             string // working directory

	// Global flags.
	server string
	json   bool
}

func (a *app) run(ctx context.Context, args []string) error {
	a.server = a.getenv("SPACETIME_SERVER")
	if a.server == "" {
		a.server = defaultServer
	}
	// Global flags before the command.
	gfs := a.flagSet("spacetime")
	pos, err := parseFlags(gfs, args, true)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(a.stdout, usage)
		}
		return err
	}
	if len(pos) == 0 {
		fmt.Fprint(a.stderr, usage)
		return usagef("no command given; see the list above")
	}
	name, rest := pos[0], pos[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintln(a.stdout, "spacetime", version())
		return nil
	}
	c, ok := commands[name]
	if !ok {
		return usagef("unknown command %q%s; run 'spacetime help' for the list", name, suggest(name))
	}
	return c.run(ctx, a, rest)
}

// suggest names the command the user probably meant.
func suggest(name string) string {
	for n := range commands {
		if strings.HasPrefix(n, name) || strings.HasPrefix(name, n) {
			return fmt.Sprintf(" (did you mean %q?)", n)
		}
	}
	return ""
}

// flagSet returns a command's flag set with the global flags in it, so they
// may also come after the command.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.StringVar(&a.server, "server", a.server, "the server's URL (env SPACETIME_SERVER)")
	fs.BoolVar(&a.json, "json", a.json, "machine-readable output")
	return fs
}

// parseFlags parses flags anywhere among args and returns the positional
// arguments. Unlike the flag package it does not stop at the first
// positional argument (so `call create_post 'Hi' --db app` works), treats
// negative numbers as arguments, and stops at "--". With stopAtCommand it
// stops at the first positional argument (the global flags before a
// command).
func parseFlags(fs *flag.FlagSet, args []string, stopAtCommand bool) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if len(arg) < 2 || arg[0] != '-' || isNumber(arg) {
			if stopAtCommand {
				return append(pos, args[i:]...), nil
			}
			pos = append(pos, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if stopAtCommand && (name == "version" || name == "v") {
			return []string{"version"}, nil
		}
		if name == "h" || name == "help" {
			if stopAtCommand {
				return []string{"help"}, nil
			}
			fmt.Fprintf(fs.Output(), "usage: spacetime %s\n\nflags:\n", commandSummary(fs.Name()))
			fs.PrintDefaults()
			return nil, flag.ErrHelp
		}
		f := fs.Lookup(name)
		if f == nil {
			return nil, usagef("unknown flag %s for %s; run 'spacetime %s --help' for its flags", arg, fs.Name(), fs.Name())
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("flag --%s needs a value (%s)", name, f.Usage)
			}
			i++
			value = args[i]
		}
		if err := fs.Set(name, value); err != nil {
			return nil, usagef("flag --%s: %v", name, err)
		}
	}
	return pos, nil
}

func commandSummary(name string) string {
	if c, ok := commands[name]; ok {
		return c.summary
	}
	return name
}

func isNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	for _, r := range s[1:] {
		if !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-') {
			return false
		}
	}
	return s[1] >= '0' && s[1] <= '9'
}

// multiFlag is a flag that may be repeated (--claim K=V --claim K2=V2).
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
