package query

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
)

// ErrGrant is matched (errors.Is) by every error in a grant_access
// statement: a rule that does not parse, or names a table or column that
// does not exist, or compares values of different types.
var ErrGrant = errors.New("invalid grant_access")

// GrantError is one grant_access statement the host cannot enforce.
type GrantError struct {
	Grant abi.GrantDef
	// At is where in the rule's text (Grant.Where) the problem is; zero when
	// the problem is the statement itself (its table).
	At  Pos
	Msg string
	// Err is the query package's error (ErrSyntax, ErrUnknownTable,
	// ErrUnknownColumn or ErrType), nil for a statement-level problem.
	Err error
}

func (e *GrantError) Error() string {
	where := ""
	if e.At.Line > 0 {
		if e.At.Line == 1 {
			where = fmt.Sprintf(" (column %d of the rule)", e.At.Column)
		} else {
			where = fmt.Sprintf(" (line %d, column %d of the rule)", e.At.Line, e.At.Column)
		}
	}
	return fmt.Sprintf("%s: %s%s: %s", e.Grant.Pos, describeGrant(e.Grant), where, e.Msg)
}

// Unwrap lets errors.Is find ErrGrant and the query error's kind.
func (e *GrantError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrGrant}
	}
	return []error{ErrGrant, e.Err}
}

func describeGrant(g abi.GrantDef) string {
	if g.To != "" {
		return "grant_access " + g.Table + " to " + g.To
	}
	w := g.Where
	if len(w) > 80 {
		w = w[:77] + "..."
	}
	return "grant_access " + g.Table + " where " + w
}

// Access is what the grant_access statements of one table allow. Several
// grants are OR'ed: a row is readable when any of them allows it.
type Access struct {
	Table string
	// Public: every client reads every row.
	Public bool
	// Authenticated: every client with a non-zero identity reads every row.
	Authenticated bool
	// Rules are the row filters (`grant_access T where ...`), OR'ed; a
	// rule's own top-level ORs are split into rules of their own.
	Rules []*Plan
	// Reads lists the tables the rules' subqueries read: a change to one of
	// them can change which rows the rules allow.
	Reads []string
	// RulesUseCaller is set when some rule depends on who reads.
	RulesUseCaller bool
	// Fingerprint identifies the table's grants (equal grants, equal
	// fingerprint), so views can be compared across republishes.
	Fingerprint string
	// Grants are the statements, as written.
	Grants []abi.GrantDef
}

// Grants are a module's compiled grant_access statements, by table.
type Grants struct {
	tables map[string]*Access
	// Broken are the statements that failed to compile (their tables are
	// opened only by the others).
	Broken []*GrantError
}

// Table returns the grants of a table, or nil when no grant names it (the
// table is private).
func (g *Grants) Table(name string) *Access {
	if g == nil {
		return nil
	}
	return g.tables[name]
}

// CompileGrants checks every grant_access statement against schema and
// compiles its rule. It always returns the grants that compiled; the error,
// when not nil, joins one *GrantError per statement that did not.
//
// A rule is a condition over the table's columns and :caller, with IN
// subqueries over any table (a role lookup such as
// `:caller in (select identity_id from User where role = 'admin')`). Rules
// are the schema author's: their subqueries read every row of the tables
// they name, whatever the reader may see.
func CompileGrants(grants []abi.GrantDef, schema Schema) (*Grants, error) {
	out := &Grants{tables: map[string]*Access{}}
	var errs []error
	fail := func(ge *GrantError) {
		out.Broken = append(out.Broken, ge)
		errs = append(errs, ge)
	}
	for _, g := range grants {
		table, ok := schema.Table(g.Table)
		if !ok {
			fail(&GrantError{Grant: g, Msg: fmt.Sprintf("no table named %q", g.Table)})
			continue
		}
		var rules []*Plan
		switch {
		case g.To != "" && g.Where != "":
			fail(&GrantError{Grant: g, Msg: "a grant is either \"to public\", \"to authenticated\" or \"where <rule>\", not both"})
			continue
		case g.To == "public" || g.To == "authenticated":
		case g.To != "":
			fail(&GrantError{Grant: g, Msg: fmt.Sprintf("unknown audience %q; write \"to public\", \"to authenticated\" or \"where <rule>\"", g.To)})
			continue
		case strings.TrimSpace(g.Where) == "":
			fail(&GrantError{Grant: g, Msg: "the rule is empty; write a condition, as in where owner = :caller"})
			continue
		default:
			e, err := ParseExpr(g.Where)
			if err != nil {
				fail(grantErr(g, err))
				continue
			}
			if _, err = CompileExpr(e, table, schema); err != nil {
				fail(grantErr(g, err))
				continue
			}
			// A rule's top-level ORs are rules of their own (the same rows
			// pass), so each can have an equality to index readers by:
			// `sender = :caller or recipient = :caller` is indexed under
			// both columns instead of tested for every reader.
			for _, d := range disjuncts(e) {
				p, err := CompileExpr(d, table, schema)
				if err != nil {
					panic(err) // a part of an expression that compiled
				}
				rules = append(rules, p)
			}
		}
		a := out.tables[g.Table]
		if a == nil {
			a = &Access{Table: g.Table}
			out.tables[g.Table] = a
		}
		a.Grants = append(a.Grants, g)
		switch {
		case g.To == "public":
			a.Public = true
		case g.To == "authenticated":
			a.Authenticated = true
		default:
			for _, rule := range rules {
				a.Rules = append(a.Rules, rule)
				a.RulesUseCaller = a.RulesUseCaller || rule.UsesCaller
				for _, r := range rule.Reads {
					a.Reads = appendUnique(a.Reads, r)
				}
			}
		}
	}
	for _, a := range out.tables {
		var parts []string
		for _, g := range a.Grants {
			if g.To != "" {
				parts = append(parts, "to "+g.To)
			} else {
				parts = append(parts, "where "+Format(mustParse(g.Where)))
			}
		}
		sort.Strings(parts)
		a.Fingerprint = strings.Join(parts, "\x00")
	}
	return out, errors.Join(errs...)
}

// disjuncts splits an expression at its top-level ORs.
func disjuncts(e Expr) []Expr {
	if l, ok := e.(*Logical); ok && l.Op == "OR" {
		return append(disjuncts(l.L), disjuncts(l.R)...)
	}
	return []Expr{e}
}

func mustParse(src string) Expr {
	e, err := ParseExpr(src)
	if err != nil {
		panic(err) // compiled above
	}
	return e
}

func grantErr(g abi.GrantDef, err error) *GrantError {
	var pe *Error
	var ce *CompileError
	switch {
	case errors.As(err, &pe):
		return &GrantError{Grant: g, At: pe.Pos, Msg: pe.Msg, Err: ErrSyntax}
	case errors.As(err, &ce):
		return &GrantError{Grant: g, At: ce.Pos, Msg: ce.Msg, Err: ce.Kind}
	}
	return &GrantError{Grant: g, Msg: err.Error(), Err: err}
}
