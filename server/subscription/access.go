package subscription

import (
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
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

// viewFilters returns the conditions a connection's reads of table must
// also meet (ANDed into every read path: initial rows, live updates,
// one-off queries, recomputation), or ErrPrivateTable when it may not read
// the table at all.
//
// Today a table is either open to clients (`grant_access T to public`) or
// private; row-level grants will compile their rules here (with the
// connection's :caller) and return them as plans.
func (e *Engine) viewFilters(owner bool, table string) ([]*query.Plan, error) {
	if owner {
		return nil, nil
	}
	var def *abi.ModuleDef
	if e.def != nil {
		def = e.def()
	}
	other := ""
	if def != nil {
		for _, g := range def.Grants {
			if g.Table != table {
				continue
			}
			if g.To == "public" {
				return nil, nil
			}
			if other == "" {
				if g.To != "" {
					other = "to " + g.To
				} else {
					other = "where " + g.Where
				}
			}
		}
	}
	if other != "" {
		return nil, fmt.Errorf("%w: table %q is not open to clients yet: its grant (grant_access %s %s) is not enforced by this server version, which opens only tables with \"grant_access %s to public;\"",
			ErrPrivateTable, table, table, other, table)
	}
	return nil, fmt.Errorf("%w: table %q is private: no grant_access opens it to clients (add \"grant_access %s to public;\" to the schema to publish it)",
		ErrPrivateTable, table, table)
}

// compiled is one subscription query checked for a connection.
type compiled struct {
	key        string
	canon      string
	plan       *query.Plan
	filters    []*query.Plan
	caller     abi.Identity
	usesCaller bool
}

func (cq *compiled) match(row []abi.Value, env *query.Env) bool {
	if !cq.plan.Match(row, env) {
		return false
	}
	for _, f := range cq.filters {
		if !f.Match(row, env) {
			return false
		}
	}
	return true
}

// compileSubscription parses and checks one subscription query.
func (e *Engine) compileSubscription(sch schema, src string, caller abi.Identity, owner bool) (*compiled, error) {
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
		return nil, fmt.Errorf("%w: subscriptions cannot use IN (SELECT ...) subqueries yet (this one reads %v); subscribe to the tables separately or use a one-off query",
			ErrUnsupported, p.Reads)
	}
	filters, err := e.viewFilters(owner, p.Table.Name)
	if err != nil {
		return nil, err
	}
	cq := &compiled{canon: q.Canonical(), plan: p, filters: filters, usesCaller: p.UsesCaller}
	for _, f := range filters {
		cq.usesCaller = cq.usesCaller || f.UsesCaller
	}
	cq.key = cq.canon
	if cq.usesCaller {
		cq.caller = caller
		cq.key += "\x00" + string(caller[:])
	}
	// Connections with different filters must not share a query; with
	// filters derived from grants and :caller, the caller and the owner bit
	// determine them.
	if len(filters) > 0 {
		cq.key += "\x00f"
	}
	return cq, nil
}

// Revoked is a query set dropped because the connection may no longer read
// one of its tables.
type Revoked struct {
	Conn       abi.ConnectionID
	QuerySetID uint32
	Err        error
}

// ModuleChanged re-checks every live query set against the module's current
// grants (call it after a republish) and drops the sets that read a table no
// longer open to their connection; it returns them so that the server can
// send each client a SubscriptionError with Err. Sets that remain are
// unaffected: their rows did not change.
func (e *Engine) ModuleChanged() []Revoked {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.snapshotLocked()
	var out []Revoked
	for _, c := range e.conns {
		ids := make([]uint32, 0, len(c.sets))
		for id := range c.sets {
			ids = append(ids, id)
		}
		sortU32(ids)
		for _, id := range ids {
			s := c.sets[id]
			for _, uq := range s.queries {
				if _, err := e.viewFilters(c.owner, uq.table); err != nil {
					e.removeSetLocked(s)
					out = append(out, Revoked{Conn: c.id, QuerySetID: id, Err: err})
					break
				}
			}
		}
	}
	return out
}
