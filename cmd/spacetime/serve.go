package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spacetime-go/spacetime/modules/codegen"
	"github.com/spacetime-go/spacetime/modules/schema"
	"github.com/spacetime-go/spacetime/server"
)

// serverFlags are the flags of start and dev.
type serverFlags struct {
	listen, dataDir, config *string
	verbose                 *bool
	pprof                   *string
	callRate                *string
	maxConnsPerAddr         *int
	trustedProxies          *multiFlag
	issuers                 *multiFlag
	devIssuer               *bool
}

func (a *app) serverFlags(fs interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	IntVar(p *int, name string, value int, usage string)
	Var(value flag.Value, name, usage string)
}, verboseDefault bool) serverFlags {
	listen := a.getenv("SPACETIME_LISTEN")
	if listen == "" {
		listen = server.DefaultListenAddr
	}
	f := serverFlags{listen: new(string), config: new(string), verbose: new(bool), pprof: new(string), callRate: new(string), maxConnsPerAddr: new(int), trustedProxies: new(multiFlag), issuers: new(multiFlag), devIssuer: new(bool)}
	fs.StringVar(f.listen, "listen", listen, "the address to listen on (env SPACETIME_LISTEN)")
	f.dataDir = a.dataDirFlag(fs.StringVar)
	fs.StringVar(f.config, "config", "", "a TOML config file (trusted token issuers and more; see DESIGN.md, \"Config contract\")")
	fs.BoolVar(f.verbose, "verbose", verboseDefault, "log every request and event of the server")
	fs.Var(f.issuers, "issuer", issuerFlagHelp)
	fs.BoolVar(f.devIssuer, "dev-issuer", true, "trust the server's own development issuer (the tokens of 'spacetime token mint'); --dev-issuer=false for production")
	fs.StringVar(f.pprof, "pprof", "", "serve Go's profiler (/debug/pprof/) on this separate address, such as 127.0.0.1:6060; never expose it")
	fs.StringVar(f.callRate, "call-rate", strconv.Itoa(server.DefaultCallRate), "reducer calls one WebSocket connection may make per second (bursts of a fifth of that, at least 200); raise it for load tests")
	fs.IntVar(f.maxConnsPerAddr, "max-conns-per-address", server.DefaultMaxConnectionsPerAddress, "WebSockets one client address (IPv4, or IPv6 /64) may hold open across all databases; loopback is not counted (behind a proxy on this host, limit at the proxy)")
	fs.Var(f.trustedProxies, "trusted-proxy", "a reverse proxy in front of the server (an address or CIDR prefix, such as 127.0.0.1 or 10.0.0.0/8; repeat for several): the per-address limits count the client it names in X-Forwarded-For instead of the proxy")
	return f
}

