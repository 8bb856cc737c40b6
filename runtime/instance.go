package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/hostfuncs"
	"github.com/spacetime-go/spacetime/runtime/internal/fuel"
)

// instance is one instantiated copy of a module, used by one call at a time.
// It keeps the exported functions it calls (ExportedFunction costs about 3 µs
// per lookup) and the per-call host state, reused from call to call.
type instance struct {
	mod    *Module
	wm     api.Module
	callFn api.Function
	descFn api.Function
	call   hostfuncs.Call
	stack  [11]uint64
	// fuel and depth are the metering's globals (package fuel); nil when
	// the module is not metered (benchmarks) or has no depth counter.
	fuel, depth api.MutableGlobal
	// meter hands the call's energy to the guest a slice at a time
	// (options.go, WithEnergySlice): fuel holds the slice, the meter the
	// rest.
	meter fuel.Meter
	// memLimit is this instance's memory limit in pages; mem is its memory,
	// which refuses to grow past it.
	memLimit uint32
	mem      *linearMemory

	// The guest's clocks: wall time is the call's timestamp plus the
	// monotonic time elapsed in the call, and every reading advances the
	// monotonic clock by 1 µs. So a reducer's clock reads are a function of
	// its timestamp and of how often it reads, and time never stands still
	// for code that waits for it to pass.
	callNanos  int64
	mono       int64
	monoAtCall int64

	// Randomness is seeded from the call on first use (see seedRand).
	rng    *rand.ChaCha8
	seeded bool

	stdout, stderr lineWriter
}

// newInstance instantiates m for db (nil when only describing the module) and
// runs _initialize.
func (m *Module) newInstance(ctx context.Context, db *Database) (*instance, error) {
	r := m.rt
	inst := &instance{mod: m, rng: rand.NewChaCha8([32]byte{}), memLimit: r.cfg.memoryPages, meter: fuel.Meter{Slice: r.cfg.energySlice}}
	if r.cfg.noRefuel {
		inst.meter.Slice = 0 // no refuel import: the whole budget at once
	}
	inst.call.Limits = r.cfg.limits
	if db != nil {
		inst.call.Limits = db.callLimits()
		inst.call.DB = db.st
		inst.call.Log = db.logs
		if p := db.cfg.memoryPages; p > 0 && p < inst.memLimit {
			inst.memLimit = p
		}
		if m.memMinPages > inst.memLimit {
			return nil, fmt.Errorf("%w: the module's memory starts at %d pages (%d MiB), more than database %s's limit of %d pages (%d MiB); raise it with runtime.WithDatabaseMemoryLimitPages",
				ErrMemoryLimit, m.memMinPages, m.memMinPages/16, db.name, inst.memLimit, inst.memLimit/16)
		}
	}
	inst.stdout = lineWriter{inst: inst, level: abi.LogInfo}
	inst.stderr = lineWriter{inst: inst, level: abi.LogError}
	// wazero's page limit is per runtime; a database's own, lower, limit is
	// its memory allocator refusing to grow, which also tells a trap after a
	// refused memory.grow from other traps.
	ctx = experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, maxBytes uint64) experimental.LinearMemory {
		inst.mem = &linearMemory{limit: min(uint64(inst.memLimit)*pageSize, maxBytes)}
		return inst.mem
	}))
	cfg := wazero.NewModuleConfig().
		// Anonymous, so that many instances of one module can coexist.
		WithName("").
		// _initialize is called below, with the host state in the context.
		WithStartFunctions().
		WithWalltime(inst.walltime, 1000).
		WithNanotime(inst.nanotime, 1000).
		WithNanosleep(func(int64) {}).
		WithOsyield(func() {}).
		WithRandSource(randReader{inst}).
		WithStdout(&inst.stdout).
		WithStderr(&inst.stderr)
	// No WithFS, WithArgs, WithEnv or WithStdin: the guest sees no files, no
	// arguments, no environment and an empty stdin.
	wm, err := r.wz.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("runtime: instantiating module %s: %w", m.Hash()[:12], err)
	}
	inst.wm = wm
	inst.callFn = wm.ExportedFunction(abi.ExportCallReducer)
	inst.descFn = wm.ExportedFunction(abi.ExportDescribeModule)
	if m.metered {
		inst.fuel = wm.ExportedGlobal(fuel.FuelGlobal).(api.MutableGlobal)
		if m.depth {
			inst.depth = wm.ExportedGlobal(fuel.DepthGlobal).(api.MutableGlobal)
		}
		r.meters.m.Store(wm, inst)
	}
	if m.hasInitialize {
		sctx, cancel := context.WithTimeout(ctx, r.cfg.setupTimeout)
		defer cancel()
		inst.beginCall("_initialize", abi.Identity{}, 0)
		inst.setBudget(r.cfg.setupEnergy, r.cfg.maxCallDepth)
		_, err := wm.ExportedFunction(abi.ExportInitialize).Call(hostfuncs.WithCall(sctx, &inst.call))
		inst.endCall()
		if err != nil {
			inst.close(ctx)
			if sctx.Err() != nil {
				return nil, fmt.Errorf("%w: _initialize ran past %s and was stopped: %w: %w", ErrInvalidModule, r.cfg.setupTimeout, ErrDeadline, context.DeadlineExceeded)
			}
			if why := inst.limitHit(r.cfg.setupEnergy, r.cfg.maxCallDepth); why != nil {
				return nil, fmt.Errorf("%w: _initialize was stopped: %w", ErrInvalidModule, why)
			}
			return nil, fmt.Errorf("%w: _initialize trapped: %w", ErrInvalidModule, err)
		}
	}
	return inst, nil
}

