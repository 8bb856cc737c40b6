package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

type appliedHookKey struct{}

// WithAppliedHook returns a context that makes Subscribe hand its
// SubscribeApplied to fn from the connection's outbox — after every update
// queued before it and strictly before any update of the new query set.
// Subscribe still returns the same value; a server using the hook sends the
// message from fn and ignores the return value. Without a hook the
// connection's outbox is paused from the moment the set goes live until
// Subscribe returns, so the server must queue the result before anything
// else it sends to that client.
func WithAppliedHook(ctx context.Context, fn func(*SubscribeApplied)) context.Context {
	return context.WithValue(ctx, appliedHookKey{}, fn)
}

// pending is a Subscribe computing its initial rows: the commits processed
// meanwhile are collected in buf (under Engine.mu) and folded in.
type pending struct {
	buf []pendingCommit
}

// pendingCommit is a commit and the state it left.
type pendingCommit struct {
	store.Commit
	after *store.Snapshot
}

// Subscribe starts (or replaces: same querySetID) a query set and returns its
// rows as of SubscribeApplied.Offset; every later transaction that changes
// what the set sees is sent to the connection.
func (e *Engine) Subscribe(ctx context.Context, id abi.ConnectionID, querySetID uint32, queries []string) (*SubscribeApplied, error) {
	c, err := e.conn(id)
	if err != nil {
		return nil, err
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()

	if len(queries) == 0 {
		return nil, fmt.Errorf("%w: a subscription needs at least one query", ErrUnsupported)
	}
	if len(queries) > e.cfg.maxQueriesPerSet {
		return nil, fmt.Errorf("%w: %d queries in one subscription, more than the limit of %d queries per set (WithMaxQueriesPerSet); split them into several query sets",
			ErrLimit, len(queries), e.cfg.maxQueriesPerSet)
	}
	e.mu.Lock()
	caller, owner, held := c.caller, c.owner, c.nsubs
	if old := c.sets[querySetID]; old != nil {
		held -= old.n
	}
	e.mu.Unlock()
	if held+len(queries) > e.cfg.maxSubsPerConn {
		return nil, fmt.Errorf("%w: this connection would hold %d subscribed queries, more than the limit of %d per connection (WithMaxSubscriptionsPerConn); unsubscribe some first",
			ErrLimit, held+len(queries), e.cfg.maxSubsPerConn)
	}
	sch, g := e.schema(), e.grants()
	cqs := make([]*compiled, 0, len(queries))
	var privileged []string
	for i, src := range queries {
		cq, err := e.compileSubscription(sch, g, src, caller, owner)
		if err != nil {
			return nil, fmt.Errorf("subscription query %d (%q): %w", i+1, src, err)
		}
		cqs = append(cqs, cq)
		if owner {
			if v, err := viewOf(g, false, caller, cq.plan.Table.Name); err != nil || !v.all {
				privileged = append(privileged, cq.plan.Table.Name)
			}
		}
	}
	if len(privileged) > 0 {
		e.cfg.log.Info("subscription: the database owner subscribed to rows clients may not read (owners read every row)",
			"database", e.db.Name(), "connection", id.String(), "tables", privileged)
	}

	p := &pending{}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if c.gone {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: the connection closed", ErrUnknownConnection)
	}
	snap := e.snapshotLocked()
	e.pending[p] = struct{}{}
	e.mu.Unlock()
	active := false
	defer func() {
		if !active {
			e.mu.Lock()
			delete(e.pending, p)
			e.mu.Unlock()
		}
	}()

	groups := groupByTable(cqs)
	bags, err := e.evalGroups(ctx, snap, groups, caller)
	if err != nil {
		return nil, err
	}
	if e.afterInitial != nil {
		e.afterInitial()
	}
	var offset uint64
	hook, _ := ctx.Value(appliedHookKey{}).(func(*SubscribeApplied))
	applied := &SubscribeApplied{QuerySetID: querySetID}
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		if c.gone {
			e.mu.Unlock()
			return nil, fmt.Errorf("%w: the connection closed", ErrUnknownConnection)
		}
		if len(p.buf) == 0 {
			// Go live at the state the rows reflect.
			offset = e.snap.Offset()
			delete(e.pending, p)
			active = true
			e.installSetLocked(c, querySetID, cqs, len(queries))
			c.box.pause()
			if hook != nil {
				c.box.push(item{applied: applied, hook: hook})
			}
			e.mu.Unlock()
			break
		}
		buf := p.buf
		p.buf = nil
		e.mu.Unlock()
		e.folds.Add(uint64(len(buf)))
		if err := e.fold(groups, bags, buf, caller); err != nil {
			return nil, err
		}
	}
	defer c.box.resume()
	applied.Offset = offset
	for _, g := range groups {
		applied.Tables = append(applied.Tables, TableRows{Table: g.table, Rows: bags[g.table].json()})
	}
	return applied, nil
}

