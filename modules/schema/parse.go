package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
)

// FileName is the schema file's name in a module directory.
const FileName = "schema.spacetimedb"

// MaxErrors is how many errors Parse reports before it gives up on a file.
const MaxErrors = 10

// maxTypeDepth bounds Option<Vec<...>> nesting, as the abi package does.
const maxTypeDepth = 16

// ErrSchema is wrapped by every error Parse returns, so callers can tell a
// schema mistake (the user's to fix) from an I/O failure.
var ErrSchema = errors.New("invalid schema")

// Error is one problem in a schema file, with where it is.
type Error struct {
	Pos abi.Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found in a file, in source order. It wraps ErrSchema.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is find ErrSchema and errors.As find each *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, 0, len(l)+1)
	out = append(out, ErrSchema)
	for _, e := range l {
		out = append(out, e)
	}
	return out
}

// ParseFile reads and parses a schema file.
func ParseFile(path string) (*abi.ModuleDef, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	return Parse(filepath.Base(path), src)
}

// ParseDir parses the schema.spacetimedb of a module directory.
func ParseDir(dir string) (*abi.ModuleDef, error) {
	return ParseFile(filepath.Join(dir, FileName))
}

// Parse parses the schema language and checks its meaning. file names the
// source in error positions. On error the result is nil and the error is an
// ErrorList holding up to MaxErrors problems.
func Parse(file string, src []byte) (*abi.ModuleDef, error) {
	p := &parser{lex: newLexer(file, string(src)), src: string(src)}
	f, ok := p.run()
	if !ok || len(p.errs) > 0 {
		return nil, p.errs
	}
	def := f.moduleDef()
	if p.checkGrantsSafe(f, def); len(p.errs) > 0 {
		return nil, p.errs
	}
	return def, nil
}

// checkGrantsSafe runs checkGrants, stopping at MaxErrors like run.
func (p *parser) checkGrantsSafe(f *file, def *abi.ModuleDef) {
	defer func() {
		if r := recover(); r != nil {
			if _, bail := r.(errBail); !bail {
				panic(r)
			}
		}
	}()
	p.checkGrants(f, def)
}

// run parses and checks, stopping early when MaxErrors are reached.
func (p *parser) run() (f *file, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, bail := r.(errBail); !bail {
				panic(r)
			}
			ok = false
		}
	}()
	p.next()
	f = p.parseFile()
	if len(p.errs) == 0 {
		p.check(f)
	}
	return f, true
}

// The syntax tree keeps positions for semantic errors.
type file struct {
	tables   []*tableDecl
	reducers []*reducerDecl
	grants   []abi.GrantDef
	// wherePos is where each grant's rule starts (zero for "to ..." grants).
	wherePos []abi.Pos
}

type attr struct {
	name    string // primarykey, id, unique, autoinc, index
	pos     abi.Pos
	columns []string // for a table-level index(btree, columns = [...])
	colPos  []abi.Pos
}

type tableDecl struct {
	name    string
	pos     abi.Pos
	attrs   []attr
	columns []*columnDecl
}

type columnDecl struct {
	name    string
	pos     abi.Pos
	typ     abi.Type
	typePos abi.Pos
	attrs   []attr
}

type reducerDecl struct {
	name   string
	pos    abi.Pos
	params []*columnDecl
	ret    *abi.Type
	retPos abi.Pos
}

type parser struct {
	lex  *lexer
	src  string
	tok  token
	errs ErrorList
}

// errBail stops parsing once MaxErrors are recorded.
type errBail struct{}

func (p *parser) next() { p.tok = p.lex.next() }

// peek returns the token after the current one without consuming it.
func (p *parser) peek() token {
	l := *p.lex
	return l.next()
}

// atStatement reports whether the current token starts a top-level statement
// rather than a column that happens to be named like a keyword: tutorial
// schemas put columns at column 1 too, so position alone cannot tell.
func (p *parser) atStatement() bool {
	return p.tok.kind == tIdent && isTopKeyword(p.tok.text) && p.peek().kind == tIdent
}

// lineCol formats a position without its file, for "first declared at" notes.
func lineCol(pos abi.Pos) string { return fmt.Sprintf("%d:%d", pos.Line, pos.Column) }

