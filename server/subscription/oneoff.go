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

// Reader is who runs a one-off query: the identity :caller stands for,
// and whether it is the database owner, who reads every row of every table
// whatever the grants.
type Reader struct {
	Caller abi.Identity
	Owner  bool
}

// Result is a one-off query's answer.
type Result struct {
	Table   string
	Columns []string
	// Rows are JSON objects keyed by the selected columns; COUNT(*) gives
	// one row {"count": n}.
	Rows []json.RawMessage
	// Offset is the transaction the rows are as of.
	Offset uint64
	// AsOwner is set when the reader is the owner; Privileged lists the
	// tables it read that grants do not open in full to that identity
	// (the owner's privilege was used, and logged).
	AsOwner    bool
	Privileged []string
}

// OneOffQuery runs a query once against the latest durable state, as the
// connection's reader (see Query).
func (e *Engine) OneOffQuery(ctx context.Context, id abi.ConnectionID, src string) (*QueryResult, error) {
	c, err := e.conn(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	r := Reader{Caller: c.caller, Owner: c.owner}
	e.mu.Unlock()
	res, err := e.Query(ctx, r, src)
	if err != nil {
		return nil, err
	}
	return &QueryResult{Tables: []TableRows{{Table: res.Table, Rows: res.Rows}}}, nil
}

// Query runs a query once against the latest durable state under the
// reader's grants: the HTTP SQL endpoint, the CLI's sql and one-off queries
// over a WebSocket all come here. It may project columns or COUNT(*), and
// use IN subqueries. Every table it names must be readable by the reader,
// else it fails (errors.Is ErrPrivateTable) rather than answer with nothing;
// of a table opened by row rules it sees only the rows the rules allow, in
// the main query and in subqueries alike.
func (e *Engine) Query(ctx context.Context, r Reader, src string) (*Result, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	snap := e.snapshotLocked()
	// The store tells the engine of commits on its own goroutine, after
	// their callers have their answers: a client that saw its call commit
	// must find its write, so read the latest durable state when it is
	// ahead of the last commit the engine has processed.
	if s := e.db.Snapshot(); s.Offset() > snap.Offset() {
		snap = s
	}
	e.mu.Unlock()

	q, err := query.Parse(src)
	if err != nil {
		return nil, err
	}
	p, err := query.Compile(q, e.schema())
	if err != nil {
		return nil, err
	}
	g := e.grants()
	main, err := viewOf(g, r.Owner, r.Caller, p.Table.Name)
	if err != nil {
		return nil, err
	}
	views := map[string]view{}
	for _, t := range p.Reads {
		v, err := viewOf(g, r.Owner, r.Caller, t)
		if err != nil {
			return nil, fmt.Errorf("the query's subquery reads %q: %w", t, err)
		}
		views[t] = v
	}
	res := &Result{Table: p.Table.Name, Offset: snap.Offset(), AsOwner: r.Owner, Rows: []json.RawMessage{}}
	if r.Owner {
		for _, t := range append([]string{p.Table.Name}, p.Reads...) {
			if v, err := viewOf(g, false, r.Caller, t); err != nil || !v.all {
				res.Privileged = append(res.Privileged, t)
			}
		}
		if len(res.Privileged) > 0 {
			e.cfg.log.Info("query: the database owner read rows clients may not read (owners read every row)",
				"database", e.db.Name(), "tables", res.Privileged, "query", truncate(src, 200))
		}
	}
	// Rules read their subqueries with every row visible; the query's own
	// subqueries see only what the reader may read.
	grantEnv := &query.Env{Caller: r.Caller, Source: grantSource{db: e.db, snap: snap}}
	env := &query.Env{Caller: r.Caller}
	env.Source = &viewSource{src: grantSource{db: e.db, snap: snap}, views: views, env: grantEnv}

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
	for _, c := range out.Columns {
		res.Columns = append(res.Columns, c.Name)
	}
	types := def.ColumnTypes()
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
		if !main.allows(vals, grantEnv) || !p.Match(vals, env) {
			continue
		}
		if err := firstErr(env.Err(), grantEnv.Err()); err != nil {
			return nil, err
		}
		if p.Count {
			count++
			continue
		}
		if len(res.Rows) >= e.cfg.maxInitialRows {
			return nil, e.tooManyRows()
		}
		if p.Project != nil {
			proj = proj[:0]
			for _, i := range p.Project {
				proj = append(proj, vals[i])
			}
			res.Rows = append(res.Rows, abi.AppendRowJSON(nil, out, proj))
		} else {
			res.Rows = append(res.Rows, abi.AppendRowJSON(nil, out, vals))
		}
	}
	if err := firstErr(env.Err(), grantEnv.Err()); err != nil {
		return nil, err
	}
	if p.Count {
		res.Columns = []string{"count"}
		res.Rows = append(res.Rows, json.RawMessage(`{"count":`+strconv.FormatUint(count, 10)+`}`))
	}
	return res, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// viewSource feeds a query's own subqueries from a state, showing each
// table as the reader may see it, so a subquery cannot reveal rows the
// reader may not read.
type viewSource struct {
	src   grantSource
	views map[string]view
	env   *query.Env
}

func (s *viewSource) ScanTable(table string, fn func(row []abi.Value) bool) error {
	v, ok := s.views[table]
	if !ok {
		return fmt.Errorf("%w: the query reads %q, which was not checked", ErrPrivateTable, table)
	}
	return s.src.ScanTable(table, func(row []abi.Value) bool {
		if !v.allows(row, s.env) {
			return true
		}
		return fn(row)
	})
}

// next reads an iterator that may be nil (no rows).
func next(it *store.RowIter) ([]byte, bool) {
	if it == nil {
		return nil, false
	}
	return it.Next()
}
