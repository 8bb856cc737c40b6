package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/hostfuncs"
)

// Runtime compiles modules and runs their instances. One Runtime serves every
// database of a server; it holds one wazero runtime, so all its instances share
// one memory limit (wazero applies WithMemoryLimitPages per runtime: a second
// limit class needs a second Runtime).
type Runtime struct {
	cfg   config
	wz    wazero.Runtime
	cache wazero.CompilationCache

	mu      sync.Mutex
	modules map[[32]byte]*moduleEntry
	closed  bool
}

type moduleEntry struct {
	done chan struct{}
	mod  *Module
	err  error
}

// New creates a Runtime.
func New(ctx context.Context, opts ...Option) (*Runtime, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
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
		WithMemoryLimitPages(cfg.memoryPages).
		// Without it a deadline, and even Close, is ignored by a spinning guest.
		WithCloseOnContextDone(!cfg.noCloseOnDone)
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
	return &Runtime{cfg: cfg, wz: wz, cache: cache, modules: map[[32]byte]*moduleEntry{}}, nil
}

// Close stops every instance and releases compiled code. Calls in flight fail.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
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
	if e.err != nil {
		// Failures are not cached: the cause may be transient, and the
		// binary's bytes are what make a retry cheap to refuse again.
		r.mu.Lock()
		delete(r.modules, hash)
		r.mu.Unlock()
	}
	close(e.done)
	return e.mod, e.err
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
	compiled, err := r.wz.CompileModule(experimental.WithCompilationWorkers(ctx, r.cfg.compileWorkers), prepared)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not compile: %w", ErrInvalidModule, err)
	}
	m := &Module{rt: r, hash: hash, size: len(wasm), compiled: compiled}
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

// prepare is where the binary may be rewritten before compiling, after it
// has been validated: metering (a fuel counter checked at function entries
// and loop heads) goes here. It must validate its own output's invariants
// (FIELD_NOTES: validate the original first, then instrument).
func (r *Runtime) prepare(wasm []byte) ([]byte, error) { return wasm, nil }

// describe runs __describe_module__ in a throwaway instance.
func (m *Module) describe(ctx context.Context) (*abi.ModuleDef, error) {
	inst, err := m.newInstance(ctx, nil)
	if err != nil {
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
