package subscription

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

// schema presents the store's tables (the authority on column order) to the
// query compiler. It is built per call, so tables added by a republish are
// seen at once.
type schema map[string]*abi.TableDef

func (s schema) Table(name string) (*abi.TableDef, bool) { t, ok := s[name]; return t, ok }

func (e *Engine) schema() schema {
	tabs := e.db.Tables()
	s := make(schema, len(tabs))
	for i := range tabs {
		s[tabs[i].Name] = &tabs[i]
	}
	return s
}

// grantState is the module's grants compiled against the store's tables,
// kept until the module or the tables change.
type grantState struct {
	def  *abi.ModuleDef
	ntab int
	g    *query.Grants
}

// grants returns the current module's compiled grant_access statements.
// A statement that does not compile (a module published before the host
// checked rules) opens nothing; it is logged once per module.
func (e *Engine) grants() *query.Grants {
	var def *abi.ModuleDef
	if e.def != nil {
		def = e.def()
	}
	tabs := e.db.Tables()
	e.gmu.Lock()
	defer e.gmu.Unlock()
	if e.gs != nil && e.gs.def == def && e.gs.ntab == len(tabs) {
		return e.gs.g
	}
	sch := make(schema, len(tabs))
	for i := range tabs {
		sch[tabs[i].Name] = &tabs[i]
	}
	var defs []abi.GrantDef
	if def != nil {
		defs = def.Grants
	}
	g, err := query.CompileGrants(defs, sch)
	if err != nil {
		e.cfg.log.Error("subscription: grant_access statements that cannot be enforced open nothing; fix them and republish", "err", err)
	}
	e.gs = &grantState{def: def, ntab: len(tabs), g: g}
	return g
}

// CheckGrants compiles a module's grant_access statements against its
// tables as the engine will, so that a publish can refuse rules that do not
// parse or name a table or column that does not exist. Each error names the
// statement's file, line and column (errors.Is query.ErrGrant).
func CheckGrants(def *abi.ModuleDef) error {
	sch := make(schema, len(def.Tables))
	for i := range def.Tables {
		sch[def.Tables[i].Name] = &def.Tables[i]
	}
	_, err := query.CompileGrants(def.Grants, sch)
	return err
}

// view is what one reader may see of one table: every row, or the rows that
// at least one rule allows.
type view struct {
	all   bool
	rules []*query.Plan
	// fp identifies the rules (two views with the same fp and caller see
	// the same rows).
	fp         string
	usesCaller bool
	// reads lists the tables the rules' subqueries read.
	reads []string
}

// allows evaluates the rules; env must read the rules' subqueries from the
// same state as the row, with every row visible (rules are the schema
// author's, not the reader's).
func (v *view) allows(row []abi.Value, env *query.Env) bool {
	if v.all {
		return true
	}
	for _, r := range v.rules {
		if r.Match(row, env) {
			return true
		}
	}
	return false
}

// viewOf decides what a reader may see of a table, or returns an error
// (ErrPrivateTable) when it may read none of it. The owner reads every row.
// A table is open in full by `to public`, and by `to authenticated` to any
// non-zero identity; otherwise by its row rules, OR'ed. With no grant that
// applies, the table is private: the read fails, it does not come back
// empty.
func viewOf(g *query.Grants, owner bool, caller abi.Identity, table string) (view, error) {
	if owner {
		return view{all: true}, nil
	}
	a := g.Table(table)
	if a == nil {
		broken := ""
		if g != nil {
			for _, b := range g.Broken {
				if b.Grant.Table == table {
					broken = fmt.Sprintf("; its grant at %s cannot be enforced (%s), fix it and republish", b.Grant.Pos, b.Msg)
					break
				}
			}
		}
		return view{}, fmt.Errorf("%w: no grant_access opens table %q to clients%s (the schema can add \"grant_access %s to public;\", \"... to authenticated;\" or a row rule such as \"grant_access %s where owner = :caller;\")",
			ErrPrivateTable, table, broken, table, table)
	}
	if a.Public || a.Authenticated && !caller.IsZero() {
		return view{all: true}, nil
	}
	if len(a.Rules) == 0 {
		return view{}, fmt.Errorf("%w: only signed-in clients may read table %q (grant_access %s to authenticated); sign in first: call the auth reducer, or connect with a session token",
			ErrPrivateTable, table, table)
	}
	return view{rules: a.Rules, fp: a.Fingerprint, usesCaller: a.RulesUseCaller, reads: a.Reads}, nil
}

// compiled is one subscription query checked for a reader.
type compiled struct {
	key   string
	canon string
	plan  *query.Plan
	view  view
	// caller is the reader's identity (what :caller means for this query).
	caller     abi.Identity
	usesCaller bool
}

