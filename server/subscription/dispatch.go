package subscription

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

// onCommit is called by the store, one durable commit at a time, in offset
// order.
func (e *Engine) onCommit(c store.Commit, after *store.Snapshot) {
	if e.committed != nil {
		e.committed(c, after)
	}
	e.mu.Lock()
	if e.closed || c.Offset <= e.snap.Offset() {
		e.mu.Unlock()
		return // already part of the snapshot the engine started from
	}
	before := e.snap
	e.snap = after
	if c.Delta == nil || len(c.Delta.Tables) == 0 {
		e.mu.Unlock()
		return
	}
	for p := range e.pending {
		p.buf = append(p.buf, pendingCommit{Commit: c, after: after})
	}
	e.fanoutLocked(c.Offset, c.Delta, before, after)
	flush := e.flushBoxes
	e.flushBoxes = nil
	e.mu.Unlock()
	if len(flush) > 0 {
		e.flush(flush)
		clear(flush)
		// Commits come one at a time: the array is free again.
		e.mu.Lock()
		e.flushBoxes = flush[:0]
		e.mu.Unlock()
	}
}

// minParallelFlush is the fan-out from which the outboxes are flushed on
// several goroutines: each flush is a send that may make a system call.
const minParallelFlush = 64

// flush delivers the commit's updates (direct mode), spreading the outboxes
// over the cores. It returns when every outbox has been flushed, so that the
// commits' deliveries do not pile up.
func (e *Engine) flush(boxes []*outbox) {
	n := runtime.GOMAXPROCS(0)
	if len(boxes) < minParallelFlush || n < 2 {
		for _, b := range boxes {
			b.flush()
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(boxes) + n - 1) / n
	for i := per; i < len(boxes); i += per {
		part := boxes[i:min(i+per, len(boxes))]
		wg.Go(func() {
			for _, b := range part {
				b.flush()
			}
		})
	}
	for _, b := range boxes[:per] {
		b.flush()
	}
	wg.Wait()
}

func changedTables(d *store.Delta) func(string) bool {
	return func(t string) bool {
		for i := range d.Tables {
			if d.Tables[i].Name == t {
				return true
			}
		}
		return false
	}
}

// fanoutLocked matches a transaction's delta against the live queries and
// queues one TransactionUpdate per affected connection.
func (e *Engine) fanoutLocked(offset uint64, d *store.Delta, before, after *store.Snapshot) {
	changed := changedTables(d)
	prevCache := e.stateCache
	e.stateCache = query.NewCache()
	e.stateCache.Keep(prevCache, changed)
	if len(e.queries) == 0 {
		return
	}
	if prevCache == nil {
		prevCache = query.NewCache()
	}
	e.txStamp++
	tx := e.txStamp
	e.txSrc = [2]query.RowSource{grantSource{db: e.db, snap: before}, grantSource{db: e.db, snap: after}}
	e.txCache = [2]*query.Cache{prevCache, e.stateCache}
	defer func() {
		e.txSrc, e.txCache = [2]query.RowSource{}, [2]*query.Cache{}
		clear(e.condOn)
		e.releaseEnvsLocked()
	}()
	e.touched = e.touched[:0]
	flips := e.flipsLocked(tx, d)
	for i := range d.Tables {
		td := &d.Tables[i]
		ts := e.tables[td.Name]
		if ts == nil || ts.empty() {
			continue
		}
		def, err := e.db.Table(td.Table)
		if err != nil {
			e.cfg.log.Error("subscription: delta names an unknown table", "table", td.Name, "err", err)
			continue
		}
		types := def.ColumnTypes()
		e.condLocked(tx, ts)
		e.matchRowsLocked(tx, ts, def, types, td.Deletes, false)
		e.matchRowsLocked(tx, ts, def, types, td.Inserts, true)
	}
	e.recomputeFlipsLocked(tx, flips, before, after)
	if len(e.touched) == 0 {
		return
	}
	e.tconns = e.tconns[:0]
	for _, s := range e.touched {
		c := s.conn
		if c.sets[s.id] != s || len(s.cur.Tables) == 0 {
			s.cur = nil // dropped during the fan-out
			continue
		}
		if c.curTx != tx {
			c.curTx = tx
			// The usual update holds one query set: one allocation for
			// both.
			u := &struct {
				tu TransactionUpdate
				qs [1]QuerySetUpdate
				tb [1]TableUpdate
			}{tu: TransactionUpdate{Offset: offset}}
			u.tu.QuerySets = u.qs[:0:1]
			c.cur, c.curTB = &u.tu, &u.tb
			e.tconns = append(e.tconns, c)
		}
		q := *s.cur
		if len(q.Tables) == 1 && &q.Tables[0] == &s.tbuf[0] {
			// The set's one table is in its own buffer, which the next
			// commit reuses: the update takes a copy.
			if c.curTB != nil {
				c.curTB[0] = q.Tables[0]
				q.Tables, c.curTB = c.curTB[:1:1], nil
			} else {
				q.Tables = []TableUpdate{q.Tables[0]}
			}
		}
		c.cur.QuerySets = append(c.cur.QuerySets, q)
		s.cur = nil
	}
	for _, c := range e.tconns {
		tu := c.cur
		c.cur, c.curTB = nil, nil
		if len(tu.QuerySets) > 1 {
			sort.Slice(tu.QuerySets, func(i, j int) bool { return tu.QuerySets[i].QuerySetID < tu.QuerySets[j].QuerySetID })
		}
		if c.box.push(item{tu: tu}) && c.box.direct {
			e.flushBoxes = append(e.flushBoxes, c.box)
		}
	}
	clear(e.touched)
	clear(e.tconns)
}

func (e *Engine) matchRowsLocked(tx uint64, ts *tableSubs, def *abi.TableDef, types []abi.Type, rows [][]byte, insert bool) {
	for _, raw := range rows {
		vals, err := abi.DecodeRow(types, raw)
		if err != nil {
			e.cfg.log.Error("subscription: cannot decode a committed row", "table", def.Name, "err", err)
			continue
		}
		e.rowStamp++
		stamp := e.rowStamp
		var js json.RawMessage
		var one []json.RawMessage // [js], shared by the sets that get only this row
		side := 0
		if insert {
			side = 1
		}
		visit := func(uq *uquery) {
			if !e.match(uq, vals, tx, side) {
				return
			}
			for s := range uq.subs {
				if s.stamp == stamp || s.conn.box.gone.Load() {
					continue // already has this row through another query of the set, or no longer delivered to
				}
				if s.flipTx == tx && contains(s.flipTables, def.Name) {
					continue // its view of the table is recomputed as a whole
				}
				s.stamp = stamp
				if js == nil {
					js = abi.AppendRowJSON(nil, def, vals)
					one = []json.RawMessage{js}
				}
				s.addOne(tx, def.Name, one, insert, &e.touched)
			}
		}
		for _, col := range ts.list {
			k, ok := valueKey(vals[col])
			if !ok {
				continue
			}
			for uq := range ts.eq[eqKey{col: col, val: k}] {
				visit(uq)
			}
		}
		for uq := range ts.scan {
			visit(uq)
		}
		for _, uq := range e.condOn {
			visit(uq)
		}
	}
}

// add appends a row to the set's update for transaction tx.
func (s *qset) add(tx uint64, table string, js json.RawMessage, insert bool, touched *[]*qset) {
	tu := s.tableUpdate(tx, table, touched)
	if insert {
		tu.Inserts = append(tu.Inserts, js)
	} else {
		tu.Deletes = append(tu.Deletes, js)
	}
}

// tableUpdate is the set's update of table in transaction tx. Rows come
// table by table (deletes, then inserts), so the table is the last one or
// new.
func (s *qset) tableUpdate(tx uint64, table string, touched *[]*qset) *TableUpdate {
	if s.curTx != tx || s.cur == nil {
		s.curTx = tx
		// Copied into the connection's update at the end of the fan-out,
		// so the set's own field serves (no allocation per set).
		s.curv = QuerySetUpdate{QuerySetID: s.id, Tables: s.tbuf[:0:1]}
		s.cur = &s.curv
		*touched = append(*touched, s)
	}
	n := len(s.cur.Tables)
	if n == 0 || s.cur.Tables[n-1].Table != table {
		s.cur.Tables = append(s.cur.Tables, TableUpdate{Table: table, Inserts: noRows, Deletes: noRows})
		n++
	}
	return &s.cur.Tables[n-1]
}

// addOne is add for a row given as a one-row list, which becomes the
// table's list as is when it is the set's first row of the table: the
// sets of a shared query then share one list instead of each allocating
// its own. Its capacity is 1, so appending a second row to it makes a list
// of the set's own.
func (s *qset) addOne(tx uint64, table string, one []json.RawMessage, insert bool, touched *[]*qset) {
	tu := s.tableUpdate(tx, table, touched)
	rows := &tu.Deletes
	if insert {
		rows = &tu.Inserts
	}
	if len(*rows) == 0 {
		*rows = one
	} else {
		*rows = append(*rows, one[0])
	}
}

// noRows is an empty, non-nil row list (JSON []), shared: its capacity is 0,
// so appending to it always allocates a new array.
var noRows = make([]json.RawMessage, 0)

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// flipsLocked finds the query sets whose view of a table changes in
// transaction tx because a table their grant rules read changed (Alice
// gains 'admin'): row-by-row matching cannot see rows that did not change
// but moved in or out of view, so those views are recomputed as a whole.
// A rule's subqueries are compared between the states before and after
// (for `:caller in (...)`, only the caller's membership), so a change that
// does not alter a reader's rules costs no recomputation.
func (e *Engine) flipsLocked(tx uint64, d *store.Delta) []*qset {
	var out []*qset
	for i := range d.Tables {
		for uq := range e.deps[d.Tables[i].Name] {
			if uq.flipSeen == tx {
				continue
			}
			uq.flipSeen = tx
			same := true
			for _, r := range uq.cq.view.rules {
				if r.HasSubqueries() && !r.SameSubqueries(e.env(uq, tx, 0), e.env(uq, tx, 1)) {
					same = false
					break
				}
			}
			if same {
				continue
			}
			for s := range uq.subs {
				if s.conn.box.gone.Load() {
					continue
				}
				if s.flipTx != tx {
					s.flipTx = tx
					s.flipTables = s.flipTables[:0]
					out = append(out, s)
				}
				if !contains(s.flipTables, uq.table) {
					s.flipTables = append(s.flipTables, uq.table)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].conn != out[j].conn {
			return out[i].conn.id.String() < out[j].conn.id.String()
		}
		return out[i].id < out[j].id
	})
	return out
}

// recomputeFlipsLocked sends each flipped set the difference between its
// view of each flipped table before and after the transaction, as part of
// the transaction's update. It reads both states in full under the lock:
// role changes are rare, and the update must be exact in this transaction.
func (e *Engine) recomputeFlipsLocked(tx uint64, flips []*qset, before, after *store.Snapshot) {
	for _, s := range flips {
		if s.conn.sets[s.id] != s {
			continue
		}
		for _, table := range s.flipTables {
			g := &group{table: table}
			for _, uq := range s.queries {
				if uq.table == table {
					g.cqs = append(g.cqs, uq.cq)
				}
			}
			caller := groupCaller(g)
			ctx := context.Background()
			ob, err := e.evalGroups(ctx, before, []*group{g}, caller)
			var nb map[string]*bag
			if err == nil {
				nb, err = e.evalGroups(ctx, after, []*group{g}, caller)
			}
			if err != nil {
				e.cfg.log.Error("subscription: recomputing a view after a change to its grant rules' tables failed; the query set was dropped",
					"connection", s.conn.id.String(), "query_set", s.id, "err", err)
				if s.cur != nil && s.curTx == tx {
					s.cur = &QuerySetUpdate{QuerySetID: s.id} // nothing of it is sent
				}
				e.revokeLocked(s, fmt.Errorf("the rows this subscription may see changed and could not be recomputed: %w", err))
				break
			}
			ins, del := diff(ob[table], nb[table])
			for _, js := range del {
				s.add(tx, table, js, false, &e.touched)
			}
			for _, js := range ins {
				s.add(tx, table, js, true, &e.touched)
			}
		}
	}
}

// groupCaller is the caller a group's queries are evaluated for (they all
// belong to one connection).
func groupCaller(g *group) abi.Identity {
	for _, cq := range g.cqs {
		if cq.usesCaller {
			return cq.caller
		}
	}
	if len(g.cqs) > 0 {
		return g.cqs[0].caller
	}
	return abi.Identity{}
}

// condLocked lists the conditional queries of a table whose row-free rule
// holds in this transaction: they see every row, so they are matched like
// scanned queries. A query whose rule answers differently before and after
// the transaction is flipped and recomputed instead, so the state after is
// enough to decide.
func (e *Engine) condLocked(tx uint64, ts *tableSubs) {
	clear(e.condOn)
	e.condOn = e.condOn[:0]
	for uq := range ts.cond {
		env := e.env(uq, tx, 1)
		for _, r := range uq.cq.view.rules {
			if r.RowFree() && r.Match(nil, env) {
				e.condOn = append(e.condOn, uq)
				break
			}
		}
	}
}
