package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/hostfuncs"
	"github.com/spacetime-go/spacetime/store"
)

// Database ties a module version to a store database: it runs the module's
// reducers as transactions over the database's tables. It is safe for
// concurrent use; the store runs one transaction at a time per database.
type Database struct {
	rt   *Runtime
	st   *store.Database
	name string
	cfg  dbConfig
	logs *LogBuffer

	cur    atomic.Pointer[version]
	closed atomic.Bool
	// instancesMade counts the instances made for calls (tests watch the
	// pool with it).
	instancesMade atomic.Int64
	// readOnly holds the system tables' ids, which guests may not write.
	readOnly hostfuncs.ReadOnlyTables
}

// version is a module version serving a database, with its idle instances.
// Instances are per database, never shared between databases: a guest keeps
// memory between calls, and one tenant's rows must not be readable from
// another tenant's calls, even when both uploaded the same binary.
type version struct {
	mod  *Module
	mu   sync.Mutex
	idle []*instance
	gone bool // replaced by a newer version: instances returned are closed
	// making counts the instances being made; at most maxMaking at once.
	// peakMaking is its highest value (tests watch it).
	making, peakMaking int
	// changed is closed (and replaced) when an instance is put back or a
	// making ends: callers waiting for an instance look again.
	changed chan struct{}
}

// maxMaking bounds the instances of one version made at the same time. Calls
// run one at a time per database, so one or two instances serve them all;
// without a bound, many callers finding the pool empty at once (a burst of
// new connections, or a module whose calls keep trapping) would each make
// one, each running _initialize, and starve the call that holds the writer
// slot of CPU.
const maxMaking = 2

// obtain returns an idle instance, or makes one. When maxMaking are already
// being made, it waits for one of them, or for an instance put back.
func (v *version) obtain(ctx context.Context, d *Database) (*instance, error) {
	for {
		v.mu.Lock()
		if n := len(v.idle); n > 0 {
			inst := v.idle[n-1]
			v.idle = v.idle[:n-1]
			v.mu.Unlock()
			return inst, nil
		}
		if v.making < maxMaking {
			v.making++
			v.peakMaking = max(v.peakMaking, v.making)
			v.mu.Unlock()
			inst, err := v.mod.newInstance(ctx, d)
			v.mu.Lock()
			v.making--
			v.notifyLocked()
			v.mu.Unlock()
			if err == nil {
				d.instancesMade.Add(1)
			}
			return inst, err
		}
		if v.changed == nil {
			v.changed = make(chan struct{})
		}
		changed := v.changed
		v.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for an instance: %w", ctx.Err())
		}
	}
}

// notifyLocked wakes the callers waiting in obtain. v.mu is held.
func (v *version) notifyLocked() {
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
}

// CreateDatabase creates the store database name with mod's tables (a first
// publish) and runs the module's init reducer, if it has one. If init fails,
// the database is dropped again and the error returned.
func (r *Runtime) CreateDatabase(ctx context.Context, st *store.Store, name string, mod *Module, opts ...DatabaseOption) (*Database, error) {
	if err := mod.acquire(); err != nil {
		return nil, err
	}
	sdb, err := st.CreateDatabase(ctx, name, mod.def.Tables)
	if err != nil {
		mod.release(ctx)
		return nil, fmt.Errorf("runtime: creating database %s: %w", name, err)
	}
	d := r.newDatabase(sdb, mod, opts)
	if _, err := d.CallLifecycle(ctx, abi.LifecycleInit, CallRequest{}); err != nil {
		d.Close(ctx)
		if derr := st.DropDatabase(context.WithoutCancel(ctx), name); derr != nil {
			err = errors.Join(err, fmt.Errorf("dropping the half-created database: %w", derr))
		}
		return nil, fmt.Errorf("runtime: database %s: the init reducer failed, so the database was not created: %w", name, err)
	}
	return d, nil
}