// group is the queries of one set on one table.
type group struct {
	table string
	cqs   []*compiled
}

func groupByTable(cqs []*compiled) []*group {
	var gs []*group
	idx := map[string]*group{}
	for _, cq := range cqs {
		g := idx[cq.plan.Table.Name]
		if g == nil {
			g = &group{table: cq.plan.Table.Name}
			idx[g.table] = g
			gs = append(gs, g)
		}
		g.cqs = append(g.cqs, cq)
	}
	return gs
}

func (g *group) match(row []abi.Value, env *query.Env) bool {
	for _, cq := range g.cqs {
		if cq.match(row, env) {
			return true
		}
	}
	return false
}

// bag is a multiset of rows in a stable order (a table without a primary
// key may hold equal rows).
type bag struct {
	rows []bagRow
	live int
	pos  map[string][]int // built on the first removal
}

type bagRow struct {
	raw  []byte
	js   json.RawMessage
	dead bool
}

func (b *bag) add(raw []byte, js json.RawMessage) {
	b.rows = append(b.rows, bagRow{raw: raw, js: js})
	b.live++
	if b.pos != nil {
		b.pos[string(raw)] = append(b.pos[string(raw)], len(b.rows)-1)
	}
}

func (b *bag) remove(raw []byte) {
	if b.pos == nil {
		b.pos = make(map[string][]int, len(b.rows))
		for i, r := range b.rows {
			if !r.dead {
				b.pos[string(r.raw)] = append(b.pos[string(r.raw)], i)
			}
		}
	}
	ps := b.pos[string(raw)]
	if len(ps) == 0 {
		return
	}
	i := ps[len(ps)-1]
	b.pos[string(raw)] = ps[:len(ps)-1]
	b.rows[i] = bagRow{dead: true}
	b.live--
}

func (b *bag) json() []json.RawMessage {
	out := make([]json.RawMessage, 0, b.live)
	for _, r := range b.rows {
		if !r.dead {
			out = append(out, r.js)
		}
	}
	return out
}

// evalGroups computes the rows each group sees in snap. It reads a snapshot,
// holds no lock, and so stalls neither the writer nor other clients.
func (e *Engine) evalGroups(ctx context.Context, snap *store.Snapshot, groups []*group, caller abi.Identity) (map[string]*bag, error) {
	bags := make(map[string]*bag, len(groups))
	total := 0
	env := &query.Env{Caller: caller, Source: grantSource{db: e.db, snap: snap}}
	for _, g := range groups {
		b := &bag{}
		bags[g.table] = b
		tid, err := e.db.TableID(g.table)
		if err != nil {
			return nil, fmt.Errorf("table %q: %w", g.table, err)
		}
		def, err := e.db.Table(tid)
		if err != nil {
			return nil, fmt.Errorf("table %q: %w", g.table, err)
		}
		types := def.ColumnTypes()
		it, err := e.scanFor(snap, tid, def, g, caller)
		if errors.Is(err, store.ErrNoSuchTable) {
			continue // added after snap: empty as of snap
		}
		if err != nil {
			return nil, fmt.Errorf("reading table %q: %w", g.table, err)
		}
		n := 0
		for raw, ok := it.Next(); ok; raw, ok = it.Next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					it.Close()
					return nil, err
				}
			}
			vals, err := abi.DecodeRow(types, raw)
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("decoding a row of %q: %w", g.table, err)
			}
			if !g.match(vals, env) {
				continue
			}
			if total++; total > e.cfg.maxInitialRows {
				it.Close()
				return nil, e.tooManyRows()
			}
			b.add(raw, abi.AppendRowJSON(nil, def, vals))
		}
		it.Close()
	}
	return bags, nil
}

