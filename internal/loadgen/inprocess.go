package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/runtime"
	"github.com/spacetime-go/spacetime/store"
)

// InProcessConfig measures a reducer called directly on runtime.Database,
// on a real store (Badger in Dir, synced group commits, as the server runs
// it): no HTTP, no WebSocket, no JSON on the way out.
type InProcessConfig struct {
	// Wasm is the module.
	Wasm []byte `json:"-"`
	// Dir holds the store and the compilation cache; put it on the same
	// disk as the server's data directory.
	Dir string `json:"-"`
	// Reducer and Args as in CallConfig ({conn} is the goroutine's number).
	Reducer string `json:"reducer"`
	Args    string `json:"args"`
	// Goroutines lists the concurrencies to measure, such as 1, 64, 256:
	// each goroutine calls, waits for the durable commit, calls again.
	Goroutines []int `json:"goroutines"`
	// InFlight, above 1, has each goroutine keep that many calls in flight
	// with runtime.Database.CallAsync, as a pipelining WebSocket
	// connection does: the next call runs once the previous one is
	// ordered, and its answer comes once it is durable.
	InFlight int           `json:"in_flight,omitempty"`
	Warmup   time.Duration `json:"warmup_ns"`
	Duration time.Duration `json:"duration_ns"`
}

// InProcessResult is one concurrency's figures.
type InProcessResult struct {
	Goroutines int     `json:"goroutines"`
	Committed  int64   `json:"committed"`
	PerSecond  float64 `json:"calls_per_second"`
	Latency    Latency `json:"latency"`
	// CPUPerCall is the process's CPU time (every thread: callers, the
	// store's committer, Badger, GC) per committed call.
	CPUPerCall time.Duration `json:"cpu_per_call_ns"`
	// GuestTime is the median time in the guest (CallResult.Duration).
	GuestTime time.Duration `json:"guest_p50_ns"`
}

func (r InProcessResult) String() string {
	return fmt.Sprintf("in process, %d goroutines: %.0f calls/s, CPU %.1fµs/call, guest p50 %.1fµs; latency %s",
		r.Goroutines, r.PerSecond, float64(r.CPUPerCall)/1e3, float64(r.GuestTime)/1e3, r.Latency)
}