const pageSize = 65536

// setBudget sets the fuel and call depth of the next call.
func (inst *instance) setBudget(energy int64, depth uint32) {
	if inst.fuel != nil {
		inst.fuel.Set(uint64(inst.meter.Start(energy)))
	}
	if inst.depth != nil {
		inst.depth.Set(uint64(depth))
	}
	if inst.mem != nil {
		inst.mem.refused = false
	}
}

// used returns the energy spent since setBudget(budget), and whether the
// call overspent (the fuel went below zero: a fuel trap, or a return from
// the last unchecked segments with less than nothing left). The fuel left
// is the global plus the meter's reserve.
func (inst *instance) used(budget int64) (uint64, bool) {
	if inst.fuel == nil {
		return 0, false
	}
	left := inst.meter.Left(int64(inst.fuel.Get()))
	if left < 0 {
		return uint64(budget), true
	}
	return uint64(budget - left), false
}

// limitHit says which limit stopped a trapped call, if one did: the fuel
// global below zero is a fuel trap (a Go panic's unreachable leaves it at or
// above zero); the depth global at zero is the depth check; a memory at its
// limit explains a guest's "out of memory".
func (inst *instance) limitHit(energy int64, depth uint32) error {
	if _, out := inst.used(energy); out {
		return fmt.Errorf("%w: it used all of its %d units: %w", ErrOutOfEnergy, energy, ErrDeadline)
	}
	if inst.depth != nil && inst.depth.Get() == 0 {
		return fmt.Errorf("%w: calls nested deeper than %d", ErrCallDepth, depth)
	}
	if inst.mem != nil && inst.mem.refused {
		return fmt.Errorf("%w: it tried to grow its memory past the limit of %d pages (%d MiB)", ErrMemoryLimit, inst.memLimit, inst.memLimit/16)
	}
	return nil
}

// linearMemory is a guest memory that refuses to grow past limit bytes
// (memory.grow then returns -1) and remembers that it did.
type linearMemory struct {
	buf     []byte
	limit   uint64
	refused bool
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		// Memory never shrinks, so the bytes past len are still zero.
		m.buf = m.buf[:size]
		return m.buf
	}
	grown := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.limit))
	copy(grown, m.buf)
	m.buf = grown
	return grown
}

func (m *linearMemory) Free() { m.buf = nil }

func (inst *instance) close(ctx context.Context) {
	inst.mod.rt.meters.m.Delete(inst.wm)
	inst.wm.Close(ctx)
}

// beginCall prepares the per-call state; the caller fills in the rest of
// inst.call (transaction, caller, claims).
func (inst *instance) beginCall(reducer string, caller abi.Identity, timestampMicros int64) {
	inst.call.Reducer = reducer
	inst.call.Caller = caller
	inst.call.Timestamp = timestampMicros
	inst.callNanos = timestampMicros * 1000
	inst.monoAtCall = inst.mono
	inst.seeded = false
}

func (inst *instance) endCall() {
	inst.stdout.flush()
	inst.stderr.flush()
	inst.call.End()
}

