package schema

import (
	"errors"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
)

// lifecycle maps the reserved reducer names to their lifecycle.
var lifecycle = map[string]string{
	abi.LifecycleInit:               abi.LifecycleInit,
	abi.LifecycleClientConnected:    abi.LifecycleClientConnected,
	abi.LifecycleClientDisconnected: abi.LifecycleClientDisconnected,
}

// check reports the mistakes a parser cannot see: duplicates, attributes on
// the wrong types, unknown columns and tables.
func (p *parser) check(f *file) {
	tables := map[string]*tableDecl{}
	for _, t := range f.tables {
		p.checkName(t.name, t.pos, "table")
		if prev, dup := tables[t.name]; dup {
			p.errorf(t.pos, "table %s is declared twice (first at %s)", t.name, lineCol(prev.pos))
			continue
		}
		tables[t.name] = t
		p.checkTable(t)
	}
	reducers := map[string]*reducerDecl{}
	for _, r := range f.reducers {
		p.checkName(r.name, r.pos, "reducer")
		if prev, dup := reducers[r.name]; dup {
			p.errorf(r.pos, "reducer %s is declared twice (first at %s)", r.name, lineCol(prev.pos))
			continue
		}
		reducers[r.name] = r
		params := map[string]bool{}
		for _, c := range r.params {
			if params[c.name] {
				p.errorf(c.pos, "reducer %s has two parameters named %s", r.name, c.name)
			}
			params[c.name] = true
		}
		if _, ok := lifecycle[r.name]; ok {
			if len(r.params) > 0 {
				p.errorf(r.params[0].pos, "lifecycle reducer %s takes no parameters; declare it as reducer %s();", r.name, r.name)
			}
			if r.ret != nil {
				p.errorf(r.retPos, "lifecycle reducer %s returns nothing; remove \"-> %s\"", r.name, r.ret)
			}
		}
		if r.name == "auth" && r.ret != nil && r.ret.Kind != abi.KindIdentity {
			p.errorf(r.retPos, "reducer auth must return IdentityId (the identity the host binds to the connection), not %s", r.ret)
		}
	}
	for _, g := range f.grants {
		if _, ok := tables[g.Table]; !ok && !isSystemTable(g.Table) {
			p.errorf(g.Pos, "grant_access names table %s, which is not declared%s", g.Table, suggest(g.Table, tableNames(f)))
		}
	}
}

// isSystemTable: the host adds its system tables to every database, and a
// module may open them to clients with a grant like its own tables.
func isSystemTable(name string) bool {
	for _, t := range abi.SystemTables() {
		if t.Name == name {
			return true
		}
	}
	return false
}

func (p *parser) checkName(name string, pos abi.Pos, what string) {
	if strings.HasPrefix(name, "__") {
		p.errorf(pos, "%s name %s is reserved: names starting with \"__\" belong to the system", what, name)
	}
	if what == "table" && abi.IsReservedTableName(name) {
		p.errorf(pos, "table name %s is reserved: every database has the host's %s system table (identity, issuer, subject, first_seen, last_seen), which modules read but never write; rename your table", name, abi.IdentityTableName)
	}
}

func (p *parser) checkTable(t *tableDecl) {
	if len(t.columns) == 0 {
		p.errorf(t.pos, "table %s has no columns", t.name)
	}
	cols := map[string]*columnDecl{}
	var pk *columnDecl
	for _, c := range t.columns {
		p.checkName(c.name, c.pos, "column")
		if prev, dup := cols[c.name]; dup {
			p.errorf(c.pos, "table %s has two columns named %s (first at %s)", t.name, c.name, lineCol(prev.pos))
			continue
		}
		cols[c.name] = c
		seen := map[string]bool{}
		for _, a := range c.attrs {
			if seen[a.name] {
				p.errorf(a.pos, "attribute %s is repeated on column %s", a.name, c.name)
			}
			seen[a.name] = true
			switch a.name {
			case "primarykey":
				if pk != nil {
					p.errorf(a.pos, "table %s has a second primary key %s (the first is %s); a table has at most one", t.name, c.name, pk.name)
				} else {
					pk = c
				}
			case "autoinc":
				if !c.typ.Kind.IsInteger() {
					p.errorf(a.pos, "autoinc needs an integer column; %s is %s", c.name, c.typ)
				}
			case "id":
				if c.typ.Kind != abi.KindIdentity {
					p.errorf(a.pos, "#[spacetimedb(id)] marks an IdentityId column; %s is %s", c.name, c.typ)
				}
			case "index":
				if len(a.columns) > 0 {
					p.errorf(a.pos, "a multi-column index goes before the table: #[spacetimedb(index(btree, columns = [...]))]")
				}
			}
			if a.name != "id" && a.name != "autoinc" && !keyable(c.typ) {
				p.errorf(a.pos, "%s cannot be put on column %s of type %s: keys and indexes need a scalar type", a.name, c.name, c.typ)
			}
		}
	}
	indexes := map[string]abi.Pos{}
	for _, a := range t.attrs {
		if a.name != "index" || len(a.columns) == 0 {
			continue
		}
		used := map[string]bool{}
		for i, name := range a.columns {
			c, ok := cols[name]
			switch {
			case !ok:
				p.errorf(a.colPos[i], "index names column %s, which table %s does not have%s", name, t.name, suggest(name, columnNames(t)))
			case used[name]:
				p.errorf(a.colPos[i], "index lists column %s twice", name)
			case !keyable(c.typ):
				p.errorf(a.colPos[i], "column %s of type %s cannot be indexed: indexes need a scalar type", name, c.typ)
			}
			used[name] = true
		}
		n := abi.IndexName(t.name, a.columns...)
		if prev, dup := indexes[n]; dup {
			p.errorf(a.pos, "index %s is declared twice (first at %s)", n, lineCol(prev))
		}
		indexes[n] = a.pos
	}
}