// OpenDatabase serves the existing store database name with mod, for example
// after a restart. Tables mod declares that the database lacks are added; a
// table that exists with different columns or indexes is refused
// (ErrSchemaChange). init is not run.
func (r *Runtime) OpenDatabase(ctx context.Context, st *store.Store, name string, mod *Module, opts ...DatabaseOption) (*Database, error) {
	sdb, err := st.Database(name)
	if err != nil {
		return nil, fmt.Errorf("runtime: opening database %s: %w", name, err)
	}
	if err := applySchema(ctx, sdb, mod.def); err != nil {
		return nil, err
	}
	if err := mod.acquire(); err != nil {
		return nil, err
	}
	return r.newDatabase(sdb, mod, opts), nil
}

func (r *Runtime) newDatabase(sdb *store.Database, mod *Module, opts []DatabaseOption) *Database {
	cfg := dbConfig{verifier: r.cfg.verifier, deadline: r.cfg.deadline, energy: r.cfg.energy,
		memoryPages: r.cfg.memoryPages, maxCallDepth: r.cfg.maxCallDepth}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.memoryPages = min(cfg.memoryPages, r.cfg.memoryPages)
	d := &Database{rt: r, st: sdb, name: sdb.Name(), cfg: cfg, logs: NewLogBuffer(r.cfg.logLines), readOnly: readOnlyTables(sdb)}
	d.cur.Store(&version{mod: mod})
	return d
}

// applySchema adds mod's new tables to sdb and refuses changes to existing ones.
func applySchema(ctx context.Context, sdb *store.Database, def *abi.ModuleDef) error {
	existing := map[string]abi.TableDef{}
	for _, t := range sdb.Tables() {
		existing[t.Name] = t
	}
	var add []abi.TableDef
	for _, t := range def.Tables {
		old, ok := existing[t.Name]
		if !ok {
			add = append(add, t)
			continue
		}
		if !reflect.DeepEqual(old.Columns, t.Columns) || !reflect.DeepEqual(old.ImpliedIndexes(), t.ImpliedIndexes()) {
			return fmt.Errorf("%w: table %s of database %s has different columns or indexes in the new module; only new tables can be added (publish under a new name, or drop the database to start over)",
				ErrSchemaChange, t.Name, sdb.Name())
		}
	}
	if len(add) > 0 {
		if err := sdb.AddTables(ctx, add); err != nil {
			return fmt.Errorf("runtime: adding tables to database %s: %w", sdb.Name(), err)
		}
	}
	return nil
}

// Update makes mod serve the database from the next call on (a republish).
// New tables are added; changes to existing tables are refused.
func (d *Database) Update(ctx context.Context, mod *Module) error {
	// The module first: a module that can no longer serve (released from
	// memory) must not leave the database with its schema and the old code.
	if err := mod.acquire(); err != nil {
		return err
	}
	if err := applySchema(ctx, d.st, mod.def); err != nil {
		mod.release(ctx)
		return err
	}
	old := d.cur.Swap(&version{mod: mod})
	old.retire(ctx)
	return nil
}

func (v *version) retire(ctx context.Context) {
	v.mu.Lock()
	idle := v.idle
	wasGone := v.gone
	v.idle, v.gone = nil, true
	v.mu.Unlock()
	for _, inst := range idle {
		inst.close(ctx)
	}
	if !wasGone {
		v.mod.release(ctx)
	}
}

// Close releases the database's instances. The store database stays.
func (d *Database) Close(ctx context.Context) {
	d.closed.Store(true)
	d.cur.Load().retire(ctx)
	d.logs.Close()
}

// Name returns the database's name.
func (d *Database) Name() string { return d.name }

// Module returns the module version serving the database.
func (d *Database) Module() *Module { return d.cur.Load().mod }

// Store returns the store database.
func (d *Database) Store() *store.Database { return d.st }

// Logs returns the module's log.
func (d *Database) Logs() *LogBuffer { return d.logs }