func (e *Engine) tooManyRows() error {
	return fmt.Errorf("%w: the result has more than %d rows, the limit on initial and one-off rows (WithMaxInitialRows); narrow the query with a WHERE clause",
		ErrLimit, e.cfg.maxInitialRows)
}

// rowIter reads rows; *store.RowIter and unionIter are ones.
type rowIter interface {
	Next() ([]byte, bool)
	Close()
}

// scanFor picks how to read a group's candidate rows: a point scan of an
// index when the group is one query with an equality on the index's first
// column (its own, or its one grant rule's); the union of point scans when
// each of its grant rules has one (`sender = :caller or recipient =
// :caller`) and the table has a primary key (so a row found twice is one
// row); else the whole table. Every row is still matched against the
// queries, so the choice affects only speed.
func (e *Engine) scanFor(snap *store.Snapshot, tid store.TableID, def *abi.TableDef, g *group, caller abi.Identity) (rowIter, error) {
	if len(g.cqs) != 1 {
		return snap.Scan(tid)
	}
	cq := g.cqs[0]
	eqs := cq.plan.Equalities()
	if v := cq.view; !v.all && len(v.rules) == 1 {
		// Every visible row satisfies the one rule's equalities too.
		eqs = append(eqs[:len(eqs):len(eqs)], v.rules[0].Equalities()...)
	}
	for _, eq := range eqs {
		if it, ok, err := e.pointScan(snap, def, eq, caller); ok {
			return it, err
		}
	}
	if v := cq.view; !v.all && len(v.rules) > 1 && hasPrimaryKey(def) {
		u := &unionIter{seen: map[string]struct{}{}}
	rules:
		for _, r := range v.rules {
			for _, eq := range r.Equalities() {
				it, ok, err := e.pointScan(snap, def, eq, caller)
				if err != nil {
					u.Close()
					return nil, err
				}
				if ok {
					u.its = append(u.its, it)
					continue rules
				}
			}
			u.Close() // a rule without an indexed equality: read it all
			return snap.Scan(tid)
		}
		return u, nil
	}
	return snap.Scan(tid)
}

// pointScan reads the rows whose column equals eq's value through an index
// that starts with that column; ok is false when there is none.
func (e *Engine) pointScan(snap *store.Snapshot, def *abi.TableDef, eq query.Equality, caller abi.Identity) (*store.RowIter, bool, error) {
	v := eq.Value
	if eq.Caller {
		v = abi.IdentityValue(caller)
	}
	col := def.Columns[eq.Column]
	for _, ix := range def.Indexes {
		if len(ix.Columns) == 0 || ix.Columns[0] != col.Name {
			continue
		}
		iid, err := e.db.IndexID(ix.Name)
		if err != nil {
			continue
		}
		w := abi.Writer{}
		if err := w.WriteValue(col.Type, v); err != nil {
			continue
		}
		it, err := snap.ScanPoint(iid, w.Bytes())
		return it, true, err
	}
	return nil, false, nil
}

func hasPrimaryKey(def *abi.TableDef) bool {
	for _, c := range def.Columns {
		if c.PrimaryKey {
			return true
		}
	}
	return false
}

// unionIter reads several point scans, each row once (the rows are
// distinct: the table has a primary key).
type unionIter struct {
	its  []*store.RowIter
	i    int
	seen map[string]struct{}
}

func (u *unionIter) Next() ([]byte, bool) {
	for u.i < len(u.its) {
		raw, ok := u.its[u.i].Next()
		if !ok {
			u.i++
			continue
		}
		if _, dup := u.seen[string(raw)]; dup {
			continue
		}
		u.seen[string(raw)] = struct{}{}
		return raw, true
	}
	return nil, false
}

func (u *unionIter) Close() {
	for _, it := range u.its {
		it.Close()
	}
}