// InProcess compiles the module, creates a database in a fresh store in
// cfg.Dir and measures each concurrency in turn.
func InProcess(ctx context.Context, cfg InProcessConfig) ([]InProcessResult, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("loadgen: in-process store: %w", err)
	}
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, filepath.Join(cfg.Dir, "data"), store.WithLogger(quiet))
	if err != nil {
		return nil, fmt.Errorf("loadgen: in-process store: %w", err)
	}
	defer st.Close()
	rt, err := runtime.New(ctx, runtime.WithCompilationCacheDir(filepath.Join(cfg.Dir, "cache")), runtime.WithLogger(quiet))
	if err != nil {
		return nil, fmt.Errorf("loadgen: in-process runtime: %w", err)
	}
	defer rt.Close(context.WithoutCancel(ctx))
	mod, err := rt.Compile(ctx, cfg.Wasm)
	if err != nil {
		return nil, fmt.Errorf("loadgen: compiling the module: %w", err)
	}
	db, err := rt.CreateDatabase(ctx, st, "inprocess", mod)
	if err != nil {
		return nil, fmt.Errorf("loadgen: creating the in-process database: %w", err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	def := mod.Def()
	rd, _, ok := def.Reducer(cfg.Reducer)
	if !ok {
		return nil, fmt.Errorf("loadgen: the module has no reducer %q", cfg.Reducer)
	}
	if cfg.Args == "" {
		cfg.Args = "[]"
	}
	var out []InProcessResult
	for _, n := range cfg.Goroutines {
		r, err := inProcessRun(ctx, db, rd, cfg, n)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func inProcessRun(ctx context.Context, db *runtime.Database, rd *abi.ReducerDef, cfg InProcessConfig, n int) (InProcessResult, error) {
	var (
		stop      atomic.Bool
		measuring atomic.Bool
		committed atomic.Int64
		warmed    atomic.Int64 // goroutines that finished a call
		failed    atomic.Bool  // a goroutine stopped on an error
		wg        sync.WaitGroup
		samples   = make([][]time.Duration, n)
		guest     = make([][]time.Duration, n)
		errs      = make([]error, n)
		callArgs  = make([][]byte, n)
	)
	for i := range n {
		a, err := abi.ArgsFromJSON(rd.Params, expandArgs(nil, cfg.Args, i, 0))
		if err != nil {
			return InProcessResult{}, fmt.Errorf("loadgen: arguments for %s: %w", rd.Name, err)
		}
		callArgs[i] = a
	}
	for i := range n {
		if cfg.InFlight > 1 {
			wg.Go(func() {
				errs[i] = pipelinedCaller(ctx, db, rd, callArgs[i], cfg.InFlight, &stop, &measuring, &committed, &warmed, &samples[i], &guest[i])
				if errs[i] != nil {
					failed.Store(true)
				}
			})
			continue
		}
		wg.Go(func() {
			for first := true; !stop.Load(); first = false {
				t0 := time.Now()
				res, err := db.Call(ctx, runtime.CallRequest{Reducer: rd.Name, Args: callArgs[i]})
				if err != nil {
					errs[i] = err
					failed.Store(true)
					return
				}
				if first {
					warmed.Add(1)
				}
				if measuring.Load() {
					samples[i] = append(samples[i], time.Since(t0))
					guest[i] = append(guest[i], res.Duration)
					committed.Add(1)
				}
			}
		})
	}
	// The warm-up lasts at least until every goroutine has finished a call
	// (its first may wait for an instance), and the measurement at least
	// until one call finished inside it: on a loaded machine a single call
	// can take longer than a short window. Both give up after a while, so
	// that a stuck call ends the run instead of hanging it.
	const patience = 30 * time.Second
	time.Sleep(cfg.Warmup)
	for giveUp := time.Now().Add(patience); warmed.Load() < int64(n) && time.Now().Before(giveUp) && !failed.Load(); {
		time.Sleep(5 * time.Millisecond)
	}
	cpu0, t0 := processCPU(), time.Now()
	measuring.Store(true)
	time.Sleep(cfg.Duration)
	for giveUp := time.Now().Add(patience); committed.Load() == 0 && time.Now().Before(giveUp) && !failed.Load(); {
		time.Sleep(5 * time.Millisecond)
	}
	measuring.Store(false)
	cpu1, elapsed := processCPU(), time.Since(t0)
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return InProcessResult{}, fmt.Errorf("loadgen: in-process call of %s: %w", rd.Name, err)
		}
	}
	r := InProcessResult{Goroutines: n, Committed: committed.Load()}
	var all, g []time.Duration
	for i := range n {
		all = append(all, samples[i]...)
		g = append(g, guest[i]...)
	}
	r.Latency = summarize(all)
	r.GuestTime = summarize(g).P50
	if r.Committed > 0 {
		r.PerSecond = float64(r.Committed) / elapsed.Seconds()
		r.CPUPerCall = (cpu1 - cpu0) / time.Duration(r.Committed)
	}
	return r, nil
}

// pipelinedCaller keeps inflight calls in flight until stop, recording
// what it measures into samples and guest.
func pipelinedCaller(ctx context.Context, db *runtime.Database, rd *abi.ReducerDef, args []byte, inflight int,
	stop, measuring *atomic.Bool, committed, warmed *atomic.Int64, samples, guest *[]time.Duration) error {
	var (
		mu       sync.Mutex // samples, guest, firstErr
		firstErr error
		once     sync.Once
		slots    = make(chan struct{}, inflight)
	)
	for !stop.Load() {
		slots <- struct{}{}
		mu.Lock()
		err := firstErr
		mu.Unlock()
		if err != nil {
			break
		}
		t0 := time.Now()
		db.CallAsync(ctx, runtime.CallRequest{Reducer: rd.Name, Args: args}, func(res *runtime.CallResult, err error) {
			defer func() { <-slots }()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			once.Do(func() { warmed.Add(1) })
			if measuring.Load() {
				d := time.Since(t0)
				mu.Lock()
				*samples = append(*samples, d)
				*guest = append(*guest, res.Duration)
				mu.Unlock()
				committed.Add(1)
			}
		})
	}
	for range inflight {
		slots <- struct{}{}
	}
	return firstErr
}