// tryGet returns an idle instance, or nil when there is none.
func (v *version) tryGet() *instance {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := len(v.idle)
	if n == 0 {
		return nil
	}
	inst := v.idle[n-1]
	v.idle = v.idle[:n-1]
	return inst
}

func (v *version) put(ctx context.Context, inst *instance, maxIdle int) {
	v.mu.Lock()
	if !v.gone && len(v.idle) < maxIdle {
		v.idle = append(v.idle, inst)
		v.notifyLocked()
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()
	inst.close(ctx)
}

// maxErrorMessage bounds a reducer's error message: it is shown to clients
// and written to logs, and a module must not make either carry megabytes.
const maxErrorMessage = 16 << 10

// CallRequest is one reducer call.
type CallRequest struct {
	// Reducer is the reducer's name.
	Reducer string
	// Args is the BSATN product of the arguments.
	Args []byte
	// Caller is the caller's identity; zero for an unauthenticated caller.
	Caller abi.Identity
	// Connection is the client connection; zero for HTTP and host calls.
	Connection abi.ConnectionID
	// Timestamp is the call's logical time, which the guest's clocks and
	// randomness derive from; zero means now.
	Timestamp time.Time
	// Claims are the JSON claims of the token behind Caller (caller_claims).
	Claims []byte
	// Timeout overrides the database's deadline for this call.
	Timeout time.Duration
	// Energy overrides the database's energy budget for this call.
	Energy int64
}

// CallResult is a committed call.
type CallResult struct {
	// Commit is the store's commit: its offset and delta. It is durable.
	Commit store.Commit
	// Return is the BSATN of the return value; nil when the reducer returns nothing.
	Return []byte
	// Duration is the time spent in the guest.
	Duration time.Duration
	// Energy is the fuel the call used: one unit per wasm instruction
	// executed (plus a fixed price per host call). It is a function of the
	// module, the arguments, the database's state and the instance's own
	// memory: the same call on a fresh instance always costs the same, but
	// a Go guest's allocator and collector make a reused instance's cost
	// depend on the calls it served before.
	Energy uint64
	// Verified is set after a successful auth reducer whose returned identity
	// comes from a token jwt_verify accepted during the call; its row in the
	// identity system table was written in the same transaction.
	Verified *VerifiedIdentity
}

// Call runs a reducer as one transaction. The error is a *ReducerError
// (ErrReducerFailed) when the reducer itself failed; ErrTrap, ErrDeadline,
// ErrOutOfEnergy, ErrCallDepth or ErrMemoryLimit when it was stopped;
// ErrNoSuchReducer or ErrInvalidArguments when it did not run. In every failure nothing of the transaction is kept.
func (d *Database) Call(ctx context.Context, req CallRequest) (*CallResult, error) {
	v := d.cur.Load()
	id, ok := v.mod.reducers[req.Reducer]
	if !ok {
		return nil, fmt.Errorf("%w: database %s has no reducer %q", ErrNoSuchReducer, d.name, req.Reducer)
	}
	rd := &v.mod.def.Reducers[id]
	if rd.Lifecycle != "" {
		return nil, fmt.Errorf("%w: %s is the %s lifecycle reducer, which only the host calls", ErrNoSuchReducer, rd.Name, rd.Lifecycle)
	}
	return d.run(ctx, v, id, req, nil)
}

// CallLifecycle runs the module's lifecycle reducer kind (abi.LifecycleInit,
// LifecycleClientConnected, LifecycleClientDisconnected) with no arguments.
// It returns (nil, nil) when the module has none. A client_connected that
// fails means the connection should be refused.
func (d *Database) CallLifecycle(ctx context.Context, kind string, req CallRequest) (*CallResult, error) {
	v := d.cur.Load()
	for i := range v.mod.def.Reducers {
		if v.mod.def.Reducers[i].Lifecycle == kind {
			req.Reducer = v.mod.def.Reducers[i].Name
			req.Args = nil
			return d.run(ctx, v, uint32(i), req, nil)
		}
	}
	return nil, nil
}

// run runs a call. With then nil, it waits for the commit to be durable;
// otherwise, once the transaction is ordered, it returns (nil, nil) and the
// store gives then the outcome (CallAsync).
func (d *Database) run(ctx context.Context, v *version, id uint32, req CallRequest, then func(*CallResult, error)) (*CallResult, error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("runtime: database %s: %w", d.name, ErrClosed)
	}
	rd := &v.mod.def.Reducers[id]
	if len(req.Args) > d.maxArgs() {
		return nil, d.argsTooLarge(rd.Name, len(req.Args))
	}
	if err := validateArgs(rd, req.Args); err != nil {
		return nil, err
	}
	ts := req.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = d.cfg.deadline
	}
	budget := req.Energy
	if budget <= 0 {
		budget = d.cfg.energy
	}

	// An idle instance is taken inside the writer slot. When there is none,
	// one is made outside it (instantiating takes milliseconds, which must
	// not hold up other callers' transactions) and the slot is taken again.
	// Taking an instance before the slot instead would give one to every
	// caller waiting for the slot: with more callers than the pool keeps,
	// each call would create and discard an instance.
	preverified := d.preverify(ctx, rd, req.Args)
	tx, err := d.st.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: database %s: starting a transaction: %w", d.name, err)
	}
	inst := v.tryGet()
	if inst == nil {
		tx.Rollback()
		if inst, err = v.obtain(ctx, d); err != nil {
			return nil, fmt.Errorf("runtime: database %s: %w", d.name, err)
		}
		if tx, err = d.st.Begin(ctx); err != nil {
			v.put(ctx, inst, d.rt.cfg.maxIdle)
			return nil, fmt.Errorf("runtime: database %s: starting a transaction: %w", d.name, err)
		}
	}
	// Whatever happens below, even a panic outside the guest, the writer
	// slot is released; Rollback does nothing after Commit.
	defer tx.Rollback()

	inst.beginCall(rd.Name, req.Caller, ts.UnixMicro())
	c := &inst.call
	c.Tx = tx
	c.Conn = req.Connection
	c.Claims = req.Claims
	c.Verifier = d.cfg.verifier
	c.Preverified = preverified
	c.ReadOnly = d.readOnly
	args, err1 := c.NewSource(req.Args)
	ret, err2 := c.NewSink(0)
	errSink, err3 := c.NewSink(maxErrorMessage)
	if err := errors.Join(err1, err2, err3); err != nil {
		inst.endCall()
		tx.Rollback()
		v.put(ctx, inst, d.rt.cfg.maxIdle)
		return nil, fmt.Errorf("runtime: database %s: opening the handles of call %s: %w", d.name, rd.Name, err)
	}
	inst.setBudget(budget, d.cfg.maxCallDepth)

	w0, w1, w2, w3 := req.Caller.Words()
	cw0, cw1 := req.Connection.Words()
	s := &inst.stack
	s[0], s[1], s[2], s[3], s[4] = uint64(id), w0, w1, w2, w3
	s[5], s[6], s[7] = cw0, cw1, uint64(ts.UnixMicro())
	s[8], s[9], s[10] = uint64(args), uint64(ret), uint64(errSink)

	// The deadline: without WithCloseOnContextDone nothing waits on the
	// context's Done channel, so the Call's own context checks the deadline
	// by the clock where it is read (host functions doing store work, and
	// below) and costs no timer; wazero's watchdog needs a real one.
	var callCtx context.Context
	cancel := func() {}
	if d.rt.cfg.closeOnDone {
		callCtx, cancel = context.WithTimeout(ctx, timeout)
		callCtx = hostfuncs.WithCall(callCtx, c)
	} else {
		callCtx = c.Context(ctx, timeout)
	}
	start := time.Now()
	callErr := inst.callFn.CallWithStack(callCtx, s[:])
	elapsed := time.Since(start)
	ctxErr := callCtx.Err()
	cancel()
	energy, overspent := inst.used(budget)
	result := abi.CallResult(int32(uint32(s[0])))
	retBytes := c.SinkBytes(ret)
	errBytes := c.SinkBytes(errSink)
	verified := c.Verified
	refused := c.Refused()
	inst.endCall()

	// A guest that returned after its deadline (or its caller leaving) is
	// failed all the same, as RATIONALE says. With wazero's watchdog on, the
	// deadline may already have closed the module: never pool it then.
	if callErr != nil || ctxErr != nil || overspent {
		tx.Rollback()
		var limit error
		if callErr != nil || overspent {
			limit = inst.limitHit(budget, d.cfg.maxCallDepth)
		}
		if callErr == nil && !overspent && !d.rt.cfg.closeOnDone {
			// The guest returned normally and nothing watched the context
			// to close its module: it is as healthy as after a failed call.
			v.put(ctx, inst, d.rt.cfg.maxIdle)
		} else {
			inst.close(context.WithoutCancel(ctx))
		}
		return nil, &energyError{withRefusal(d.stopped(rd.Name, callErr, ctxErr, ctx.Err(), limit, timeout, elapsed, energy), refused), energy}
	}
	switch result {
	case abi.CallCommitted:
	case abi.CallFailed:
		tx.Rollback()
		v.put(ctx, inst, d.rt.cfg.maxIdle)
		msg := string(errBytes)
		if msg == "" {
			msg = "the reducer failed without a message"
		}
		return nil, &energyError{&ReducerError{Reducer: rd.Name, Message: msg, Limit: refused}, energy}
	default:
		tx.Rollback()
		inst.close(context.WithoutCancel(ctx))
		d.rt.cfg.logger.Warn("reducer returned an unknown result", "database", d.name, "reducer", rd.Name, "result", int32(result))
		return nil, &energyError{fmt.Errorf("%w: reducer %s returned %d from __call_reducer__, which is neither 0 (committed) nor 1 (failed); the module is broken and its instance was discarded",
			ErrTrap, rd.Name, int32(result)), energy}
	}
	if err := checkReturn(rd, retBytes); err != nil {
		tx.Rollback()
		v.put(ctx, inst, d.rt.cfg.maxIdle)
		return nil, err
	}
	// The instance is free before the commit waits for the disk.
	v.put(ctx, inst, d.rt.cfg.maxIdle)
	var vi *VerifiedIdentity
	if rd.IsAuth() {
		if vi = verifiedIdentity(retBytes, verified); vi != nil {
			if err := recordIdentity(tx, d.st, vi, ts); err != nil {
				tx.Rollback()
				return nil, fmt.Errorf("runtime: database %s: recording identity %s after %s: %w", d.name, vi.Identity, rd.Name, err)
			}
		}
	}
	if rd.Return == nil {
		retBytes = nil
	}
	res := &CallResult{Return: retBytes, Duration: elapsed, Verified: vi, Energy: energy}
	if then != nil {
		return nil, d.commitThen(tx, rd.Name, res, then)
	}
	// The guest has committed: the caller going away now must not turn a
	// transaction that may still become durable into a reported failure
	// (store.ErrCommitUnconfirmed), so the commit is awaited regardless.
	commit, err := tx.Commit(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("runtime: database %s: committing %s: %w", d.name, rd.Name, err)
	}
	res.Commit = commit
	return res, nil
}

