package subscription

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

func testTables() []abi.TableDef {
	return []abi.TableDef{{
		Name: "Post",
		Columns: []abi.ColumnDef{
			{Name: "id", Type: abi.TypeU64, PrimaryKey: true, AutoInc: true},
			{Name: "owner", Type: abi.TypeIdentity},
			{Name: "topic", Type: abi.TypeString},
			{Name: "n", Type: abi.TypeU32},
		},
		Indexes: []abi.IndexDef{{Name: abi.IndexName("Post", "owner"), Columns: []string{"owner"}}},
	}, {
		// No primary key: equal rows may coexist.
		Name:    "Log",
		Columns: []abi.ColumnDef{{Name: "a", Type: abi.TypeU32}, {Name: "b", Type: abi.TypeString}},
		Indexes: []abi.IndexDef{{Name: abi.IndexName("Log", "a"), Columns: []string{"a"}}},
	}, {
		Name:    "Secret",
		Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "v", Type: abi.TypeString}},
	}, {
		Name:    "Profile",
		Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "name", Type: abi.TypeString}},
	}}
}

func testModule() *abi.ModuleDef {
	return &abi.ModuleDef{ABIVersion: abi.Version, Tables: testTables(), Grants: []abi.GrantDef{
		{Table: "Post", To: "public"},
		{Table: "Log", To: "public"},
		{Table: "Profile", To: "authenticated"},
	}}
}

type fixture struct {
	t     testing.TB
	ctx   context.Context
	store *store.Store
	db    *store.Database
	e     *Engine
	post  store.TableID
	log   store.TableID
	sec   store.TableID
	pk    store.IndexID // Post primary key
	logA  store.IndexID

	closeOnce sync.Once
	ownStore  bool
	cancelRec func()
	snapMu    sync.Mutex
	snaps     map[uint64]*store.Snapshot
	// commits: offset -> tables the transaction changed.
	commits map[uint64][]string
}

// sendModes are the engine's two ways of calling send: from a goroutine per
// connection, or (a send that never blocks) from the commit's goroutines.
var sendModes = []struct {
	name string
	opts []Option
}{
	{"goroutine", nil},
	{"direct", []Option{WithNonBlockingSend()}},
}

func newFixture(t testing.TB, opts ...Option) *fixture {
	t.Helper()
	return newFixtureStore(t, nil, opts...)
}

func newFixtureStore(t testing.TB, sopts []store.Option, opts ...Option) *fixture {
	t.Helper()
	sopts = append([]store.Option{store.WithLogger(slog.New(slog.DiscardHandler))}, sopts...)
	s, err := store.Open(context.Background(), t.TempDir(), sopts...)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureIn(t, s, "app", opts...)
	f.ownStore = true
	return f
}

// newFixtureIn makes a fixture on a new database of an open store, which is
// much cheaper than opening a store (property tests make one per case).
func newFixtureIn(t testing.TB, s *store.Store, name string, opts ...Option) *fixture {
	t.Helper()
	return newFixtureDef(t, s, name, testTables(), testModule, opts...)
}

// newFixtureDef makes a fixture on a new database with the given tables and
// module description (its grants).
func newFixtureDef(t testing.TB, s *store.Store, name string, tables []abi.TableDef, def func() *abi.ModuleDef, opts ...Option) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := s.CreateDatabase(ctx, name, tables)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, store: s, db: db, snaps: map[uint64]*store.Snapshot{}, commits: map[uint64][]string{}}
	t.Cleanup(f.close)
	// Record every state, so tests can query the database as of any offset.
	record := func(c store.Commit, after *store.Snapshot) {
		f.snapMu.Lock()
		f.snaps[c.Offset] = after
		var names []string
		for _, td := range c.Delta.Tables {
			names = append(names, td.Name)
		}
		f.commits[c.Offset] = names
		f.snapMu.Unlock()
	}
	f.cancelRec = db.OnCommit(record)
	f.snaps[0] = db.Snapshot()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	f.e = New(db, def, opts...)
	// The store calls its callbacks in no set order; with
	// WithNonBlockingSend the engine's calls send (whose checks look up
	// the state at the update's offset) before returning, so the engine
	// records the state first too.
	f.e.committed = record
	f.post, _ = db.TableID("Post")
	f.log, _ = db.TableID("Log")
	f.sec, _ = db.TableID("Secret")
	f.pk, _ = db.IndexID(abi.IndexName("Post", "id"))
	f.logA, _ = db.IndexID(abi.IndexName("Log", "a"))
	return f
}

func ident(i int) abi.Identity {
	if i == 0 {
		return abi.Identity{}
	}
	return abi.IdentityFromWords(uint64(i), 0xabc, 0, 0)
}