func (inst *instance) nanotime() int64 {
	inst.mono += 1000
	return inst.mono
}

func (inst *instance) walltime() (sec int64, nsec int32) {
	ns := inst.callNanos + (inst.nanotime() - inst.monoAtCall)
	return ns / 1e9, int32(ns % 1e9)
}

// seedRand derives the call's random stream from its inputs: a reducer's
// randomness is a function of its timestamp, caller, connection and name.
// It is not secret from someone who knows those; modules must not mint
// secrets from it.
func (inst *instance) seedRand() {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte("spacetime/rand/v1\x00"))
	binary.LittleEndian.PutUint64(b[:], uint64(inst.call.Timestamp))
	h.Write(b[:])
	h.Write(inst.call.Caller[:])
	h.Write(inst.call.Conn[:])
	h.Write([]byte(inst.call.Reducer))
	var seed [32]byte
	h.Sum(seed[:0])
	inst.rng.Seed(seed)
	inst.seeded = true
}

type randReader struct{ inst *instance }

func (r randReader) Read(p []byte) (int, error) {
	if !r.inst.seeded {
		r.inst.seedRand()
	}
	return r.inst.rng.Read(p)
}

// lineWriter sends the guest's stdout or stderr to the module log, a line at
// a time, charged to the call's log budget.
type lineWriter struct {
	inst  *instance
	level uint32
	buf   []byte
}

const maxLogLine = 8 << 10

// appendCapped appends at most what keeps buf within maxLogLine: a guest's
// single huge write must not grow a host buffer that outlives the call.
func appendCapped(buf, p []byte) []byte {
	if room := maxLogLine - len(buf); len(p) > room {
		p = p[:max(room, 0)]
	}
	return append(buf, p...)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = appendCapped(w.buf, p)
			if len(w.buf) >= maxLogLine {
				w.flush()
			}
			break
		}
		w.buf = appendCapped(w.buf, p[:i])
		w.flush()
		p = p[i+1:]
	}
	// The guest is never told its output was dropped: a write error would
	// only make it panic.
	return n, nil
}

func (w *lineWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	c := &w.inst.call
	line := w.buf
	w.buf = w.buf[:0]
	if c.Log == nil || c.LogBytesLeft() < len(line) {
		return
	}
	c.ChargeLog(len(line))
	c.Log.ModuleLog(w.level, c.Reducer, c.Caller, string(bytes.ToValidUTF8(line, []byte("\uFFFD"))))
}

// describe calls __describe_module__ and returns what it wrote.
func (inst *instance) describe(ctx context.Context) ([]byte, error) {
	r := inst.mod.rt
	sctx, cancel := context.WithTimeout(ctx, r.cfg.setupTimeout)
	defer cancel()
	inst.beginCall(abi.ExportDescribeModule, abi.Identity{}, 0)
	defer inst.endCall()
	sink, err := inst.call.NewSink(0)
	if err != nil {
		return nil, err
	}
	inst.stack[0] = uint64(sink)
	inst.setBudget(r.cfg.setupEnergy, r.cfg.maxCallDepth)
	if err := inst.descFn.CallWithStack(hostfuncs.WithCall(sctx, &inst.call), inst.stack[:]); err != nil {
		if sctx.Err() != nil {
			return nil, fmt.Errorf("%w: __describe_module__ ran past %s and was stopped: %w: %w", ErrInvalidModule, r.cfg.setupTimeout, ErrDeadline, context.DeadlineExceeded)
		}
		if why := inst.limitHit(r.cfg.setupEnergy, r.cfg.maxCallDepth); why != nil {
			return nil, fmt.Errorf("%w: __describe_module__ was stopped: %w", ErrInvalidModule, why)
		}
		return nil, fmt.Errorf("%w: __describe_module__ trapped: %w", ErrInvalidModule, err)
	}
	out := inst.call.SinkBytes(sink)
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %w: __describe_module__ wrote nothing to its sink; the module must describe its tables and reducers", ErrInvalidModule, ErrInvalidModuleDef)
	}
	return out, nil
}

// isExit reports whether err is the guest exiting or being closed (deadline,
// cancel, proc_exit) rather than a fault.
func isExit(err error) (*sys.ExitError, bool) {
	var ee *sys.ExitError
	ok := errors.As(err, &ee)
	return ee, ok
}