// keyable reports whether a column of type t can be a key or be indexed:
// Option and Vec values have no useful order for a B-tree key.
func keyable(t abi.Type) bool { return t.Kind != abi.KindOption && t.Kind != abi.KindVec }

func tableNames(f *file) []string {
	var out []string
	for _, t := range f.tables {
		out = append(out, t.name)
	}
	return out
}

func columnNames(t *tableDecl) []string {
	var out []string
	for _, c := range t.columns {
		out = append(out, c.name)
	}
	return out
}

// suggest returns "; did you mean X?" when a known name differs from name
// only in case or by one edit, else the list of known names.
func suggest(name string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, name) || editDistance(k, name) == 1 {
			return "; did you mean " + k + "?"
		}
	}
	if len(known) == 0 {
		return ""
	}
	return " (declared: " + strings.Join(known, ", ") + ")"
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// moduleDef turns a checked file into the ModuleDef the guest exports.
func (f *file) moduleDef() *abi.ModuleDef {
	m := &abi.ModuleDef{ABIVersion: abi.Version, Tables: []abi.TableDef{}, Reducers: []abi.ReducerDef{}}
	for _, t := range f.tables {
		td := abi.TableDef{Name: t.name}
		for _, c := range t.columns {
			cd := abi.ColumnDef{Name: c.name, Type: c.typ}
			for _, a := range c.attrs {
				switch a.name {
				case "primarykey":
					cd.PrimaryKey = true
				case "unique":
					cd.Unique = true
				case "autoinc":
					cd.AutoInc = true
				case "id":
					cd.Identity = true
				case "index":
					td.Indexes = append(td.Indexes, abi.IndexDef{Name: abi.IndexName(t.name, c.name), Columns: []string{c.name}})
				}
			}
			td.Columns = append(td.Columns, cd)
		}
		for _, a := range t.attrs {
			td.Indexes = append(td.Indexes, abi.IndexDef{Name: abi.IndexName(t.name, a.columns...), Columns: a.columns})
		}
		td.Indexes = td.ImpliedIndexes()
		m.Tables = append(m.Tables, td)
	}
	for _, r := range f.reducers {
		rd := abi.ReducerDef{Name: r.name, Params: []abi.ParamDef{}, Return: r.ret, Lifecycle: lifecycle[r.name]}
		for _, c := range r.params {
			rd.Params = append(rd.Params, abi.ParamDef{Name: c.name, Type: c.typ})
		}
		m.Reducers = append(m.Reducers, rd)
	}
	m.Grants = f.grants
	return m
}

// checkGrants compiles every grant's rule against the module's tables, as
// the host will at publish, and reports each problem where it is in the
// file: a rule that does not parse, names a column or table that does not
// exist, or compares values of different types.
func (p *parser) checkGrants(f *file, def *abi.ModuleDef) {
	tables := grantSchema{}
	for i := range def.Tables {
		tables[def.Tables[i].Name] = &def.Tables[i]
	}
	for _, t := range abi.SystemTables() {
		if _, declared := tables[t.Name]; !declared {
			tables[t.Name] = &t
		}
	}
	_, err := query.CompileGrants(def.Grants, tables)
	if err == nil {
		return
	}
	var ges []*query.GrantError
	for _, e := range unwrapAll(err) {
		var ge *query.GrantError
		if errors.As(e, &ge) {
			ges = append(ges, ge)
		}
	}
	for _, ge := range ges {
		pos := ge.Grant.Pos
		for i, g := range f.grants {
			if g.Pos == ge.Grant.Pos && ge.At.Line > 0 {
				pos = posIn(f.wherePos[i], g.Where, ge.At.Offset)
			}
		}
		p.errorf(pos, "in the rule of grant_access %s: %s", ge.Grant.Table, ge.Msg)
	}
}

type grantSchema map[string]*abi.TableDef

func (s grantSchema) Table(name string) (*abi.TableDef, bool) { t, ok := s[name]; return t, ok }

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// posIn is the file position of byte off of text, which starts at start.
func posIn(start abi.Pos, text string, off int) abi.Pos {
	pos := start
	if off > len(text) {
		off = len(text)
	}
	for _, r := range text[:off] {
		if r == '\n' {
			pos.Line++
			pos.Column = 1
		} else {
			pos.Column++
		}
	}
	return pos
}