// parseTrustedProxies reads --trusted-proxy values: addresses or prefixes.
func parseTrustedProxies(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, usagef("--trusted-proxy wants an address or a CIDR prefix (such as 127.0.0.1 or 10.0.0.0/8), got %q", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// startServer opens and starts the embedded server.
func (a *app) startServer(ctx context.Context, f serverFlags, logOut io.Writer) (*server.Server, error) {
	level := slog.LevelInfo
	if !*f.verbose {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if *f.maxConnsPerAddr <= 0 {
		return nil, usagef("--max-conns-per-address wants a positive number of connections, got %d", *f.maxConnsPerAddr)
	}
	rate, err := strconv.ParseFloat(*f.callRate, 64)
	if err != nil || rate <= 0 {
		return nil, usagef("--call-rate wants a positive number of calls per second, got %q", *f.callRate)
	}
	proxies, err := parseTrustedProxies(*f.trustedProxies)
	if err != nil {
		return nil, err
	}
	opts := []server.Option{
		server.WithTrustedProxies(proxies...),
		server.WithCallRate(rate, max(server.DefaultCallBurst, int(min(rate/5, 1e9)))),
		server.WithMaxConnectionsPerAddress(*f.maxConnsPerAddr),
		server.WithDataDir(a.abs(*f.dataDir)),
		server.WithListenAddr(*f.listen),
		server.WithLogger(logger),
		server.WithDevIssuer(*f.devIssuer),
		server.WithVersion(version()),
	}
	if *f.config != "" {
		opts = append(opts, server.WithConfigFile(a.abs(*f.config)))
	}
	authCfg, err := a.authConfig(f)
	if err != nil {
		return nil, err
	}
	if authCfg != nil {
		opts = append(opts, server.WithAuthConfig(authCfg))
	}
	s, err := server.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if *f.pprof != "" {
		if err := servePprof(*f.pprof, logger); err != nil {
			s.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return s, nil
}

// servePprof serves the profiler on its own listener, apart from the API,
// for the life of the process (spacetime-loadgen suite profiles the server
// through it).
func servePprof(addr string, logger *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	logger.Warn("profiler listening", "addr", l.Addr().String())
	go http.Serve(l, mux)
	return nil
}

func closeServer(ctx context.Context, s *server.Server) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.Close(cctx)
}

func cmdStart(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("start")
	f := a.serverFlags(fs, true)
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("start takes no arguments (got %q); see 'spacetime start --help'", pos)
	}
	s, err := a.startServer(ctx, f, a.stderr)
	if err != nil {
		return err
	}
	if a.json {
		a.printJSON(map[string]any{"url": s.URL(), "addr": s.Addr(), "data_dir": a.abs(*f.dataDir)})
	} else {
		fmt.Fprintf(a.stdout, "spacetime server listening on %s (data in %s); Ctrl-C to stop\n", s.URL(), a.rel(a.abs(*f.dataDir)))
		fmt.Fprintf(a.stdout, "  admin page: %s/ (sign in with an operator token: spacetime login)\n", s.URL())
	}
	<-ctx.Done()
	fmt.Fprintln(a.stderr, "Stopping...")
	return closeServer(ctx, s)
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// devPoll is how often dev looks for changed files.
const devPoll = 400 * time.Millisecond

func cmdDev(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("dev")
	f := a.serverFlags(fs, false)
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("dev takes one project directory, got %q", pos)
	}
	dir := a.wd
	if len(pos) == 1 {
		dir = a.abs(pos[0])
	}
	if !isProject(dir) {
		return fmt.Errorf("%s has no %s: run `spacetime dev` in a module project, give its directory (spacetime dev DIR), or create one with `spacetime new --name NAME`", a.rel(dir), schema.FileName)
	}
	name, err := projectName(dir)
	if err != nil {
		return err
	}
	out := &lockedWriter{w: a.stdout}
	errOut := &lockedWriter{w: a.stderr}
	da := *a
	da.stdout, da.stderr = out, errOut

	s, err := da.startServer(ctx, f, errOut)
	if err != nil {
		return err
	}
	defer closeServer(ctx, s)
	da.server = s.URL()
	fmt.Fprintf(out, "spacetime dev: server on %s (data in %s), database %s from %s\n", s.URL(), a.rel(a.abs(*f.dataDir)), name, a.rel(dir))
	flag := ""
	if s.URL() != defaultServer {
		flag = "--server " + s.URL() + " "
	}
	fmt.Fprintf(out, "  in another terminal: spacetime %scall <reducer> [args], sql, subscribe, logs; Ctrl-C to stop\n", flag)
	fmt.Fprintf(out, "  admin page: %s/ (sign in with the operator token in %s)\n", s.URL(), a.credentialsPathOrEmpty())
	c, err := da.client()
	if err != nil {
		return err
	}

	var logsOnce sync.Once
	// followLogs prints the module's log from now on. It returns once the
	// stream is open (or after a few seconds), so that a call made after dev
	// says "Created database" has its log lines shown.
	followLogs := func() {
		connected := make(chan struct{})
		var once sync.Once
		go func() {
			for ctx.Err() == nil {
				err := c.streamLogs(ctx, name, 0, true, func() { once.Do(func() { close(connected) }) }, func(l logLine, _ []byte) {
					fmt.Fprintln(out, formatLog(l))
				})
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					fmt.Fprintf(errOut, "dev: following the logs: %v\n", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
		select {
		case <-connected:
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	deploy := func() {
		path, err := da.buildProject(ctx, dir, "")
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(errOut, "%v\nWaiting for changes...\n", err)
			}
			return
		}
		wasm, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(errOut, err)
			return
		}
		res, err := da.publish(ctx, c, name, wasm)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(errOut, "%v\nWaiting for changes...\n", err)
			}
			return
		}
		logsOnce.Do(followLogs)
		da.printPublished(res)
	}

	last := fingerprint(dir)
	deploy()
	fmt.Fprintf(out, "Watching %s for changes to *.go and %s\n", a.rel(dir), schema.FileName)
	tick := time.NewTicker(devPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(errOut, "Stopping...")
			return nil
		case <-tick.C:
		}
		fp := fingerprint(dir)
		if fp == last {
			continue
		}
		// Let an editor finish writing (several files, or save-then-rename).
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(devPoll):
			}
			next := fingerprint(dir)
			if next == fp {
				break
			}
			fp = next
		}
		last = fp
		fmt.Fprintln(out, "Change detected: rebuilding")
		deploy()
		// The build rewrote the generated file; start from what is there now.
		last = fingerprint(dir)
	}
}

// fingerprint summarises the names, sizes and modification times of the
// project's sources (the schema and *.go files, not the generated one and
// not build output or hidden directories), so dev notices edits without a
// file-watching dependency.
func fingerprint(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if p != dir && (strings.HasPrefix(name, ".") || name == "target" || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if name == codegen.GoFileName || (name != schema.FileName && !strings.HasSuffix(name, ".go")) || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s|%d|%d\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

// lockedWriter serialises writes from dev's goroutines (builds, logs).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
