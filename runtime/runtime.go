package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/hostfuncs"
	"github.com/spacetime-go/spacetime/runtime/internal/fuel"
)

// Runtime compiles modules and runs their instances. One Runtime serves every
// database of a server; it holds one wazero runtime. Memory limits are per
// instance (each instance's memory allocator refuses to grow past its
// database's limit), so databases with different limits share it.
type Runtime struct {
	cfg   config
	wz    wazero.Runtime
	cache wazero.CompilationCache
	// meters finds an instance's fuel meter for the refuel import.
	meters *meters

	mu      sync.Mutex
	modules map[[32]byte]*moduleEntry
	// idle lists compiled modules no database uses, least recently
	// released first; beyond cfg.maxIdleModules the oldest is closed.
	idle   []*moduleEntry
	closed bool
	// compiling counts compiles in flight, abandoned ones included: wazero
	// panics if its runtime is closed under a compile, so Close waits.
	compiling sync.WaitGroup
}

type moduleEntry struct {
	done chan struct{}
	mod  *Module
	err  error
	refs int // databases serving mod (guarded by Runtime.mu)
}

// New creates a Runtime.
func New(ctx context.Context, opts ...Option) (*Runtime, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	// Every call opens three handles before the guest runs: its arguments,
	// return value and error message.
	if cfg.limits.MaxHandles < 3 {
		return nil, fmt.Errorf("runtime: a limit of %d open handles is too low: every call needs 3 (arguments, return value, error message); set hostfuncs.Limits.MaxHandles to 3 or more", cfg.limits.MaxHandles)
	}
	var (
		cache wazero.CompilationCache
		err   error
	)
	if cfg.cacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.cacheDir); err != nil {
			return nil, fmt.Errorf("runtime: compilation cache in %s: %w (check that the directory is writable)", cfg.cacheDir, err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	wcfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		// Memory is limited per instance by its allocator (instance.go),
		// which also says when a trap followed a refused memory.grow; the
		// runtime-wide limit would refuse first and silently.
		WithMemoryLimitPages(65536).
		// Off by default: fuel bounds the guest's computation, and this costs a
		// goroutine per call and slows loops several times (RATIONALE.md).
		WithCloseOnContextDone(cfg.closeOnDone)
	wz := wazero.NewRuntimeWithConfig(ctx, wcfg)
	// WASI is instantiated whole, but a guest can only reach the functions it
	// imports, and validation refuses imports outside abi.WASIImports.
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, wz); err != nil {
		wz.Close(ctx)
		return nil, fmt.Errorf("runtime: WASI: %w", err)
	}
	if _, err := hostfuncs.Instantiate(ctx, wz); err != nil {
		wz.Close(ctx)
		return nil, fmt.Errorf("runtime: host functions: %w", err)
	}
	ms := &meters{}
	if err := instantiateMeter(ctx, wz, ms); err != nil {
		wz.Close(ctx)
		return nil, fmt.Errorf("runtime: fuel meter: %w", err)
	}
	return &Runtime{cfg: cfg, wz: wz, cache: cache, meters: ms, modules: map[[32]byte]*moduleEntry{}}, nil
}

// Close stops every instance and releases compiled code. Calls in flight fail.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.compiling.Wait()
	err := r.wz.Close(ctx)
	return errors.Join(err, r.cache.Close(ctx))
}

// Module is a validated, compiled module version. Identical binaries (same
// SHA-256) share one Module. A Module holds no database state: each database
// has its own instances (see Database), so that one tenant's guest memory is
// never seen by another's calls.
type Module struct {
	rt       *Runtime
	hash     [32]byte
	size     int
	compiled wazero.CompiledModule
	def      *abi.ModuleDef
	reducers map[string]uint32
	// hasInitialize: the module exports _initialize (Go c-shared builds do).
	hasInitialize bool
	compileTime   time.Duration
	// metered: the compiled code counts fuel in __fuel (and call depth in
	// __depth when depth is set).
	metered, depth bool
	// memMinPages is the initial size of the module's memory.
	memMinPages uint32
	closed      bool // evicted (guarded by Runtime.mu)
}

