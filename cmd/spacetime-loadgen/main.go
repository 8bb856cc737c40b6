package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"time"

	"github.com/spacetime-go/spacetime/internal/loadgen"
)

const usage = `usage: spacetime-loadgen COMMAND [FLAGS]

commands:
  calls    durable reducer calls per second over N WebSockets, with p50/p99 latency
  fanout   time from a call to its update reaching N subscribers
  suite    build and start a server, run calls and fanout against it as child
           processes, and measure the same reducer in process (BENCHMARKS.md "Server")

'spacetime-loadgen COMMAND --help' lists a command's flags.
`

func main() {
	// The generator allocates little and shares the machine with the server
	// it measures: collect less often.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "calls":
		err = cmdCalls(ctx, args[1:], stdout, stderr)
	case "fanout":
		err = cmdFanout(ctx, args[1:], stdout, stderr)
	case "suite":
		err = cmdSuite(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "spacetime-loadgen: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "spacetime-loadgen:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "spacetime-loadgen:", err)
		return 1
	}
}

func targetFlags(fs *flag.FlagSet) *loadgen.Target {
	t := &loadgen.Target{}
	fs.StringVar(&t.URL, "server", envOr("SPACETIME_SERVER", "http://127.0.0.1:3000"), "the server's URL (env SPACETIME_SERVER)")
	fs.StringVar(&t.Database, "db", "loadgen", "the database, published with the module in testdata/benchmod (or one with the reducer you name)")
	fs.StringVar(&t.Token, "token", "", "a bearer token for every connection (optional)")
	return t
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s takes no arguments, got %q (flags come first?)", errUsage, fs.Name(), fs.Args())
	}
	return nil
}

func cmdCalls(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("calls", flag.ContinueOnError)
	t := targetFlags(fs)
	cfg := loadgen.CallConfig{}
	fs.IntVar(&cfg.Connections, "conns", 64, "WebSocket connections")
	fs.IntVar(&cfg.InFlight, "inflight", 1, "calls outstanding per connection (the server pipelines up to 16 per connection, answering in order)")
	fs.StringVar(&cfg.Reducer, "reducer", "incr", "the reducer to call")
	fs.StringVar(&cfg.Args, "args", `["k{conn}"]`, "the JSON array of arguments; {conn} is the connection's number, {seq} the call's")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before measuring, not counted")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long to measure")
	fs.IntVar(&cfg.Calls, "calls", 0, "send exactly this many calls in all instead (no warmup; for smoke tests)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	cfg.Target = *t
	res, err := loadgen.RunCalls(ctx, cfg)
	if res != nil {
		print(stdout, *asJSON, res)
	}
	if err == nil && res.Failed > 0 {
		err = fmt.Errorf("%d calls failed; the first: %s", res.Failed, res.FirstError)
	}
	return err
}

func cmdFanout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	t := targetFlags(fs)
	cfg := loadgen.FanoutConfig{}
	fs.IntVar(&cfg.Subscribers, "subscribers", 1000, "subscribed WebSocket connections")
	fs.IntVar(&cfg.Txs, "txs", 200, "measured transactions, one at a time")
	fs.IntVar(&cfg.Warmup, "warmup-txs", 20, "transactions before measuring, not counted")
	fs.DurationVar(&cfg.Interval, "interval", 5*time.Millisecond, "pause after each transaction has reached every subscriber")
	fs.StringVar(&cfg.Reducer, "reducer", "post_tick", "the reducer to call with [seq, sent_us]; it must insert a row with a \"seq\" column into the table the query reads")
	fs.StringVar(&cfg.Query, "query", "SELECT * FROM Tick", "every subscriber's query")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "how long to wait for one transaction's deliveries")
	fs.StringVar(&cfg.Reader, "reader", "", "how the subscribers' sockets are read: poll (epoll, Linux; the default there) or goroutines (gorilla, one goroutine each)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", time.Millisecond, "with --reader poll, look at the sockets once per interval instead of waiting for each message, 0 (fewer wake-ups, which on loopback the server pays for; receipts are late by up to the interval)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id, to report its CPU time per delivery (same machine)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	cfg.Target = *t
	res, err := loadgen.RunFanout(ctx, cfg)
	if res != nil {
		print(stdout, *asJSON, res)
	}
	if err == nil && res.Incomplete > 0 {
		err = fmt.Errorf("%d transactions did not reach every subscriber", res.Incomplete)
	}
	if err == nil && res.Misordered > 0 {
		err = fmt.Errorf("%d updates came twice or out of commit order", res.Misordered)
	}
	return err
}

func print(w io.Writer, asJSON bool, v fmt.Stringer) {
	if asJSON {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintln(w, v)
}
