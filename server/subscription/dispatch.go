package subscription

import (
	"encoding/json"
	"sort"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// onCommit is called by the store, one durable commit at a time, in offset
// order.
func (e *Engine) onCommit(c store.Commit, after *store.Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || c.Offset <= e.snap.Offset() {
		return // already part of the snapshot the engine started from
	}
	e.snap = after
	if c.Delta == nil || len(c.Delta.Tables) == 0 {
		return
	}
	for p := range e.pending {
		p.buf = append(p.buf, c)
	}
	e.fanoutLocked(c.Offset, c.Delta)
}

// fanoutLocked matches a transaction's delta against the live queries and
// queues one TransactionUpdate per affected connection.
func (e *Engine) fanoutLocked(offset uint64, d *store.Delta) {
	if len(e.queries) == 0 {
		return
	}
	e.txStamp++
	tx := e.txStamp
	e.touched = e.touched[:0]
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
		e.matchRowsLocked(tx, ts, def, types, td.Deletes, false)
		e.matchRowsLocked(tx, ts, def, types, td.Inserts, true)
	}
	if len(e.touched) == 0 {
		return
	}
	e.tconns = e.tconns[:0]
	for _, s := range e.touched {
		c := s.conn
		if c.curTx != tx {
			c.curTx = tx
			c.cur = &TransactionUpdate{Offset: offset}
			e.tconns = append(e.tconns, c)
		}
		c.cur.QuerySets = append(c.cur.QuerySets, *s.cur)
		s.cur = nil
	}
	for _, c := range e.tconns {
		tu := c.cur
		c.cur = nil
		sort.Slice(tu.QuerySets, func(i, j int) bool { return tu.QuerySets[i].QuerySetID < tu.QuerySets[j].QuerySetID })
		c.box.push(item{tu: tu})
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
		visit := func(uq *uquery) {
			if !uq.match(vals, tx) {
				return
			}
			for s := range uq.subs {
				if s.stamp == stamp || s.conn.box.gone.Load() {
					continue // already has this row through another query of the set, or no longer delivered to
				}
				s.stamp = stamp
				if js == nil {
					js = abi.AppendRowJSON(nil, def, vals)
				}
				s.add(tx, def.Name, js, insert, &e.touched)
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
	}
}

// add appends a row to the set's update for transaction tx. Rows come table
// by table (deletes, then inserts), so the table is the last one or new.
func (s *qset) add(tx uint64, table string, js json.RawMessage, insert bool, touched *[]*qset) {
	if s.curTx != tx || s.cur == nil {
		s.curTx = tx
		s.cur = &QuerySetUpdate{QuerySetID: s.id}
		*touched = append(*touched, s)
	}
	n := len(s.cur.Tables)
	if n == 0 || s.cur.Tables[n-1].Table != table {
		s.cur.Tables = append(s.cur.Tables, TableUpdate{Table: table, Inserts: noRows, Deletes: noRows})
		n++
	}
	tu := &s.cur.Tables[n-1]
	if insert {
		tu.Inserts = append(tu.Inserts, js)
	} else {
		tu.Deletes = append(tu.Deletes, js)
	}
}

// noRows is an empty, non-nil row list (JSON []), shared: its capacity is 0,
// so appending to it always allocates a new array.
var noRows = make([]json.RawMessage, 0)