func (p *parser) errorf(pos abi.Pos, format string, args ...any) {
	if len(p.errs) > 0 {
		// One mistake often causes a second at the same place; report it once.
		if last := p.errs[len(p.errs)-1]; last.Pos == pos {
			return
		}
	}
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	if len(p.errs) >= MaxErrors {
		p.errs = append(p.errs, &Error{Pos: pos, Msg: "too many errors; stopping"})
		panic(errBail{})
	}
}

func (p *parser) is(text string) bool {
	return (p.tok.kind == tPunct || p.tok.kind == tIdent) && p.tok.text == text
}

// expect consumes the punctuation or keyword text, or reports what was found.
func (p *parser) expect(text, context string) bool {
	if p.is(text) {
		p.next()
		return true
	}
	p.errorf(p.tok.pos, "expected %q %s, found %s", text, context, p.tok)
	return false
}

func (p *parser) ident(what string) (string, abi.Pos, bool) {
	if p.tok.kind != tIdent {
		p.errorf(p.tok.pos, "expected %s, found %s", what, p.tok)
		return "", p.tok.pos, false
	}
	name, pos := p.tok.text, p.tok.pos
	p.next()
	return name, pos, true
}

// syncTop skips to the start of the next top-level statement.
func (p *parser) syncTop() {
	for p.tok.kind != tEOF {
		if p.atStatement() {
			return
		}
		if p.is(";") || p.is("}") {
			p.next()
			return
		}
		if p.is("#") && p.tok.pos.Column == 1 {
			return
		}
		p.next()
	}
}

func isTopKeyword(s string) bool { return s == "table" || s == "reducer" || s == "grant_access" }

func (p *parser) parseFile() *file {
	f := &file{}
	for p.tok.kind != tEOF {
		start := p.tok.off
		var attrs []attr
		for p.is("#") {
			if a, ok := p.parseAttr(); ok {
				attrs = append(attrs, a)
			}
		}
		switch {
		case p.is("table"):
			if t := p.parseTable(attrs); t != nil {
				f.tables = append(f.tables, t)
			}
		case p.is("reducer"):
			p.noAttrs(attrs, "a reducer")
			if r := p.parseReducer(); r != nil {
				f.reducers = append(f.reducers, r)
			}
		case p.is("grant_access"):
			p.noAttrs(attrs, "grant_access")
			if g, wpos, ok := p.parseGrant(); ok {
				f.grants = append(f.grants, g)
				f.wherePos = append(f.wherePos, wpos)
			}
		default:
			p.errorf(p.tok.pos, "expected \"table\", \"reducer\" or \"grant_access\", found %s", p.tok)
			p.next()
			p.syncTop()
		}
		if p.tok.off == start && p.tok.kind != tEOF { // always make progress
			p.next()
		}
	}
	return f
}

func (p *parser) noAttrs(attrs []attr, what string) {
	if len(attrs) > 0 {
		p.errorf(attrs[0].pos, "attributes cannot be put on %s", what)
	}
}

// parseAttr parses #[spacetimedb(NAME)] or #[spacetimedb(index(btree[, columns = [a, b]]))].
func (p *parser) parseAttr() (attr, bool) {
	a := attr{pos: p.tok.pos}
	p.next() // #
	if !p.expect("[", "after '#'") {
		p.skipAttr()
		return a, false
	}
	if !p.is("spacetimedb") {
		p.errorf(p.tok.pos, "expected \"spacetimedb\" in an attribute (as in #[spacetimedb(primarykey)]), found %s", p.tok)
		p.skipAttr()
		return a, false
	}
	p.next()
	if !p.expect("(", "after \"spacetimedb\"") {
		p.skipAttr()
		return a, false
	}
	name, pos, ok := p.ident("an attribute name (primarykey, id, unique, autoinc or index(btree))")
	if !ok {
		p.skipAttr()
		return a, false
	}
	a.name = name
	switch name {
	case "primarykey", "primary_key", "id", "unique", "autoinc", "auto_inc":
		a.name = strings.ReplaceAll(name, "_", "")
	case "index":
		if !p.expect("(", "after \"index\" (as in index(btree))") {
			p.skipAttr()
			return a, false
		}
		if !p.is("btree") {
			p.errorf(p.tok.pos, "expected index kind \"btree\", found %s (only B-tree indexes exist)", p.tok)
			p.skipAttr()
			return a, false
		}
		p.next()
		if p.is(",") {
			p.next()
			if !p.expect("columns", "in index(btree, columns = [a, b])") || !p.expect("=", "after \"columns\"") ||
				!p.expect("[", "to start the column list") {
				p.skipAttr()
				return a, false
			}
			for !p.is("]") {
				c, cpos, ok := p.ident("a column name")
				if !ok {
					p.skipAttr()
					return a, false
				}
				a.columns = append(a.columns, c)
				a.colPos = append(a.colPos, cpos)
				if !p.is(",") {
					break
				}
				p.next()
			}
			if !p.expect("]", "to close the column list") {
				p.skipAttr()
				return a, false
			}
		}
		if !p.expect(")", "to close index(...)") {
			p.skipAttr()
			return a, false
		}
	default:
		p.errorf(pos, "unknown attribute %q (known: primarykey, id, unique, autoinc, index(btree))", name)
		p.skipAttr()
		return a, false
	}
	if !p.expect(")", "to close spacetimedb(...)") || !p.expect("]", "to close the attribute") {
		p.skipAttr()
		return a, false
	}
	return a, true
}

