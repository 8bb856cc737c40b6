package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/internal/loadgen"
	"github.com/spacetime-go/spacetime/modules/build"
)

// suiteConfig is the suite's command line.
type suiteConfig struct {
	repo        string
	rounds      int
	conns       []int
	inflight    int
	warmup      time.Duration
	duration    time.Duration
	subscribers int
	txs         int
	interval    time.Duration
	out         string
	profileDir  string
	keep        bool
}

// suiteRound is one round's figures.
type suiteRound struct {
	Round     int                       `json:"round"`
	LoadAvg   string                    `json:"loadavg"`
	InProcess []loadgen.InProcessResult `json:"in_process"`
	Calls     []suiteCalls              `json:"calls"`
	Fanout    *suiteFanout              `json:"fanout"`
}

type suiteCalls struct {
	Result *loadgen.CallResult `json:"result"`
	// ServerCPUPerCall and LoadgenCPUPerCall divide each process's CPU time
	// during the run (dials and warmup included) by the calls it answered
	// in the whole run.
	ServerCPU  time.Duration `json:"server_cpu_ns"`
	LoadgenCPU time.Duration `json:"loadgen_cpu_ns"`
	LoadAvg    string        `json:"loadavg"`
}

type suiteFanout struct {
	Result     *loadgen.FanoutResult `json:"result"`
	ServerCPU  time.Duration         `json:"server_cpu_ns"`
	LoadgenCPU time.Duration         `json:"loadgen_cpu_ns"`
	LoadAvg    string                `json:"loadavg"`
}