func (cq *compiled) match(row []abi.Value, env *query.Env) bool {
	return cq.plan.Match(row, env) && cq.view.allows(row, env)
}

// compileFor checks a compiled plan against a reader's access and keys it:
// identical queries share one evaluation when they see the table alike
// (same rules) and, when the query or the rules use :caller, have the same
// caller.
func compileFor(g *query.Grants, p *query.Plan, canon string, caller abi.Identity, owner bool) (*compiled, error) {
	v, err := viewOf(g, owner, caller, p.Table.Name)
	if err != nil {
		return nil, err
	}
	cq := &compiled{canon: canon, plan: p, view: v, caller: caller, usesCaller: p.UsesCaller || v.usesCaller}
	var b strings.Builder
	b.WriteString(canon)
	if cq.usesCaller {
		b.WriteByte(0)
		b.Write(caller[:])
	}
	if !v.all {
		b.WriteString("\x00r")
		b.WriteString(v.fp)
	}
	cq.key = b.String()
	return cq, nil
}

// compileSubscription parses and checks one subscription query.
func (e *Engine) compileSubscription(sch schema, g *query.Grants, src string, caller abi.Identity, owner bool) (*compiled, error) {
	q, err := query.Parse(src)
	if err != nil {
		return nil, err
	}
	if q.Count || q.Columns != nil {
		return nil, fmt.Errorf("%w: subscriptions receive whole rows, so they must be SELECT * FROM %s [WHERE ...]; projections and COUNT(*) work in one-off queries",
			ErrUnsupported, q.Table)
	}
	p, err := query.Compile(q, sch)
	if err != nil {
		return nil, err
	}
	if len(p.Reads) > 0 {
		return nil, fmt.Errorf("%w: subscriptions cannot use IN (SELECT ...) subqueries (this one reads %v); subscribe to the tables separately or use a one-off query",
			ErrUnsupported, p.Reads)
	}
	return compileFor(g, p, q.Canonical(), caller, owner)
}

// grantSource feeds grant rules' subqueries from one state, every row
// visible: a rule such as `:caller in (select identity_id from User where
// role = 'admin')` must see the admins even when the reader may not read
// User.
type grantSource struct {
	db   *store.Database
	snap *store.Snapshot
}

func (s grantSource) ScanTable(table string, fn func(row []abi.Value) bool) error {
	tid, err := s.db.TableID(table)
	if err != nil {
		return err
	}
	def, err := s.db.Table(tid)
	if err != nil {
		return err
	}
	it, err := s.snap.Scan(tid)
	if errors.Is(err, store.ErrNoSuchTable) {
		return nil // added after this state: empty in it
	}
	if err != nil {
		return err
	}
	defer it.Close()
	types := def.ColumnTypes()
	for raw, ok := it.Next(); ok; raw, ok = it.Next() {
		vals, err := abi.DecodeRow(types, raw)
		if err != nil {
			return err
		}
		if !fn(vals) {
			return nil
		}
	}
	return nil
}

// Revoked is a query set dropped because the connection may no longer read
// one of its tables (after a republish or an identity change), or because
// its view could not be recomputed.
type Revoked struct {
	Conn       abi.ConnectionID
	QuerySetID uint32
	Err        error
}

// revokeLocked drops a set and tells its connection, in stream order, when
// a revoke handler is configured.
func (e *Engine) revokeLocked(s *qset, err error) Revoked {
	r := Revoked{Conn: s.conn.id, QuerySetID: s.id, Err: err}
	e.removeSetLocked(s)
	if e.cfg.onRevoke != nil {
		rc := r
		s.conn.box.pushAndFlush(item{revoked: &rc, onRevoke: e.cfg.onRevoke})
	}
	return r
}

// ModuleChanged re-checks every live query set against the module's current
// grants (call it after a republish). Sets that read a table no longer open
// to their connection are dropped and returned (and, with
// WithRevokeHandler, reported through it in stream order); sets whose
// grants changed are recomputed and receive the rows that left and entered
// their view in one Recomputed TransactionUpdate. Sets whose grants did not
// change are untouched.
func (e *Engine) ModuleChanged() []Revoked {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.snapshotLocked()
	e.stateCache = nil // keyed by the old rules' plans
	conns := make([]*conn, 0, len(e.conns))
	for _, c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	sortConns(conns)
	var out []Revoked
	for _, c := range conns {
		c.subMu.Lock()
		e.mu.Lock()
		caller, gone := c.caller, c.gone
		e.mu.Unlock()
		if !gone {
			out = append(out, e.recompute(c, caller, caller, "the database's module was updated")...)
		}
		c.subMu.Unlock()
	}
	return out
}
