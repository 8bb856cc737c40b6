package subscription

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

// Sentinel errors; every error the engine returns that a caller may want to
// tell apart wraps one of these (test with errors.Is). Query syntax and
// schema errors wrap the query package's sentinels.
var (
	// ErrPrivateTable: the connection may not read the table.
	ErrPrivateTable = errors.New("table is private")
	// ErrUnsupported: the query is valid but cannot be used this way (a
	// projection or COUNT as a subscription, a subquery in a subscription).
	ErrUnsupported = errors.New("query not supported here")
	// ErrLimit: a configured limit was reached; the message names it.
	ErrLimit = errors.New("subscription limit reached")
	// ErrUnknownConnection: the connection is not connected (or was
	// disconnected while the call ran).
	ErrUnknownConnection = errors.New("unknown connection")
	// ErrNoSuchQuerySet: Unsubscribe of a query set that does not exist.
	ErrNoSuchQuerySet = errors.New("no such query set")
	// ErrClosed: the engine is closed.
	ErrClosed = errors.New("subscription engine closed")
)

// TransactionUpdate is what one committed transaction changed in the query
// sets of one connection. It is never empty.
type TransactionUpdate struct {
	Offset    uint64           `json:"tx"`
	QuerySets []QuerySetUpdate `json:"query_sets"`
	// Recomputed marks an update that is not a transaction but a change of
	// the connection's view (its identity changed): the rows that left and
	// entered the view as of Offset, which may equal the last update's.
	Recomputed bool `json:"recomputed,omitempty"`
}

// QuerySetUpdate is one query set's share of a transaction: per table, the
// rows that entered and left the set's view. A row matching several queries
// of the set appears once.
type QuerySetUpdate struct {
	QuerySetID uint32        `json:"query_set_id"`
	Tables     []TableUpdate `json:"tables"`
}

// TableUpdate lists rows as JSON objects keyed by column name. The messages
// are shared between subscribers and must not be modified.
type TableUpdate struct {
	Table   string            `json:"table"`
	Inserts []json.RawMessage `json:"inserts"`
	Deletes []json.RawMessage `json:"deletes"`
}

// SubscribeApplied holds a query set's rows as of Offset; every later
// TransactionUpdate for the set has a greater offset.
type SubscribeApplied struct {
	QuerySetID uint32      `json:"query_set_id"`
	Offset     uint64      `json:"tx"`
	Tables     []TableRows `json:"tables"`
}

// TableRows are the rows of one table, as JSON objects keyed by column name
// (or by the selected columns; COUNT(*) gives one row {"count": n}).
type TableRows struct {
	Table string            `json:"table"`
	Rows  []json.RawMessage `json:"rows"`
}

// QueryResult is the answer to a one-off query.
type QueryResult struct {
	Tables []TableRows `json:"tables"`
}

// The JSON tags give the wire names of DESIGN.md ("Server"); Offset is
// "tx". Row lists are never null.

// Stats counts what the engine holds, for metrics.
type Stats struct {
	Connections int
	QuerySets   int
	// Subscriptions counts queries across all query sets, as subscribed.
	Subscriptions int
	// UniqueQueries counts distinct (query, caller) pairs evaluated.
	UniqueQueries int
	// PendingSubscribes counts Subscribe calls computing initial rows.
	PendingSubscribes int
	// Offset is the last transaction processed.
	Offset uint64
}

// Defaults for the limits.
const (
	DefaultMaxQueriesPerSet        = 64
	DefaultMaxSubscriptionsPerConn = 1024
	DefaultMaxInitialRows          = 100_000
	DefaultMaxQueuedUpdates        = 4096
)

type config struct {
	maxQueriesPerSet int
	maxSubsPerConn   int
	maxInitialRows   int
	maxQueued        int
	bruteForce       bool
	log              *slog.Logger
	onOverflow       func(abi.ConnectionID)
	onRevoke         func(Revoked)
	directSend       bool
}

// Option configures New.
type Option func(*config)

// WithMaxQueriesPerSet bounds the queries in one Subscribe call.
func WithMaxQueriesPerSet(n int) Option { return func(c *config) { c.maxQueriesPerSet = n } }

// WithMaxSubscriptionsPerConn bounds the queries one connection holds across
// all its query sets.
func WithMaxSubscriptionsPerConn(n int) Option { return func(c *config) { c.maxSubsPerConn = n } }