func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	var cfg suiteConfig
	var conns string
	fs.StringVar(&cfg.repo, "repo", ".", "the repository's root (where go.mod is)")
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds; the summary gives each figure's median over them")
	fs.StringVar(&conns, "conns", "1,64,256", "connection counts of the calls runs")
	fs.IntVar(&cfg.inflight, "inflight", 4, "calls in flight per connection (and per in-process goroutine)")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "warmup of each calls run")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured time of each calls run")
	fs.IntVar(&cfg.subscribers, "subscribers", 1000, "subscribers of the fan-out run (0 skips it)")
	fs.IntVar(&cfg.txs, "txs", 200, "measured transactions of the fan-out run")
	fs.DurationVar(&cfg.interval, "interval", 5*time.Millisecond, "pause between fan-out transactions")
	fs.StringVar(&cfg.out, "out", "", "write every round's figures to this JSON file")
	fs.StringVar(&cfg.profileDir, "profile", "", "in the last round, save the server's CPU profiles (calls at the most connections, fan-out) in this directory")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (server data, binaries, logs)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	for _, f := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("%w: --conns wants numbers like 1,64,256, got %q", errUsage, conns)
		}
		cfg.conns = append(cfg.conns, n)
	}
	if cfg.rounds < 1 {
		return fmt.Errorf("%w: --rounds must be at least 1", errUsage)
	}
	return runSuite(ctx, cfg, stdout, stderr)
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func runSuite(ctx context.Context, cfg suiteConfig, stdout, stderr io.Writer) error {
	repo, err := filepath.Abs(cfg.repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "cmd", "spacetime", "main.go")); err != nil {
		return fmt.Errorf("%s is not the repository's root (no cmd/spacetime/main.go): run the suite there or give --repo", repo)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "spacetime-loadgen-suite-")
	if err != nil {
		return err
	}
	if cfg.keep {
		logf(stderr, "keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	logf(stderr, "building the spacetime binary and the benchmark module")
	bin := filepath.Join(tmp, "spacetime")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/spacetime")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building cmd/spacetime: %v\n%s", err, out)
	}
	wasmPath, err := build.Build(ctx, filepath.Join(repo, "cmd", "spacetime-loadgen", "testdata", "benchmod"), build.WithOutput(filepath.Join(tmp, "benchmod.wasm")))
	if err != nil {
		return fmt.Errorf("building the benchmark module: %w", err)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return err
	}

	srv, err := startServer(ctx, bin, tmp, stderr)
	if err != nil {
		return err
	}
	defer srv.stop(stderr)
	logf(stderr, "server %s (pid %d, pprof %s, data in %s)", srv.url, srv.cmd.Process.Pid, srv.pprof, filepath.Join(tmp, "server"))
	if err := srv.publish(ctx, "loadgen", wasm); err != nil {
		return err
	}

	var rounds []suiteRound
	for r := 1; r <= cfg.rounds; r++ {
		last := r == cfg.rounds
		round := suiteRound{Round: r, LoadAvg: loadAvg()}
		logf(stderr, "round %d/%d, load average %s", r, cfg.rounds, round.LoadAvg)

		round.InProcess, err = loadgen.InProcess(ctx, loadgen.InProcessConfig{
			Wasm: wasm, Dir: filepath.Join(tmp, fmt.Sprintf("inprocess-%d", r)),
			Reducer: "incr", Args: `["k{conn}"]`, Goroutines: cfg.conns, InFlight: cfg.inflight,
			Warmup: cfg.warmup / 2, Duration: cfg.duration / 2,
		})
		if err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(tmp, fmt.Sprintf("inprocess-%d", r)))
		for _, ip := range round.InProcess {
			logf(stderr, "  %s", ip)
		}

		for i, n := range cfg.conns {
			var prof string
			if last && cfg.profileDir != "" && i == len(cfg.conns)-1 {
				prof = filepath.Join(cfg.profileDir, fmt.Sprintf("server-cpu-calls-%d.pprof", n))
			}
			var res loadgen.CallResult
			sc := suiteCalls{Result: &res, LoadAvg: loadAvg()}
			sc.ServerCPU, sc.LoadgenCPU, err = srv.child(ctx, self, &res, prof, cfg.warmup+cfg.duration/10, cfg.duration*8/10, "calls",
				"--conns", strconv.Itoa(n), "--inflight", strconv.Itoa(cfg.inflight),
				"--warmup", cfg.warmup.String(), "--duration", cfg.duration.String())
			if err != nil {
				return err
			}
			logf(stderr, "  %s", &res)
			round.Calls = append(round.Calls, sc)
		}

		if cfg.subscribers > 0 {
			var prof string
			if last && cfg.profileDir != "" {
				prof = filepath.Join(cfg.profileDir, fmt.Sprintf("server-cpu-fanout-%d.pprof", cfg.subscribers))
			}
			var res loadgen.FanoutResult
			sf := &suiteFanout{Result: &res, LoadAvg: loadAvg()}
			sf.ServerCPU, sf.LoadgenCPU, err = srv.child(ctx, self, &res, prof, 5*time.Second, 20*time.Second, "fanout",
				"--subscribers", strconv.Itoa(cfg.subscribers), "--txs", strconv.Itoa(cfg.txs), "--interval", cfg.interval.String(),
				"--server-pid", strconv.Itoa(srv.cmd.Process.Pid))
			if err != nil {
				return err
			}
			logf(stderr, "  %s", &res)
			round.Fanout = sf
		}
		rounds = append(rounds, round)
		if cfg.out != "" {
			b, _ := json.MarshalIndent(rounds, "", "  ")
			if err := os.WriteFile(cfg.out, b, 0o644); err != nil {
				return err
			}
		}
	}
	summary(stdout, cfg, rounds)
	return nil
}

// serverProc is the spacetime process under test.
type serverProc struct {
	cmd    *exec.Cmd
	url    string
	pprof  string
	token  string
	exited chan struct{}
}

// startServer runs `spacetime start` on a free port with a fresh data
// directory and waits until it listens.
func startServer(ctx context.Context, bin, tmp string, stderr io.Writer) (*serverProc, error) {
	pprof, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(tmp, "server.log"))
	if err != nil {
		return nil, err
	}
	s := &serverProc{pprof: pprof, exited: make(chan struct{})}
	// The per-connection call limit (1,000/s by default) guards against one
	// abusive client; one connection on a quiet machine passes it, and the
	// suite measures capacity, not the policy.
	s.cmd = exec.Command(bin, "--json", "start", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(tmp, "server"), "--pprof", pprof, "--verbose=false", "--call-rate", "1000000")
	s.cmd.Env = append(os.Environ(), "SPACETIME_CONFIG_DIR="+filepath.Join(tmp, "config"))
	s.cmd.Stderr = logFile
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); logFile.Close(); close(s.exited) }()
	type started struct {
		URL string `json:"url"`
		err error
	}
	line := make(chan started, 1)
	go func() {
		var m started
		m.err = json.NewDecoder(bufio.NewReader(out)).Decode(&m)
		line <- m
		io.Copy(io.Discard, out)
	}()
	select {
	case m := <-line:
		if m.err != nil || m.URL == "" {
			s.stop(stderr)
			return nil, fmt.Errorf("spacetime start did not print its address as JSON: %v", m.err)
		}
		s.url = m.URL
	case <-s.exited:
		b, _ := os.ReadFile(filepath.Join(tmp, "server.log"))
		return nil, fmt.Errorf("spacetime start exited: %s", b)
	case <-time.After(60 * time.Second):
		s.stop(stderr)
		return nil, errors.New("spacetime start did not print its address within 60s")
	case <-ctx.Done():
		s.stop(stderr)
		return nil, ctx.Err()
	}
	return s, nil
}