// skipAttr skips to just after the attribute's closing ']' on the same line.
func (p *parser) skipAttr() {
	line := p.tok.pos.Line
	for p.tok.kind != tEOF && p.tok.pos.Line == line {
		if p.is("]") {
			p.next()
			return
		}
		p.next()
	}
}

func (p *parser) parseTable(attrs []attr) *tableDecl {
	p.next() // table
	name, pos, ok := p.ident("a table name after \"table\"")
	if !ok {
		p.syncTop()
		return nil
	}
	t := &tableDecl{name: name, pos: pos, attrs: attrs}
	for _, a := range attrs {
		if a.name != "index" || len(a.columns) == 0 {
			p.errorf(a.pos, "only #[spacetimedb(index(btree, columns = [...]))] can be put on a table; #[spacetimedb(%s)] goes on a column", a.name)
		}
	}
	if !p.expect("{", "after the table name") {
		p.syncTop()
		return nil
	}
	for !p.is("}") && p.tok.kind != tEOF {
		start := p.tok.off
		if p.atStatement() {
			p.errorf(p.tok.pos, "expected '}' to close table %s, found %s", name, p.tok)
			return t
		}
		c := p.parseColumn()
		if c != nil {
			t.columns = append(t.columns, c)
		}
		if p.is(",") {
			p.next()
			continue
		}
		if p.is("}") {
			break
		}
		if c != nil {
			p.errorf(p.tok.pos, "expected ',' or '}' after column %s, found %s", c.name, p.tok)
		}
		// Skip the rest of the broken column.
		for !p.is(",") && !p.is("}") && p.tok.kind != tEOF && !p.atStatement() {
			p.next()
		}
		if p.is(",") {
			p.next()
		}
		if p.tok.off == start {
			p.next()
		}
	}
	p.expect("}", "to close table "+name)
	return t
}

func (p *parser) parseColumn() *columnDecl {
	var attrs []attr
	for p.is("#") {
		if a, ok := p.parseAttr(); ok {
			attrs = append(attrs, a)
		}
	}
	name, pos, ok := p.ident("a column name")
	if !ok {
		return nil
	}
	c := &columnDecl{name: name, pos: pos, attrs: attrs}
	if !p.expect(":", "after column name "+name) {
		return nil
	}
	c.typePos = p.tok.pos
	t, ok := p.parseType(0)
	if !ok {
		return nil
	}
	c.typ = t
	return c
}

const knownTypes = "bool, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, String, Bytes, IdentityId, Timestamp, Option<T>, Vec<T>"

func (p *parser) parseType(depth int) (abi.Type, bool) {
	if depth > maxTypeDepth {
		p.errorf(p.tok.pos, "type nested deeper than %d levels", maxTypeDepth)
		return abi.Type{}, false
	}
	name, pos, ok := p.ident("a type (" + knownTypes + ")")
	if !ok {
		return abi.Type{}, false
	}
	t, err := abi.ParseType(name)
	if name == "Option" || name == "Vec" {
		if !p.expect("<", "after "+name+" (as in "+name+"<u64>)") {
			return abi.Type{}, false
		}
		elem, ok := p.parseType(depth + 1)
		if !ok {
			return abi.Type{}, false
		}
		if !p.expect(">", "to close "+name+"<"+elem.String()) {
			return abi.Type{}, false
		}
		if name == "Option" {
			return abi.OptionOf(elem), true
		}
		return abi.VecOf(elem), true
	}
	if err != nil {
		p.errorf(pos, "unknown type %q (known: %s)", name, knownTypes)
		return abi.Type{}, false
	}
	return t, true
}