// WithMaxInitialRows bounds the rows a Subscribe or a one-off query returns.
func WithMaxInitialRows(n int) Option { return func(c *config) { c.maxInitialRows = n } }

// WithMaxQueuedUpdates bounds the updates waiting in one connection's outbox
// (in front of its send function). Past it the connection is treated like
// one whose send returned false: nothing more is delivered to it.
func WithMaxQueuedUpdates(n int) Option { return func(c *config) { c.maxQueued = n } }

// WithNonBlockingSend declares that the connections' send functions never
// block (they hand the update on or drop the connection themselves). The
// engine then runs no goroutine per connection: each commit's updates are
// handed to send right after the commit is matched, outside the lock, from
// the commit's goroutine and helpers spreading the connections over the
// cores. That saves a goroutine wake-up per update, a large share of a
// fan-out to many connections. Without it, send may block, and a goroutine
// per connection calls it.
func WithNonBlockingSend() Option { return func(c *config) { c.directSend = true } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithOverflowHandler is called (on its own goroutine) when a connection's
// outbox overflows, so the server can disconnect it.
func WithOverflowHandler(f func(abi.ConnectionID)) Option {
	return func(c *config) { c.onOverflow = f }
}

// WithRevokeHandler is called, from the connection's own delivery
// goroutine and in stream order (after every update sent before the set was
// dropped, before any later one), for each query set the engine drops
// because its connection may no longer read one of its tables or its view
// could not be recomputed. The server sends the client a SubscriptionError;
// the client drops the set's rows.
func WithRevokeHandler(f func(Revoked)) Option { return func(c *config) { c.onRevoke = f } }

// WithEqualityIndex turns the equality index on (the default) or off. Off,
// every changed row is matched against every query on its table: only for
// measuring and testing the index.
func WithEqualityIndex(on bool) Option { return func(c *config) { c.bruteForce = !on } }

// Engine is the subscription engine of one database.
type Engine struct {
	db     *store.Database
	def    func() *abi.ModuleDef
	cfg    config
	cancel func()

	mu      sync.Mutex
	closed  bool
	snap    *store.Snapshot // the state after the last processed commit
	conns   map[abi.ConnectionID]*conn
	queries map[string]*uquery
	tables  map[string]*tableSubs
	pending map[*pending]struct{}
	// deps lists, per table, the live queries whose grant rules read it
	// (through a subquery): a change to it can move rows in or out of
	// their view.
	deps map[string]map[*uquery]struct{}
	// stateCache holds the rules' caller-free subquery results for the
	// state e.snap; txSrc and txCache are the states before (0) and after
	// (1) the commit being fanned out.
	stateCache *query.Cache
	txSrc      [2]query.RowSource
	txCache    [2]*query.Cache
	// gmu guards gs, the compiled grants.
	gmu sync.Mutex
	gs  *grantState
	// Scratch for fan-out, used under mu.
	rowStamp uint64
	txStamp  uint64
	touched  []*qset
	tconns   []*conn
	// flushBoxes are the outboxes a commit queued to (direct mode), to
	// flush once the lock is released.
	flushBoxes []*outbox
	condOn     []*uquery
	envUsed    []*uquery
	// folds counts commits folded into initial rows (tests check the path
	// is exercised).
	folds atomic.Uint64
	// committed, when set (tests), sees each commit before it is matched
	// and delivered: a test's send may then look up the state it reflects.
	committed func(store.Commit, *store.Snapshot)
	// afterInitial, when set (tests), runs after Subscribe or SetIdentity
	// has read its rows and before it folds and goes live.
	afterInitial func()
}

type conn struct {
	id     abi.ConnectionID
	caller abi.Identity
	owner  bool
	sets   map[uint32]*qset
	nsubs  int
	box    *outbox
	gone   bool
	// subMu serialises Subscribe, Unsubscribe and SetIdentity of one
	// connection, which a client issues one after another anyway.
	subMu sync.Mutex

	cur   *TransactionUpdate // being built, under Engine.mu
	curTx uint64
	// curTB is cur's room for one set's one table (nil once used).
	curTB *[1]TableUpdate
}

type qset struct {
	conn    *conn
	id      uint32
	n       int // queries as subscribed, for limits
	queries []*uquery
	stamp   uint64 // last row occurrence it received, to dedupe within the set
	cur     *QuerySetUpdate
	curv    QuerySetUpdate // what cur points to while matching a commit
	// tbuf holds curv's first table; a second table moves the list out.
	tbuf  [1]TableUpdate
	curTx uint64
	// flipTables are the tables whose view this set recomputes in
	// transaction flipTx (a table its grant rules read changed their
	// answer); the row-by-row matching skips them.
	flipTx     uint64
	flipTables []string
}

// uquery is one distinct query with one caller and one view of its table,
// shared by all its subscribers.
type uquery struct {
	key   string
	table string
	cq    *compiled
	subs  map[*qset]struct{}
	// eqs are the equality keys it is indexed under (none: scanned). A row
	// it matches satisfies at least one of them, or else (cond) one of its
	// row-free rules holds for the whole state.
	eqs  []eqKey
	cond bool
	// envs evaluate it against the states before (0) and after (1) the
	// transaction envTx.
	envs  [2]query.Env
	envTx uint64
	// flipSeen is the last transaction whose rule changes were checked
	// for it.
	flipSeen uint64
}

type eqKey struct {
	col int
	val string
}

// tableSubs indexes the live queries on one table.
type tableSubs struct {
	scan map[*uquery]struct{}
	// cond holds indexed queries with row-free rules (`:caller IN (...)`):
	// per transaction, those whose rule holds are matched against every row.
	cond map[*uquery]struct{}
	eq   map[eqKey]map[*uquery]struct{}
	cols map[int]int // indexed column -> number of queries indexed on it
	list []int       // keys of cols, sorted
}

func (t *tableSubs) empty() bool { return len(t.scan) == 0 && len(t.eq) == 0 && len(t.cond) == 0 }

// New starts an engine on db. def returns the module's current description
// (its grants decide what clients may read).
func New(db *store.Database, def func() *abi.ModuleDef, opts ...Option) *Engine {
	cfg := config{
		maxQueriesPerSet: DefaultMaxQueriesPerSet,
		maxSubsPerConn:   DefaultMaxSubscriptionsPerConn,
		maxInitialRows:   DefaultMaxInitialRows,
		maxQueued:        DefaultMaxQueuedUpdates,
		log:              slog.Default(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Engine{
		db:      db,
		def:     def,
		cfg:     cfg,
		conns:   map[abi.ConnectionID]*conn{},
		queries: map[string]*uquery{},
		tables:  map[string]*tableSubs{},
		pending: map[*pending]struct{}{},
		deps:    map[string]map[*uquery]struct{}{},
	}
	// Register first, then take the snapshot, both under mu: a commit that
	// the snapshot already includes is skipped by offset in onCommit, and
	// onCommit cannot run before the snapshot is set.
	e.mu.Lock()
	e.cancel = db.OnCommit(e.onCommit)
	e.snap = db.Snapshot()
	e.mu.Unlock()
	return e
}

// Connect registers a connection. send is called from the connection's own
// goroutine, in commit order, never under the engine's lock; it returns
// false when the client cannot keep up, after which the engine delivers
// nothing more to that connection (the server disconnects it). Connecting an
// id that is already connected replaces it.
func (e *Engine) Connect(id abi.ConnectionID, caller abi.Identity, owner bool, send func(*TransactionUpdate) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if old := e.conns[id]; old != nil {
		e.dropConnLocked(old)
	}
	c := &conn{id: id, caller: caller, owner: owner, sets: map[uint32]*qset{}}
	c.box = newOutbox(send, e.cfg.maxQueued, e.cfg.directSend, func(overflow bool) {
		if overflow {
			e.cfg.log.Warn("subscription: client outbox full, no more updates are delivered to it",
				"connection", id.String(), "limit", e.cfg.maxQueued)
			if e.cfg.onOverflow != nil {
				e.cfg.onOverflow(id)
			}
		} else {
			e.cfg.log.Info("subscription: client queue full, no more updates are delivered to it", "connection", id.String())
		}
	})
	e.conns[id] = c
	if !e.cfg.directSend {
		go c.box.run()
	}
}

// Disconnect drops the connection and all its query sets.
func (e *Engine) Disconnect(id abi.ConnectionID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.conns[id]; c != nil {
		e.dropConnLocked(c)
	}
}

func (e *Engine) dropConnLocked(c *conn) {
	c.gone = true
	for _, s := range c.sets {
		e.removeSetLocked(s)
	}
	delete(e.conns, c.id)
	c.box.close()
}

// Unsubscribe removes a query set; no update for it is sent afterwards.
func (e *Engine) Unsubscribe(id abi.ConnectionID, querySetID uint32) error {
	c, err := e.conn(id)
	if err != nil {
		return err
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.gone {
		return fmt.Errorf("%w: the connection closed", ErrUnknownConnection)
	}
	s := c.sets[querySetID]
	if s == nil {
		return fmt.Errorf("%w: query set %d is not subscribed on this connection", ErrNoSuchQuerySet, querySetID)
	}
	e.removeSetLocked(s)
	return nil
}

// Stats counts connections, subscriptions and distinct queries.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{Connections: len(e.conns), UniqueQueries: len(e.queries), PendingSubscribes: len(e.pending), Offset: e.snap.Offset()}
	for _, c := range e.conns {
		st.QuerySets += len(c.sets)
		st.Subscriptions += c.nsubs
	}
	return st
}

// Close stops the engine: no more updates are delivered and every call
// fails with ErrClosed.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	e.cancel()
	for _, c := range e.conns {
		e.dropConnLocked(c)
	}
	for p := range e.pending {
		p.buf = nil
	}
}

func (e *Engine) conn(id abi.ConnectionID) (*conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	c := e.conns[id]
	if c == nil {
		return nil, fmt.Errorf("%w: %s is not connected; connect before subscribing or querying", ErrUnknownConnection, id)
	}
	return c, nil
}

// installSetLocked makes a query set live, replacing one with the same id.
func (e *Engine) installSetLocked(c *conn, id uint32, cqs []*compiled, n int) *qset {
	if old := c.sets[id]; old != nil {
		e.removeSetLocked(old)
	}
	s := &qset{conn: c, id: id, n: n}
	for _, cq := range cqs {
		uq := e.queries[cq.key]
		if uq == nil {
			uq = &uquery{key: cq.key, table: cq.plan.Table.Name, cq: cq, subs: map[*qset]struct{}{}}
			e.queries[cq.key] = uq
			e.indexLocked(uq)
		}
		if _, dup := uq.subs[s]; dup {
			continue
		}
		uq.subs[s] = struct{}{}
		s.queries = append(s.queries, uq)
	}
	c.sets[id] = s
	c.nsubs += n
	return s
}

func (e *Engine) removeSetLocked(s *qset) {
	for _, uq := range s.queries {
		delete(uq.subs, s)
		if len(uq.subs) == 0 {
			e.unindexLocked(uq)
			delete(e.queries, uq.key)
		}
	}
	c := s.conn
	if c.sets[s.id] == s {
		delete(c.sets, s.id)
		c.nsubs -= s.n
	}
}

func (e *Engine) indexLocked(uq *uquery) {
	ts := e.tables[uq.table]
	if ts == nil {
		ts = &tableSubs{scan: map[*uquery]struct{}{}, cond: map[*uquery]struct{}{}, eq: map[eqKey]map[*uquery]struct{}{}, cols: map[int]int{}}
		e.tables[uq.table] = ts
	}
	for _, t := range uq.cq.view.reads {
		m := e.deps[t]
		if m == nil {
			m = map[*uquery]struct{}{}
			e.deps[t] = m
		}
		m[uq] = struct{}{}
	}
	if !e.cfg.bruteForce {
		uq.eqs, uq.cond = indexKeys(uq.cq)
	}
	if len(uq.eqs) == 0 {
		ts.scan[uq] = struct{}{}
		return
	}
	if uq.cond {
		ts.cond[uq] = struct{}{}
	}
	for _, k := range uq.eqs {
		m := ts.eq[k]
		if m == nil {
			m = map[*uquery]struct{}{}
			ts.eq[k] = m
		}
		m[uq] = struct{}{}
		if ts.cols[k.col]++; ts.cols[k.col] == 1 {
			ts.rebuildList()
		}
	}
}

func (e *Engine) unindexLocked(uq *uquery) {
	for _, t := range uq.cq.view.reads {
		if m := e.deps[t]; m != nil {
			delete(m, uq)
			if len(m) == 0 {
				delete(e.deps, t)
			}
		}
	}
	ts := e.tables[uq.table]
	if ts == nil {
		return
	}
	if len(uq.eqs) == 0 {
		delete(ts.scan, uq)
	}
	delete(ts.cond, uq)
	for _, k := range uq.eqs {
		if m := ts.eq[k]; m != nil {
			delete(m, uq)
			if len(m) == 0 {
				delete(ts.eq, k)
			}
		}
		if ts.cols[k.col]--; ts.cols[k.col] <= 0 {
			delete(ts.cols, k.col)
			ts.rebuildList()
		}
	}
	if ts.empty() {
		delete(e.tables, uq.table)
	}
}

func (t *tableSubs) rebuildList() {
	t.list = t.list[:0]
	for c := range t.cols {
		t.list = append(t.list, c)
	}
	sort.Ints(t.list)
}

// indexKeys picks the equalities a query is indexed by, such that every row
// it matches satisfies at least one: the query's own first top-level
// `col = literal` or `col = :caller` on a column whose values key exactly;
// else, when the reader sees the table through rules, one such equality per
// rule (`owner = :caller`; `sender = :caller or recipient = :caller` is two
// rules, one per column), where a rule that does not read the row
// (`:caller IN (...)`) needs no key but makes the query conditional (cond):
// in a transaction where that rule holds, every row is matched. No keys:
// the query is matched against every changed row of its table.
func indexKeys(cq *compiled) (keys []eqKey, cond bool) {
	if k, ok := equalityKey(cq.plan.Equalities(), cq.caller); ok {
		return []eqKey{k}, false
	}
	if cq.view.all || len(cq.view.rules) == 0 {
		return nil, false
	}
	for _, r := range cq.view.rules {
		if r.RowFree() {
			cond = true
			continue
		}
		k, ok := equalityKey(r.Equalities(), cq.caller)
		if !ok {
			return nil, false
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, false // only row-free rules: scan
	}
	return keys, cond
}

func equalityKey(eqs []query.Equality, caller abi.Identity) (eqKey, bool) {
	for _, eq := range eqs {
		v := eq.Value
		if eq.Caller {
			v = abi.IdentityValue(caller)
		}
		if k, ok := valueKey(v); ok {
			return eqKey{col: eq.Column, val: k}, true
		}
	}
	return eqKey{}, false
}

// valueKey is an exact key for scalar values: two values compare equal
// (abi.Compare == 0) if and only if their keys are equal. Options and
// arrays are left to the scan list.
func valueKey(v abi.Value) (string, bool) {
	switch v.Kind {
	case abi.KindOption, abi.KindVec, abi.KindInvalid:
		return "", false
	case abi.KindString, abi.KindBytes, abi.KindIdentity:
		return string(rune(v.Kind)) + v.Str, true
	}
	var b [9]byte
	b[0] = byte(v.Kind)
	for i := 0; i < 8; i++ {
		b[1+i] = byte(v.Bits >> (8 * i))
	}
	return string(b[:]), true
}

// match evaluates the query and its view on a decoded row of the state
// before (side 0: deletes) or after (side 1: inserts) transaction tx. The
// Envs are renewed per transaction, so the rules' subqueries are computed
// once per state (and shared between queries through the state's Cache).
func (e *Engine) match(uq *uquery, row []abi.Value, tx uint64, side int) bool {
	return uq.cq.match(row, e.env(uq, tx, side))
}

func (e *Engine) env(uq *uquery, tx uint64, side int) *query.Env {
	if uq.envTx != tx {
		for i := range uq.envs {
			uq.envs[i] = query.Env{Caller: uq.cq.caller, Source: e.txSrc[i], Cache: e.txCache[i]}
		}
		uq.envTx = tx
		e.envUsed = append(e.envUsed, uq)
	}
	return &uq.envs[side]
}

// releaseEnvsLocked drops the transaction's states from the queries that
// used them, so that an idle query does not keep an old snapshot alive.
func (e *Engine) releaseEnvsLocked() {
	for _, uq := range e.envUsed {
		uq.envs = [2]query.Env{}
		uq.envTx = 0
	}
	clear(e.envUsed)
	e.envUsed = e.envUsed[:0]
}

func sortConns(cs []*conn) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].id.String() < cs[j].id.String() })
}

// idle reports whether a connection's outbox is drained (for tests).
func (e *Engine) idle(id abi.ConnectionID) bool {
	e.mu.Lock()
	c := e.conns[id]
	e.mu.Unlock()
	return c == nil || c.box.idle()
}

// snapshotLocked returns the state after the last processed commit. When
// the store's latest durable snapshot is at the same offset it holds the
// same rows, and possibly tables added since (a republish does not commit a
// transaction), so it is preferred.
func (e *Engine) snapshotLocked() *store.Snapshot {
	if s := e.db.Snapshot(); s.Offset() == e.snap.Offset() {
		e.snap = s
	}
	return e.snap
}