// stopped builds the error of a call the guest did not finish.
func (d *Database) stopped(reducer string, callErr, callCtxErr, parentErr, limit error, timeout, elapsed time.Duration, energy uint64) error {
	log := d.rt.cfg.logger
	if limit == nil && callErr != nil && strings.Contains(callErr.Error(), "stack overflow") {
		// wazero's own ceiling, when depth is not counted.
		limit = fmt.Errorf("%w: the host's call stack overflowed", ErrCallDepth)
	}
	switch {
	case limit != nil:
		log.Warn("reducer stopped at a limit", "database", d.name, "reducer", reducer, "limit", limit, "energy", energy, "elapsed", elapsed)
		d.logs.ModuleLog(abi.LogError, reducer, abi.Identity{}, "stopped: "+limit.Error())
		switch {
		case errors.Is(limit, ErrOutOfEnergy):
			return fmt.Errorf("reducer %s ran out of energy and was stopped; nothing it wrote was kept. Energy counts wasm instructions and is the deterministic deadline of a call: make the reducer do less per call, or raise the budget (runtime.WithEnergyBudget, WithDatabaseEnergyBudget, CallRequest.Energy): %w",
				reducer, limit)
		case errors.Is(limit, ErrCallDepth):
			return fmt.Errorf("%w: reducer %s was stopped: %w (unbounded recursion?); nothing it wrote was kept and the instance was discarded; raise the limit with runtime.WithMaxCallDepth or WithDatabaseMaxCallDepth",
				ErrTrap, reducer, limit)
		default:
			return fmt.Errorf("%w: reducer %s trapped: %w; nothing it wrote was kept and the instance was discarded; use less memory per call or raise the limit (runtime.WithDatabaseMemoryLimitPages): %w",
				ErrTrap, reducer, limit, callErr)
		}
	case parentErr != nil:
		log.Info("reducer call cancelled", "database", d.name, "reducer", reducer, "elapsed", elapsed)
		return fmt.Errorf("runtime: reducer %s was stopped because its caller went away; nothing it wrote was kept: %w", reducer, parentErr)
	case errors.Is(callCtxErr, context.DeadlineExceeded):
		log.Warn("reducer deadline exceeded", "database", d.name, "reducer", reducer, "deadline", timeout, "elapsed", elapsed)
		d.logs.ModuleLog(abi.LogError, reducer, abi.Identity{}, fmt.Sprintf("stopped: ran past its deadline of %s", timeout))
		return fmt.Errorf("%w: reducer %s ran past its deadline of %s and was stopped; nothing it wrote was kept: %w",
			ErrDeadline, reducer, timeout, context.DeadlineExceeded)
	}
	if callErr == nil {
		callErr = callCtxErr
	}
	log.Warn("reducer trapped", "database", d.name, "reducer", reducer, "error", callErr)
	d.logs.ModuleLog(abi.LogError, reducer, abi.Identity{}, "trapped: "+callErr.Error())
	if ee, ok := isExit(callErr); ok {
		return fmt.Errorf("%w: reducer %s exited with code %d; nothing it wrote was kept and the instance was discarded", ErrTrap, reducer, ee.ExitCode())
	}
	var te *hostfuncs.TrapError
	if errors.As(callErr, &te) {
		return fmt.Errorf("%w: reducer %s was stopped by the host: %w", ErrTrap, reducer, te)
	}
	return fmt.Errorf("%w: reducer %s trapped; nothing it wrote was kept and the instance was discarded: %w", ErrTrap, reducer, callErr)
}

// validateArgs checks that args is exactly the BSATN of rd's parameters.
func validateArgs(rd *abi.ReducerDef, args []byte) error {
	r := abi.NewReader(args)
	for i, p := range rd.Params {
		r.Skip(p.Type)
		if err := r.Err(); err != nil {
			return fmt.Errorf("%w: argument %d (%s: %s) of reducer %s: %w", ErrInvalidArguments, i+1, p.Name, p.Type, rd.Name, err)
		}
	}
	if n := r.Remaining(); n != 0 {
		return fmt.Errorf("%w: reducer %s takes %d arguments; %d bytes are left after the last one", ErrInvalidArguments, rd.Name, len(rd.Params), n)
	}
	return nil
}

func checkReturn(rd *abi.ReducerDef, ret []byte) error {
	if rd.Return == nil {
		return nil
	}
	if err := abi.ValidateRow([]abi.Type{*rd.Return}, ret); err != nil {
		return fmt.Errorf("%w: reducer %s is declared to return %s but returned %d bytes that are not one: %w", ErrBadReturn, rd.Name, *rd.Return, len(ret), err)
	}
	return nil
}