func (s *serverProc) stop(stderr io.Writer) {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		logf(stderr, "the server did not stop within 30s; killing it")
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *serverProc) publish(ctx context.Context, name string, wasm []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/v1/identity", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var id struct {
		Token string `json:"token"`
	}
	json.NewDecoder(res.Body).Decode(&id)
	res.Body.Close()
	if id.Token == "" {
		return fmt.Errorf("POST /v1/identity: %s", res.Status)
	}
	s.token = id.Token
	req, _ = http.NewRequestWithContext(ctx, "PUT", s.url+"/v1/database/"+name, bytes.NewReader(wasm))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/wasm")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 && res.StatusCode != 200 {
		return fmt.Errorf("publishing %s: %s %s", name, res.Status, body)
	}
	return nil
}

// child runs this program's cmd against the server as a separate process
// and decodes its --json answer into v. It returns the server's and the
// child's CPU time during the run. With profile set, it saves the server's
// CPU profile from profileAfter into the run for profileFor.
func (s *serverProc) child(ctx context.Context, self string, v any, profile string, profileAfter, profileFor time.Duration, cmd string, args ...string) (serverCPU, childCPU time.Duration, err error) {
	args = append([]string{cmd, "--server", s.url, "--db", "loadgen", "--json"}, args...)
	c := exec.CommandContext(ctx, self, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	cpu0 := loadgen.PIDCPU(s.cmd.Process.Pid)
	if err := c.Start(); err != nil {
		return 0, 0, err
	}
	profDone := make(chan error, 1)
	if profile != "" {
		go func() { profDone <- s.saveProfile(ctx, profile, profileAfter, profileFor) }()
	} else {
		profDone <- nil
	}
	werr := c.Wait()
	serverCPU = loadgen.PIDCPU(s.cmd.Process.Pid) - cpu0
	if c.ProcessState != nil {
		childCPU = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	perr := <-profDone
	if werr != nil {
		return 0, 0, fmt.Errorf("spacetime-loadgen %s: %v\n%s%s", strings.Join(args, " "), werr, errb.Bytes(), out.Bytes())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return 0, 0, fmt.Errorf("spacetime-loadgen %s printed no JSON: %v\n%s", cmd, err, out.Bytes())
	}
	return serverCPU, childCPU, perr
}

// saveProfile fetches the server's CPU profile of [after, after+d) of a
// child's run (the measured window, past the handshakes and warmup).
func (s *serverProc) saveProfile(ctx context.Context, path string, after, d time.Duration) error {
	time.Sleep(after)
	secs := max(1, int(d/time.Second))
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, secs)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching the server's profile: %w", err)
	}
	defer res.Body.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary prints each figure's median over the rounds, and its range.
func summary(w io.Writer, cfg suiteConfig, rounds []suiteRound) {
	col := func(f func(r suiteRound) float64) string {
		var xs []float64
		for _, r := range rounds {
			xs = append(xs, f(r))
		}
		lo, hi := slices.Min(xs), slices.Max(xs)
		return fmt.Sprintf("%s [%s–%s]", num(median(xs)), num(lo), num(hi))
	}
	msf := func(d time.Duration) float64 { return float64(d) / 1e6 }
	usf := func(d time.Duration) float64 { return float64(d) / 1e3 }
	var loads []string
	for _, r := range rounds {
		loads = append(loads, r.LoadAvg)
	}
	fmt.Fprintf(w, "medians over %d rounds [min–max]; load average at each round's start: %s\n\n", len(rounds), strings.Join(loads, "; "))
	fmt.Fprintf(w, "| connections × calls in flight each | WebSocket calls/s | p50 ms | p99 ms | server CPU µs/call | loadgen CPU µs/call | in-process calls/s | in-process p50 ms | in-process p99 ms | in-process CPU µs/call |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for i, n := range cfg.conns {
		ws := func(f func(c suiteCalls) float64) string {
			return col(func(r suiteRound) float64 { return f(r.Calls[i]) })
		}
		ip := func(f func(c loadgen.InProcessResult) float64) string {
			return col(func(r suiteRound) float64 { return f(r.InProcess[i]) })
		}
		perCall := func(d time.Duration, c suiteCalls) float64 {
			// CPU over the whole child run, divided by the calls of the
			// whole run (rate × (warmup + duration)).
			total := c.Result.PerSecond * (cfg.warmup + cfg.duration).Seconds()
			if total == 0 {
				return 0
			}
			return usf(d) / total
		}
		fmt.Fprintf(w, "| %d × %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, cfg.inflight,
			ws(func(c suiteCalls) float64 { return c.Result.PerSecond }),
			ws(func(c suiteCalls) float64 { return msf(c.Result.Latency.P50) }),
			ws(func(c suiteCalls) float64 { return msf(c.Result.Latency.P99) }),
			ws(func(c suiteCalls) float64 { return perCall(c.ServerCPU, c) }),
			ws(func(c suiteCalls) float64 { return perCall(c.LoadgenCPU, c) }),
			ip(func(r loadgen.InProcessResult) float64 { return r.PerSecond }),
			ip(func(r loadgen.InProcessResult) float64 { return msf(r.Latency.P50) }),
			ip(func(r loadgen.InProcessResult) float64 { return msf(r.Latency.P99) }),
			ip(func(r loadgen.InProcessResult) float64 { return usf(r.CPUPerCall) }),
		)
	}
	if rounds[0].Fanout != nil {
		fo := func(f func(r *loadgen.FanoutResult) time.Duration) string {
			return col(func(r suiteRound) float64 { return msf(f(r.Fanout.Result)) })
		}
		fmt.Fprintf(w, "\nfan-out to %d subscribers, %d transactions one at a time (ms):\n\n| figure | p50 | p99 |\n|---|---|---|\n", cfg.subscribers, cfg.txs)
		for _, row := range []struct {
			name string
			l    func(r *loadgen.FanoutResult) loadgen.Latency
		}{
			{"commit (first sign of it: ReducerResult or an update) → every subscriber has it", func(r *loadgen.FanoutResult) loadgen.Latency { return r.CommitToAll }},
			{"call sent → every subscriber has the update", func(r *loadgen.FanoutResult) loadgen.Latency { return r.ToAll }},
			{"caller's ReducerResult → every subscriber has it", func(r *loadgen.FanoutResult) loadgen.Latency { return r.ResultToAll }},
			{"call sent → each subscriber has it", func(r *loadgen.FanoutResult) loadgen.Latency { return r.Delivery }},
			{"call sent → ReducerResult (the durable call)", func(r *loadgen.FanoutResult) loadgen.Latency { return r.Call }},
		} {
			fmt.Fprintf(w, "| %s | %s | %s |\n", row.name,
				fo(func(r *loadgen.FanoutResult) time.Duration { return row.l(r).P50 }),
				fo(func(r *loadgen.FanoutResult) time.Duration { return row.l(r).P99 }))
		}
		fmt.Fprintf(w, "\nCPU per delivery over the measured transactions: server %s µs, load generator %s µs\n",
			col(func(r suiteRound) float64 { return usf(r.Fanout.Result.ServerCPUPerDelivery) }),
			col(func(r suiteRound) float64 { return usf(r.Fanout.Result.LoadgenCPUPerDelivery) }))
		fmt.Fprintf(w, "\nin process, one caller: durable call p50 %s ms, p99 %s ms\n",
			col(func(r suiteRound) float64 { return msf(r.InProcess[0].Latency.P50) }),
			col(func(r suiteRound) float64 { return msf(r.InProcess[0].Latency.P99) }))
	}
}

func num(x float64) string {
	switch {
	case x >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}