// Hash returns the hex SHA-256 of the module's binary.
func (m *Module) Hash() string { return hex.EncodeToString(m.hash[:]) }

// Def returns the module's validated description. Do not modify it.
func (m *Module) Def() *abi.ModuleDef { return m.def }

// Size returns the size of the binary in bytes.
func (m *Module) Size() int { return m.size }

// CompileTime returns how long validating, compiling and describing took.
func (m *Module) CompileTime() time.Duration { return m.compileTime }

// Compile validates wasm, compiles it (or takes it from the compilation
// cache), reads its ModuleDef through __describe_module__ and validates that.
// Compiling the same bytes again returns the same *Module. Errors wrap
// ErrInvalidModule when the binary is at fault.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	hash := sha256.Sum256(wasm)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := r.modules[hash]
	if !ok {
		e = &moduleEntry{done: make(chan struct{})}
		r.modules[hash] = e
	}
	r.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			return e.mod, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Detached from ctx: others may wait on this result, so one caller's
	// cancellation must not become everyone's failure.
	e.mod, e.err = r.compile(context.WithoutCancel(ctx), hash, wasm)
	r.mu.Lock()
	if e.err != nil {
		// Failures are not cached: the cause may be transient, and the
		// binary's bytes are what make a retry cheap to refuse again.
		delete(r.modules, hash)
	} else {
		// Idle until a database takes it.
		r.idleLocked(context.WithoutCancel(ctx), e)
	}
	r.mu.Unlock()
	close(e.done)
	return e.mod, e.err
}

// acquire records that a database serves m; a module only idle modules
// may be closed.
func (m *Module) acquire() error {
	r := m.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.modules[m.hash]
	if m.closed || e == nil || e.mod != m {
		return fmt.Errorf("runtime: module %s was released from memory after no database used it; compile it again: %w", m.Hash()[:12], ErrClosed)
	}
	e.refs++
	if i := slices.Index(r.idle, e); i >= 0 {
		r.idle = slices.Delete(r.idle, i, i+1)
	}
	return nil
}

// release undoes acquire. A module no database serves joins the idle list.
func (m *Module) release(ctx context.Context) {
	r := m.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.modules[m.hash]
	if e == nil || e.mod != m {
		return
	}
	if e.refs--; e.refs == 0 {
		r.idleLocked(ctx, e)
	}
}

// idleLocked puts e on the idle list and closes the oldest idle modules
// beyond the limit.
func (r *Runtime) idleLocked(ctx context.Context, e *moduleEntry) {
	if r.closed {
		return
	}
	r.idle = append(r.idle, e)
	for len(r.idle) > r.cfg.maxIdleModules {
		old := r.idle[0]
		r.idle = r.idle[1:]
		delete(r.modules, old.mod.hash)
		old.mod.closed = true
		old.mod.compiled.Close(ctx)
		r.cfg.logger.Info("compiled module released", "sha256", old.mod.Hash())
	}
}

func (r *Runtime) compile(ctx context.Context, hash [32]byte, wasm []byte) (*Module, error) {
	start := time.Now()
	if err := validateWasm(wasm, r.cfg.maxModuleSize); err != nil {
		return nil, err
	}
	prepared, err := r.prepare(wasm)
	if err != nil {
		return nil, err
	}
	if prepared.MemoryMinPages > r.cfg.memoryPages {
		return nil, fmt.Errorf("%w: %w: the module's memory starts at %d pages (%d MiB) and this host allows at most %d pages (%d MiB) per instance; make the module start smaller or raise the limit (runtime.WithMemoryLimitPages)",
			ErrInvalidModule, ErrMemoryLimit, prepared.MemoryMinPages, prepared.MemoryMinPages/16, r.cfg.memoryPages, r.cfg.memoryPages/16)
	}
	compiled, err := r.compileWasm(ctx, prepared.Wasm)
	if err != nil {
		return nil, err
	}
	m := &Module{rt: r, hash: hash, size: len(wasm), compiled: compiled,
		metered: !r.cfg.noMetering, depth: !r.cfg.noMetering && prepared.Depth, memMinPages: prepared.MemoryMinPages}
	_, m.hasInitialize = compiled.ExportedFunctions()[abi.ExportInitialize]
	def, err := m.describe(ctx)
	if err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	if err := validateDef(def); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	m.def = withSystemTables(def)
	m.reducers = make(map[string]uint32, len(def.Reducers))
	for i, rd := range def.Reducers {
		m.reducers[rd.Name] = uint32(i)
	}
	m.compileTime = time.Since(start)
	r.cfg.logger.Info("module compiled", "sha256", m.Hash(), "bytes", len(wasm),
		"tables", len(def.Tables), "reducers", len(def.Reducers), "duration", m.compileTime)
	return m, nil
}