// fold applies commits that happened after the initial rows' snapshot. A
// commit that changes a table the groups' grant rules read may move
// unchanged rows in or out of view, so the groups are then read afresh from
// the state that commit left.
func (e *Engine) fold(groups []*group, bags map[string]*bag, commits []pendingCommit, caller abi.Identity) error {
	for _, c := range commits {
		changed := changedTables(c.Delta)
		if groupsRead(groups, changed) {
			fresh, err := e.evalGroups(context.Background(), c.after, groups, caller)
			if err != nil {
				return err
			}
			for k, v := range fresh {
				bags[k] = v
			}
			continue
		}
		env := &query.Env{Caller: caller, Source: grantSource{db: e.db, snap: c.after}}
		for i := range c.Delta.Tables {
			td := &c.Delta.Tables[i]
			b := bags[td.Name]
			if b == nil {
				continue
			}
			var g *group
			for _, x := range groups {
				if x.table == td.Name {
					g = x
				}
			}
			def, err := e.db.Table(td.Table)
			if err != nil {
				return err
			}
			types := def.ColumnTypes()
			for _, raw := range td.Deletes {
				vals, err := abi.DecodeRow(types, raw)
				if err != nil {
					return err
				}
				if g.match(vals, env) {
					b.remove(raw)
				}
			}
			for _, raw := range td.Inserts {
				vals, err := abi.DecodeRow(types, raw)
				if err != nil {
					return err
				}
				if g.match(vals, env) {
					b.add(raw, abi.AppendRowJSON(nil, def, vals))
				}
			}
		}
	}
	total := 0
	for _, b := range bags {
		total += b.live
	}
	if total > e.cfg.maxInitialRows {
		return e.tooManyRows()
	}
	return nil
}

// groupsRead reports whether a table the groups' grant rules read changed.
func groupsRead(groups []*group, changed func(string) bool) bool {
	for _, g := range groups {
		for _, cq := range g.cqs {
			for _, t := range cq.view.reads {
				if changed(t) {
					return true
				}
			}
		}
	}
	return false
}

