package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

// OneOffQuery runs a query once against the latest durable state, under the
// connection's access rules. It may project columns or COUNT(*), and use
// IN subqueries (whose tables must be readable too).
func (e *Engine) OneOffQuery(ctx context.Context, id abi.ConnectionID, src string) (*QueryResult, error) {
	c, err := e.conn(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	caller, owner, snap := c.caller, c.owner, e.snapshotLocked()
	e.mu.Unlock()

	q, err := query.Parse(src)
	if err != nil {
		return nil, err
	}
	p, err := query.Compile(q, e.schema())
	if err != nil {
		return nil, err
	}
	filters, err := e.viewFilters(owner, p.Table.Name)
	if err != nil {
		return nil, err
	}
	srcFilters := map[string][]*query.Plan{}
	for _, t := range p.Reads {
		f, err := e.viewFilters(owner, t)
		if err != nil {
			return nil, fmt.Errorf("the query's subquery reads %q: %w", t, err)
		}
		srcFilters[t] = f
	}
	env := &query.Env{Caller: caller}
	env.Source = &snapSource{e: e, snap: snap, filters: srcFilters, env: env}

	tid, err := e.db.TableID(p.Table.Name)
	if err != nil {
		return nil, err
	}
	def, err := e.db.Table(tid)
	if err != nil {
		return nil, err
	}
	out := def
	if p.Project != nil {
		out = &abi.TableDef{Name: def.Name}
		for _, i := range p.Project {
			out.Columns = append(out.Columns, def.Columns[i])
		}
	}
	types := def.ColumnTypes()
	rows := []json.RawMessage{}
	it, err := snap.Scan(tid)
	if errors.Is(err, store.ErrNoSuchTable) {
		// Added after snap (a commit is on its way): empty as of snap.
		it, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if it != nil {
		defer it.Close()
	}
	var count uint64
	var proj []abi.Value
	n := 0
	for raw, ok := next(it); ok; raw, ok = next(it) {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		vals, err := abi.DecodeRow(types, raw)
		if err != nil {
			return nil, fmt.Errorf("decoding a row of %q: %w", def.Name, err)
		}
		if !p.Match(vals, env) || !allMatch(filters, vals, env) {
			continue
		}
		if err := env.Err(); err != nil {
			return nil, err
		}
		if p.Count {
			count++
			continue
		}
		if len(rows) >= e.cfg.maxInitialRows {
			return nil, e.tooManyRows()
		}
		if p.Project != nil {
			proj = proj[:0]
			for _, i := range p.Project {
				proj = append(proj, vals[i])
			}
			rows = append(rows, abi.AppendRowJSON(nil, out, proj))
		} else {
			rows = append(rows, abi.AppendRowJSON(nil, out, vals))
		}
	}
	if err := env.Err(); err != nil {
		return nil, err
	}
	if p.Count {
		rows = append(rows, json.RawMessage(`{"count":`+strconv.FormatUint(count, 10)+`}`))
	}
	return &QueryResult{Tables: []TableRows{{Table: def.Name, Rows: rows}}}, nil
}

func allMatch(ps []*query.Plan, row []abi.Value, env *query.Env) bool {
	for _, p := range ps {
		if !p.Match(row, env) {
			return false
		}
	}
	return true
}

// snapSource feeds subqueries from a snapshot, applying the connection's
// filters on each table it reads, so a subquery cannot reveal rows the
// connection may not read.
type snapSource struct {
	e       *Engine
	snap    *store.Snapshot
	filters map[string][]*query.Plan
	env     *query.Env
}

func (s *snapSource) ScanTable(table string, fn func(row []abi.Value) bool) error {
	tid, err := s.e.db.TableID(table)
	if err != nil {
		return err
	}
	def, err := s.e.db.Table(tid)
	if err != nil {
		return err
	}
	types := def.ColumnTypes()
	it, err := s.snap.Scan(tid)
	if errors.Is(err, store.ErrNoSuchTable) {
		return nil
	}
	if err != nil {
		return err
	}
	defer it.Close()
	for raw, ok := it.Next(); ok; raw, ok = it.Next() {
		vals, err := abi.DecodeRow(types, raw)
		if err != nil {
			return err
		}
		if !allMatch(s.filters[table], vals, s.env) {
			continue
		}
		if !fn(vals) {
			return nil
		}
	}
	return nil
}

// next reads an iterator that may be nil (no rows).
func next(it *store.RowIter) ([]byte, bool) {
	if it == nil {
		return nil, false
	}
	return it.Next()
}