// prepare decodes every function body, checks the module's shape against
// the limits, and instruments it with fuel metering (package fuel). It runs
// after validateWasm and before anything is compiled.
func (r *Runtime) prepare(wasm []byte) (*fuel.Result, error) {
	res, err := fuel.Instrument(wasm, fuel.Config{
		InitialFuel:  r.cfg.setupEnergy,
		MaxCallDepth: r.cfg.maxCallDepth,
		HostCallCost: r.cfg.hostCallEnergy,
		Refuel:       !r.cfg.noRefuel,
		Limits:       r.cfg.moduleLimits,
	})
	switch {
	case errors.Is(err, fuel.ErrLimit):
		return nil, fmt.Errorf("%w: %w: %w (runtime.WithModuleLimits)", ErrInvalidModule, ErrModuleLimit, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	if r.cfg.noMetering {
		res.Wasm = wasm
	}
	return res, nil
}

// compileWasm compiles under the compile timeout. wazero cannot stop a
// compile midway: one past the limit finishes in the background and is
// thrown away.
func (r *Runtime) compileWasm(ctx context.Context, wasm []byte) (wazero.CompiledModule, error) {
	type result struct {
		cm  wazero.CompiledModule
		err error
	}
	ch := make(chan result, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.compiling.Add(1)
	r.mu.Unlock()
	var (
		handoff sync.Mutex
		gaveUp  bool
	)
	go func() {
		defer r.compiling.Done()
		cm, err := r.wz.CompileModule(experimental.WithCompilationWorkers(ctx, r.cfg.compileWorkers), wasm)
		handoff.Lock()
		defer handoff.Unlock()
		if gaveUp {
			// Closed here, before Done, so never after the runtime.
			if cm != nil {
				cm.Close(ctx)
			}
			return
		}
		ch <- result{cm, err}
	}()
	timer := time.NewTimer(r.cfg.compileTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, fmt.Errorf("%w: it does not compile: %w", ErrInvalidModule, res.err)
		}
		return res.cm, nil
	case <-timer.C:
		handoff.Lock()
		gaveUp = true
		handoff.Unlock()
		select {
		case res := <-ch: // finished as the timer fired
			if res.cm != nil {
				res.cm.Close(ctx)
			}
		default:
		}
		return nil, fmt.Errorf("%w: %w: compiling the module took longer than %s; make it smaller or raise the limit (runtime.WithCompileTimeout)",
			ErrInvalidModule, ErrModuleLimit, r.cfg.compileTimeout)
	}
}

// describe runs __describe_module__ in a throwaway instance.
func (m *Module) describe(ctx context.Context) (*abi.ModuleDef, error) {
	inst, err := m.newInstance(ctx, nil)
	if err != nil {
		if !errors.Is(err, ErrInvalidModule) {
			// At upload, a module that cannot be instantiated (data or
			// elements out of bounds) is the module's fault.
			err = fmt.Errorf("%w: %w", ErrInvalidModule, err)
		}
		return nil, err
	}
	defer inst.close(ctx)
	data, err := inst.describe(ctx)
	if err != nil {
		return nil, err
	}
	def, err := abi.UnmarshalModuleDef(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidModule, ErrInvalidModuleDef, err)
	}
	return def, nil
}