// SetIdentity records a connection's new identity and recomputes what its
// query sets see: every set whose queries or grant rules depend on the
// caller (or on whether it is signed in) receives one TransactionUpdate
// (Recomputed, at the offset T the change takes effect) with the rows that
// left and entered its view. A set that reads a table the new identity may
// not read at all is dropped; SetIdentity returns those (and reports them
// through WithRevokeHandler, in stream order).
//
// It works like Subscribe: the old and new views are read from a snapshot
// with no lock held, the commits processed meanwhile are folded into both
// (the old sets keep delivering under the old identity until T), and the
// switch happens under the lock at T, so a big view stalls nobody.
func (e *Engine) SetIdentity(id abi.ConnectionID, caller abi.Identity) []Revoked {
	c, err := e.conn(id)
	if err != nil {
		return nil
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	e.mu.Lock()
	if e.closed || c.gone || c.caller == caller {
		c.caller = caller
		e.mu.Unlock()
		return nil
	}
	old := c.caller
	c.caller = caller
	e.mu.Unlock()
	return e.recompute(c, old, caller, "the connection's identity changed")
}

// recompute re-checks a connection's query sets for the reader (caller,
// the connection's owner bit) under the current grants, drops the sets it
// may no longer read, and switches the sets whose queries changed (another
// caller, other rules) at one offset, sending the difference. The caller
// holds c.subMu. why says what happened, for the errors of dropped sets.
func (e *Engine) recompute(c *conn, old, caller abi.Identity, why string) []Revoked {
	type change struct {
		s              *qset
		oldG, newG     []*group
		newCQs         []*compiled
		oldBag, newBag map[string]*bag
	}
	g := e.grants()
	e.mu.Lock()
	if e.closed || c.gone {
		e.mu.Unlock()
		return nil
	}
	var changes []*change
	var revoked []Revoked
	ids := make([]uint32, 0, len(c.sets))
	for sid := range c.sets {
		ids = append(ids, sid)
	}
	sortU32(ids)
	for _, sid := range ids {
		s := c.sets[sid]
		var oldCQs, newCQs []*compiled
		changed := false
		var rerr error
		for _, uq := range s.queries {
			nc, err := compileFor(g, uq.cq.plan, uq.cq.canon, caller, c.owner)
			if err != nil {
				rerr = err
				break
			}
			changed = changed || nc.key != uq.key
			oldCQs = append(oldCQs, uq.cq)
			newCQs = append(newCQs, nc)
		}
		if rerr != nil {
			revoked = append(revoked, e.revokeLocked(s, fmt.Errorf("%s: %w", why, rerr)))
			continue
		}
		if changed {
			changes = append(changes, &change{s: s, oldG: groupByTable(oldCQs), newG: groupByTable(newCQs), newCQs: newCQs})
		}
	}
	if len(changes) == 0 {
		e.mu.Unlock()
		return revoked
	}
	snap := e.snapshotLocked()
	p := &pending{}
	e.pending[p] = struct{}{}
	e.mu.Unlock()

	fail := func(err error) {
		// The old view is no longer the connection's; keeping it would show
		// rows the reader may no longer see. Drop the affected sets.
		e.mu.Lock()
		delete(e.pending, p)
		for _, ch := range changes {
			if !c.gone && c.sets[ch.s.id] == ch.s {
				revoked = append(revoked, e.revokeLocked(ch.s, fmt.Errorf("the rows this subscription may see changed and could not be recomputed: %w", err)))
			}
		}
		e.mu.Unlock()
		e.cfg.log.Error("subscription: recomputing a view after an identity or grant change failed; its query sets were dropped",
			"connection", c.id.String(), "err", err)
	}
	ctx := context.Background()
	for _, ch := range changes {
		var err error
		if ch.oldBag, err = e.evalGroups(ctx, snap, ch.oldG, old); err != nil {
			fail(err)
			return revoked
		}
		if ch.newBag, err = e.evalGroups(ctx, snap, ch.newG, caller); err != nil {
			fail(err)
			return revoked
		}
	}
	if e.afterInitial != nil {
		e.afterInitial()
	}
	for {
		e.mu.Lock()
		if e.closed || c.gone {
			delete(e.pending, p)
			e.mu.Unlock()
			return revoked
		}
		if len(p.buf) == 0 {
			delete(e.pending, p)
			tu := &TransactionUpdate{Offset: e.snap.Offset(), Recomputed: true}
			for _, ch := range changes {
				if c.sets[ch.s.id] != ch.s {
					continue // revoked meanwhile
				}
				qu := QuerySetUpdate{QuerySetID: ch.s.id}
				for _, g := range ch.newG {
					ins, del := diff(ch.oldBag[g.table], ch.newBag[g.table])
					if len(ins) > 0 || len(del) > 0 {
						qu.Tables = append(qu.Tables, TableUpdate{Table: g.table, Inserts: nonNil(ins), Deletes: nonNil(del)})
					}
				}
				e.installSetLocked(c, ch.s.id, ch.newCQs, ch.s.n)
				if len(qu.Tables) > 0 {
					tu.QuerySets = append(tu.QuerySets, qu)
				}
			}
			if len(tu.QuerySets) > 0 {
				c.box.pushAndFlush(item{tu: tu})
			}
			e.mu.Unlock()
			return revoked
		}
		buf := p.buf
		p.buf = nil
		e.mu.Unlock()
		e.folds.Add(uint64(len(buf)))
		for _, ch := range changes {
			if err := e.fold(ch.oldG, ch.oldBag, buf, old); err != nil {
				fail(err)
				return revoked
			}
			if err := e.fold(ch.newG, ch.newBag, buf, caller); err != nil {
				fail(err)
				return revoked
			}
		}
	}
}

// diff returns the rows of nb missing from ob (inserts) and of ob missing
// from nb (deletes), as multisets.
func diff(ob, nb *bag) (ins, del []json.RawMessage) {
	count := map[string]int{}
	if ob != nil {
		for _, r := range ob.rows {
			if !r.dead {
				count[string(r.raw)]++
			}
		}
	}
	if nb != nil {
		for _, r := range nb.rows {
			if r.dead {
				continue
			}
			if count[string(r.raw)] > 0 {
				count[string(r.raw)]--
				continue
			}
			ins = append(ins, r.js)
		}
	}
	if ob != nil {
		for _, r := range ob.rows {
			if !r.dead && count[string(r.raw)] > 0 {
				count[string(r.raw)]--
				del = append(del, r.js)
			}
		}
	}
	return ins, del
}

func nonNil(s []json.RawMessage) []json.RawMessage {
	if s == nil {
		return []json.RawMessage{}
	}
	return s
}

func sortU32(s []uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
