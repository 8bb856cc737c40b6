package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

// MaxSQLRows bounds the rows one SQL query returns: the answer is built in
// memory, and a query that needs more should filter or count.
const MaxSQLRows = 100_000

// sqlResult is one statement's result.
type sqlResult struct {
	Table   string            `json:"table"`
	Columns []string          `json:"columns"`
	Rows    []json.RawMessage `json:"rows"`
	// AsOwner says the database owner read tables clients cannot.
	AsOwner bool `json:"as_owner,omitempty"`
	// Offset is the transaction offset the rows are as of.
	Offset uint64 `json:"offset"`
}

// errForbiddenTable is a read of a table the reader may not see.
var errForbiddenTable = errors.New("table not readable")

// tableSchema presents a store database's tables to the query compiler.
type tableSchema []abi.TableDef

func (ts tableSchema) Table(name string) (*abi.TableDef, bool) {
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i], true
		}
	}
	return nil, false
}

// snapshotSource feeds subqueries from the same snapshot as the main scan.
type snapshotSource struct {
	db   *store.Database
	snap *store.Snapshot
}

func (ss snapshotSource) ScanTable(table string, fn func(row []abi.Value) bool) error {
	tid, err := ss.db.TableID(table)
	if err != nil {
		return err
	}
	def, err := ss.db.Table(tid)
	if err != nil {
		return err
	}
	it, err := ss.snap.Scan(tid)
	if err != nil {
		return err
	}
	defer it.Close()
	types := def.ColumnTypes()
	for {
		row, ok := it.Next()
		if !ok {
			return nil
		}
		vals, err := abi.DecodeRow(types, row)
		if err != nil {
			return err
		}
		if !fn(vals) {
			return nil
		}
	}
}

// checkReadable applies the access rule of this version: clients read only
// tables opened with `grant_access T to public`; the owner reads everything.
func checkReadable(def *abi.ModuleDef, table string) error {
	other := ""
	for _, g := range def.Grants {
		if g.Table != table {
			continue
		}
		if g.To == "public" {
			return nil
		}
		if other == "" {
			if g.To != "" {
				other = "to " + g.To
			} else {
				other = "where " + g.Where
			}
		}
	}
	if other != "" {
		return fmt.Errorf("%w: table %s is not open to clients yet: its rule (grant_access %s %s) is not enforced by this server version, which opens only tables with \"grant_access %s to public;\" (the database owner may read it with its operator token)",
			errForbiddenTable, table, table, other, table)
	}
	return fmt.Errorf("%w: table %s is private; open it with \"grant_access %s to public;\" in the schema (the database owner may read it with its operator token)",
		errForbiddenTable, table, table)
}

func (s *Server) handleSQL(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, s.cfg.maxQueryBody, "query")
	if !ok {
		return
	}
	text := string(body)
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		var req struct {
			Query *string `json:"query"`
		}
		if err := json.Unmarshal(t, &req); err != nil || req.Query == nil {
			writeError(w, http.StatusBadRequest, "a JSON body must be {\"query\": \"SELECT ...\"}; or send the query as text/plain")
			return
		}
		text = *req.Query
	}
	if strings.TrimSpace(text) == "" {
		writeError(w, http.StatusBadRequest, "empty query: send a SELECT statement, such as SELECT * FROM Post")
		return
	}
	caller, owner, ok := s.sqlReader(w, r, d, p, text) // ?as= (owner only; admin.go)
	if !ok {
		return
	}
	res, code, err := s.runSQL(d, text, caller, owner)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	if owner {
		w.Header().Set("Spacetime-As-Owner", "true")
	}
	writeJSON(w, http.StatusOK, []*sqlResult{res})
}

// runSQL runs one query against a snapshot of d.
func (s *Server) runSQL(d *database, text string, caller abi.Identity, owner bool) (*sqlResult, int, error) {
	q, err := query.Parse(text)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	sdb := d.rdb.Store()
	schema := tableSchema(sdb.Tables())
	plan, err := query.Compile(q, schema)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	tables := append([]string{plan.Table.Name}, plan.Reads...)
	def := d.def()
	privileged := false
	for _, t := range tables {
		if err := checkReadable(def, t); err != nil {
			if !owner {
				return nil, http.StatusForbidden, err
			}
			privileged = true
		}
	}
	if privileged {
		s.log.Info("sql: the owner read private tables", "database", d.name, "tables", tables, "query", truncate(text, 200))
	}

	snap := sdb.Snapshot()
	env := &query.Env{Caller: caller, Source: snapshotSource{db: sdb, snap: snap}}
	res := &sqlResult{Table: plan.Table.Name, AsOwner: owner, Offset: snap.Offset(), Rows: []json.RawMessage{}}
	out := plan.Table
	if plan.Project != nil {
		out = &abi.TableDef{Name: plan.Table.Name}
		for _, c := range plan.Project {
			out.Columns = append(out.Columns, plan.Table.Columns[c])
		}
	}
	for _, c := range out.Columns {
		res.Columns = append(res.Columns, c.Name)
	}
	var count uint64
	var proj []abi.Value
	tooMany := false
	err = snapshotSource{db: sdb, snap: snap}.ScanTable(plan.Table.Name, func(row []abi.Value) bool {
		if !plan.Match(row, env) {
			return true
		}
		count++
		if plan.Count {
			return true
		}
		if len(res.Rows) >= MaxSQLRows {
			tooMany = true
			return false
		}
		if plan.Project != nil {
			proj = proj[:0]
			for _, c := range plan.Project {
				proj = append(proj, row[c])
			}
			row = proj
		}
		res.Rows = append(res.Rows, abi.AppendRowJSON(nil, out, row))
		return true
	})
	if err == nil {
		err = env.Err()
	}
	if err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("running the query: %w", err)
	}
	if tooMany {
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("the query matches more than %d rows: add a WHERE clause, or count with SELECT COUNT(*)", MaxSQLRows)
	}
	if plan.Count {
		res.Columns = []string{"count"}
		res.Rows = []json.RawMessage{fmt.Appendf(nil, `{"count":%d}`, count)}
	}
	return res, 0, nil
}