func (p *parser) parseReducer() *reducerDecl {
	p.next() // reducer
	name, pos, ok := p.ident("a reducer name after \"reducer\"")
	if !ok {
		p.syncTop()
		return nil
	}
	r := &reducerDecl{name: name, pos: pos}
	if !p.expect("(", "after the reducer name (as in reducer "+name+"(arg: String);)") {
		p.syncTop()
		return nil
	}
	for !p.is(")") {
		c := p.parseColumn()
		if c == nil {
			p.syncTop()
			return nil
		}
		for _, a := range c.attrs {
			p.errorf(a.pos, "attributes cannot be put on reducer parameters")
		}
		r.params = append(r.params, c)
		if !p.is(",") {
			break
		}
		p.next()
	}
	if !p.expect(")", "to close the parameter list of "+name) {
		p.syncTop()
		return nil
	}
	if p.is("->") {
		p.next()
		r.retPos = p.tok.pos
		t, ok := p.parseType(0)
		if !ok {
			p.syncTop()
			return nil
		}
		r.ret = &t
	}
	if !p.expect(";", "after the reducer declaration") {
		p.syncTop()
		return nil
	}
	return r
}

// parseGrant parses grant_access T to public|authenticated; and
// grant_access T where FILTER; keeping FILTER's source text (comments
// blanked out) and where it starts. The filter is compiled by checkGrants.
func (p *parser) parseGrant() (g abi.GrantDef, wpos abi.Pos, ok bool) {
	g = abi.GrantDef{Pos: p.tok.pos}
	p.next() // grant_access
	name, _, ok := p.ident("a table name after \"grant_access\"")
	if !ok {
		p.syncTop()
		return g, wpos, false
	}
	g.Table = name
	switch {
	case p.is("to"):
		p.next()
		if !p.is("public") && !p.is("authenticated") {
			p.errorf(p.tok.pos, "expected \"public\" or \"authenticated\" after \"to\", found %s", p.tok)
			p.syncTop()
			return g, wpos, false
		}
		g.To = p.tok.text
		p.next()
	case p.is("where"):
		p.next()
		start := p.tok.off
		wpos = p.tok.pos
		end := start
		for !p.is(";") && p.tok.kind != tEOF {
			if p.tok.kind == tIllegal {
				p.errorf(p.tok.pos, "unexpected %s in the filter of grant_access %s", p.tok, name)
				p.syncTop()
				return g, wpos, false
			}
			end = p.tok.end
			p.next()
		}
		g.Where = blankComments(p.src[start:end])
		if strings.TrimSpace(g.Where) == "" {
			p.errorf(wpos, "expected a row filter after \"where\" (as in where owner = :caller)")
		}
	default:
		p.errorf(p.tok.pos, "expected \"to public\", \"to authenticated\" or \"where ...\" after grant_access %s, found %s", name, p.tok)
		p.syncTop()
		return g, wpos, false
	}
	if !p.expect(";", "after the grant_access statement") {
		p.syncTop()
		return g, wpos, false
	}
	return g, wpos, true
}

// blankComments replaces the schema language's comments in a rule's text
// with spaces (newlines kept), so that the query parser, which does not know
// them, sees the same offsets.
func blankComments(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\'' || b[i] == '"':
			q := b[i]
			for i++; i < len(b) && b[i] != q; i++ {
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '/':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '*':
			b[i], b[i+1] = ' ', ' '
			for i += 2; i < len(b) && !(b[i] == '*' && i+1 < len(b) && b[i+1] == '/'); i++ {
				if b[i] != '\n' {
					b[i] = ' '
				}
			}
			if i < len(b) {
				b[i], b[i+1] = ' ', ' '
				i++
			}
		}
	}
	return strings.TrimSpace(string(b))
}