func connID(i int) abi.ConnectionID { return abi.ConnectionIDFromWords(uint64(i), 7) }

func postRow(t testing.TB, id uint64, owner abi.Identity, topic string, n uint32) []byte {
	b, err := abi.EncodeRow(nil, testTables()[0].ColumnTypes(), []abi.Value{abi.U64(id), abi.IdentityValue(owner), abi.String(topic), abi.U32(n)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logRow(t testing.TB, a uint32, b string) []byte {
	r, err := abi.EncodeRow(nil, testTables()[1].ColumnTypes(), []abi.Value{abi.U32(a), abi.String(b)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func u64Key(v uint64) []byte { w := abi.Writer{}; w.WriteU64(v); return w.Bytes() }
func u32Key(v uint32) []byte { w := abi.Writer{}; w.WriteU32(v); return w.Bytes() }

// tx runs fn in one committed transaction and returns its offset.
func (f *fixture) tx(fn func(tx *store.Tx)) uint64 {
	f.t.Helper()
	tx, err := f.db.Begin(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	fn(tx)
	c, err := tx.Commit(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Offset
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// client records what the engine delivers and keeps a cache per query set,
// checking each update against it as a real client would.
type client struct {
	t      testing.TB
	id     abi.ConnectionID
	mu     sync.Mutex
	cond   *sync.Cond
	refuse bool // send returns false
	block  chan struct{}
	msgs   []any
	cache  map[uint32]map[string]map[string]int // set -> table -> row JSON -> count
	offset map[uint32]uint64                    // set -> last offset applied
	errs   []string
	// queries per live set (installed in stream order by applied), the
	// queries of a Subscribe in flight, and sets unsubscribed.
	queries        map[uint32][]string
	pendingQueries map[uint32][][]string // FIFO: applied arrive in Subscribe order
	dropped        map[uint32]bool
	offsetApplied  map[uint32]uint64
	// verify, when set, checks a set's cache at an offset (under mu).
	verify func(set uint32, off uint64)
	// nextCaller is the identity a SetIdentity in progress switches to.
	nextCaller *abi.Identity
}

func newClient(t testing.TB, id abi.ConnectionID) *client {
	c := &client{t: t, id: id, cache: map[uint32]map[string]map[string]int{}, offset: map[uint32]uint64{},
		queries: map[uint32][]string{}, pendingQueries: map[uint32][][]string{}, dropped: map[uint32]bool{}, offsetApplied: map[uint32]uint64{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *client) send(tu *TransactionUpdate) bool {
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse {
		return false
	}
	c.msgs = append(c.msgs, tu)
	if len(tu.QuerySets) == 0 {
		c.errs = append(c.errs, fmt.Sprintf("empty TransactionUpdate at offset %d", tu.Offset))
	}
	for _, qs := range tu.QuerySets {
		cache := c.cache[qs.QuerySetID]
		if cache == nil && c.dropped[qs.QuerySetID] {
			continue // queued before the Unsubscribe took effect
		}
		if cache == nil {
			c.errs = append(c.errs, fmt.Sprintf("update for query set %d before its SubscribeApplied", qs.QuerySetID))
			continue
		}
		if tu.Offset < c.offset[qs.QuerySetID] || (tu.Offset == c.offset[qs.QuerySetID] && !tu.Recomputed) {
			c.errs = append(c.errs, fmt.Sprintf("set %d: offset %d after %d", qs.QuerySetID, tu.Offset, c.offset[qs.QuerySetID]))
		}
		c.offset[qs.QuerySetID] = tu.Offset
		for _, tb := range qs.Tables {
			rows := cache[tb.Table]
			if rows == nil {
				rows = map[string]int{}
				cache[tb.Table] = rows
			}
			for _, d := range tb.Deletes {
				if rows[string(d)] == 0 {
					c.errs = append(c.errs, fmt.Sprintf("set %d offset %d: delete of a row the client does not have: %s", qs.QuerySetID, tu.Offset, d))
					continue
				}
				rows[string(d)]--
				if rows[string(d)] == 0 {
					delete(rows, string(d))
				}
			}
			for _, r := range tb.Inserts {
				rows[string(r)]++
			}
		}
		c.verifyLocked(qs.QuerySetID, tu.Offset)
	}
	c.cond.Broadcast()
	return true
}

// applied installs a SubscribeApplied; with the hook it is called in stream
// order.
func (c *client) applied(a *SubscribeApplied) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, a)
	cache := map[string]map[string]int{}
	for _, tb := range a.Tables {
		rows := map[string]int{}
		for _, r := range tb.Rows {
			rows[string(r)]++
		}
		cache[tb.Table] = rows
	}
	c.cache[a.QuerySetID] = cache
	c.offset[a.QuerySetID] = a.Offset
	c.offsetApplied[a.QuerySetID] = a.Offset
	if q := c.pendingQueries[a.QuerySetID]; len(q) > 0 {
		c.queries[a.QuerySetID] = q[0]
		c.pendingQueries[a.QuerySetID] = q[1:]
	}
	delete(c.dropped, a.QuerySetID)
	c.verifyLocked(a.QuerySetID, a.Offset)
	c.cond.Broadcast()
}

func (c *client) subscribe(e *Engine, set uint32, queries ...string) (*SubscribeApplied, error) {
	c.mu.Lock()
	c.pendingQueries[set] = append(c.pendingQueries[set], queries)
	c.mu.Unlock()
	ctx := WithAppliedHook(context.Background(), c.applied)
	a, err := e.Subscribe(ctx, c.id, set, queries)
	if err != nil {
		c.mu.Lock()
		q := c.pendingQueries[set]
		c.pendingQueries[set] = q[:len(q)-1]
		c.mu.Unlock()
	}
	return a, err
}

// dropSet forgets an unsubscribed set.
func (c *client) dropSet(set uint32) {
	c.mu.Lock()
	delete(c.cache, set)
	delete(c.queries, set)
	c.dropped[set] = true
	c.mu.Unlock()
}

func (c *client) verifyLocked(set uint32, off uint64) {
	if c.verify != nil && c.cache[set] != nil {
		c.verify(set, off)
	}
}

// waitOffset waits until the set has applied offset >= off.
func (c *client) waitOffset(set uint32, off uint64) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.offset[set] < off {
		if time.Now().After(deadline) {
			c.t.Fatalf("client %s set %d: offset %d, waited for %d", c.id, set, c.offset[set], off)
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
		c.mu.Lock()
	}
}

func (c *client) check() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		c.t.Fatalf("client %s: %s", c.id, strings.Join(c.errs, "; "))
	}
}

func (c *client) updates() []*TransactionUpdate {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*TransactionUpdate
	for _, m := range c.msgs {
		if tu, ok := m.(*TransactionUpdate); ok {
			out = append(out, tu)
		}
	}
	return out
}

// rows returns a set's cached rows of a table, sorted.
func (c *client) rows(set uint32, table string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for r, n := range c.cache[set][table] {
		for i := 0; i < n; i++ {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// fresh evaluates queries (as a set: each row once) against the state at
// offset, by brute force, and returns table -> sorted row JSON.
func (f *fixture) fresh(off uint64, caller abi.Identity, queries ...string) map[string][]string {
	f.t.Helper()
	snap := f.snapshot(off)
	tabs := f.db.Tables()
	sch := schema{}
	for i := range tabs {
		sch[tabs[i].Name] = &tabs[i]
	}
	byTable := map[string][]*query.Plan{}
	var order []string
	for _, q := range queries {
		p := must[*query.Plan](f.t)(query.Compile(must[*query.Query](f.t)(query.Parse(q)), sch))
		if byTable[p.Table.Name] == nil {
			order = append(order, p.Table.Name)
		}
		byTable[p.Table.Name] = append(byTable[p.Table.Name], p)
	}
	out := map[string][]string{}
	for _, table := range order {
		tid := must[store.TableID](f.t)(f.db.TableID(table))
		def := must[*abi.TableDef](f.t)(f.db.Table(tid))
		it := must[*store.RowIter](f.t)(snap.Scan(tid))
		rows := []string{}
		for raw, ok := it.Next(); ok; raw, ok = it.Next() {
			vals := must[[]abi.Value](f.t)(abi.DecodeRow(def.ColumnTypes(), raw))
			for _, p := range byTable[table] {
				if p.Match(vals, &query.Env{Caller: caller}) {
					rows = append(rows, string(abi.AppendRowJSON(nil, def, vals)))
					break
				}
			}
		}
		sort.Strings(rows)
		out[table] = rows
	}
	return out
}

func sortedRows(rs []json.RawMessage) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r))
	}
	sort.Strings(out)
	return out
}

// snapshot returns the state as of offset off, waiting for the commit's
// notification if needed.
func (f *fixture) snapshot(off uint64) *store.Snapshot {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.snapMu.Lock()
		snap := f.snaps[off]
		f.snapMu.Unlock()
		if snap != nil {
			return snap
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no snapshot at offset %d", off)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// close stops the engine and the store (also done at the test's end).
func (f *fixture) close() {
	f.closeOnce.Do(func() {
		if f.e != nil {
			f.e.Close()
		}
		if f.cancelRec != nil {
			f.cancelRec()
		}
		if f.ownStore {
			f.store.Close()
		}
	})
}
