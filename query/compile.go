package query

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// ErrUnknownTable and ErrUnknownColumn are matched by compile errors that
// name something the schema does not have; ErrType by type mismatches.
var (
	ErrUnknownTable  = errors.New("unknown table")
	ErrUnknownColumn = errors.New("unknown column")
	ErrType          = errors.New("type mismatch")
)

// CompileError is an error in a query's meaning, at a place in its text.
type CompileError struct {
	Pos  Pos
	Msg  string
	Kind error // ErrUnknownTable, ErrUnknownColumn or ErrType
}

func (e *CompileError) Error() string { return fmt.Sprintf("query:%s: %s", e.Pos, e.Msg) }

// Unwrap lets errors.Is find the kind.
func (e *CompileError) Unwrap() error { return e.Kind }

// Schema gives the tables a query may name.
type Schema interface {
	Table(name string) (*abi.TableDef, bool)
}

// Plan is a query checked against a schema, ready to evaluate.
type Plan struct {
	Query *Query
	Table *abi.TableDef
	// Project holds the selected column indexes; nil selects all.
	Project []int
	Count   bool
	// UsesCaller is set when the result depends on who asks.
	UsesCaller bool
	// Reads lists the other tables that subqueries read; a change to any of
	// them can change the result.
	Reads []string
	match func(row []abi.Value, env *Env) bool
	conj  []Equality
	// readsRow is set when the WHERE clause reads a column of the row (not
	// counting subqueries, which read their own tables).
	readsRow bool
	// subs are the IN subqueries of this plan's own WHERE (nested ones
	// belong to their subquery's plan).
	subs []subRef
}

// subRef is one `x IN (subquery)` of a plan.
type subRef struct {
	sub *Plan
	col int
	// get is the tested value; rowFree when it does not read the row
	// (:caller or a constant), so only its membership matters.
	get     func(row []abi.Value, env *Env) abi.Value
	rowFree bool
}

// Equality is a top-level conjunct `column = constant` or `column = :caller`,
// which a subscription engine can index on.
type Equality struct {
	Column int
	Value  abi.Value // when !Caller
	Caller bool
}

// RowSource scans the rows of a table for subqueries; it must present one
// consistent state for the life of an Env.
type RowSource interface {
	ScanTable(table string, fn func(row []abi.Value) bool) error
}

// Env is what a plan is evaluated against: who asks, and the rows subqueries
// read. Subquery results are computed once per Env and reused, so make a new
// Env for each state of the database.
type Env struct {
	Caller abi.Identity
	Source RowSource
	// Cache, when set, shares the results of subqueries that do not use
	// :caller between the Envs of one database state (one Cache per state,
	// with the same Source).
	Cache *Cache
	sets  map[*Plan]map[string]struct{}
	err   error
}

// Cache holds subquery results for one database state, shared by every Env
// evaluated against that state. It is not safe for concurrent use.
type Cache struct {
	sets map[*Plan]map[string]struct{}
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{sets: map[*Plan]map[string]struct{}{}} }

// Keep copies into c the results of from whose tables did not change
// between from's state and c's: changed reports the tables a transaction
// wrote.
func (c *Cache) Keep(from *Cache, changed func(table string) bool) {
	if from == nil {
		return
	}
outer:
	for p, set := range from.sets {
		if changed(p.Table.Name) {
			continue
		}
		for _, r := range p.Reads {
			if changed(r) {
				continue outer
			}
		}
		c.sets[p] = set
	}
}

// SameSubqueries reports whether every IN subquery of p answers alike in a
// and b, as far as p can tell: the same membership when the tested value
// does not depend on the row (`:caller IN (...)`), the same set otherwise.
// When it holds, p matches a row in a exactly when it matches it in b, so a
// change to the subqueries' tables need not be re-evaluated row by row.
func (p *Plan) SameSubqueries(a, b *Env) bool {
	for _, r := range p.subs {
		sa, sb := a.subquerySet(r.sub, r.col), b.subquerySet(r.sub, r.col)
		if r.rowFree {
			k := valueKey(r.get(nil, a))
			if k != valueKey(r.get(nil, b)) {
				return false
			}
			_, ina := sa[k]
			_, inb := sb[k]
			if ina != inb {
				return false
			}
			continue
		}
		if len(sa) != len(sb) {
			return false
		}
		for k := range sa {
			if _, ok := sb[k]; !ok {
				return false
			}
		}
	}
	return true
}

// RowFree reports whether p's answer does not depend on the row it is
// evaluated on (only on :caller and subqueries), as in
// `:caller IN (SELECT identity_id FROM User WHERE role = 'admin')`: it then
// holds for every row of a state or for none, and Match may be given a nil
// row.
func (p *Plan) RowFree() bool { return p.match != nil && !p.readsRow }

// HasSubqueries reports whether p's WHERE uses IN (SELECT ...).
func (p *Plan) HasSubqueries() bool { return len(p.subs) > 0 }

// Err reports the first error a subquery met while evaluating against env.
func (env *Env) Err() error { return env.err }

// Match reports whether row (decoded in the table's column order) satisfies
// the plan's WHERE clause.
func (p *Plan) Match(row []abi.Value, env *Env) bool {
	if p.match == nil {
		return true
	}
	return p.match(row, env)
}

// Equalities returns the top-level `column = value` conjuncts of the WHERE
// clause: a row can match only if every one of them holds.
func (p *Plan) Equalities() []Equality { return p.conj }

// Compile checks q against schema and returns its plan.
func Compile(q *Query, schema Schema) (*Plan, error) {
	return compileQuery(q, schema, 0)
}

// CompileExpr checks a bare condition (a grant_access rule) against table.
func CompileExpr(e Expr, table *abi.TableDef, schema Schema) (*Plan, error) {
	c := &compiler{schema: schema, table: table}
	p := &Plan{Table: table}
	if err := c.where(p, e); err != nil {
		return nil, err
	}
	return p, nil
}

func compileQuery(q *Query, schema Schema, depth int) (*Plan, error) {
	table, ok := schema.Table(q.Table)
	if !ok {
		return nil, &CompileError{Pos: q.TablePos, Kind: ErrUnknownTable, Msg: fmt.Sprintf("no table named %q", q.Table)}
	}
	p := &Plan{Query: q, Table: table, Count: q.Count}
	for i, name := range q.Columns {
		col := table.Column(name)
		if col < 0 {
			return nil, &CompileError{Pos: q.ColumnPos[i], Kind: ErrUnknownColumn, Msg: unknownColumn(table, name)}
		}
		p.Project = append(p.Project, col)
	}
	c := &compiler{schema: schema, table: table, depth: depth}
	if q.Where != nil {
		if err := c.where(p, q.Where); err != nil {
			return nil, err
		}
	}
	return p, nil
}

type compiler struct {
	schema Schema
	table  *abi.TableDef
	depth  int
}

func (c *compiler) where(p *Plan, e Expr) error {
	m, err := c.expr(p, e)
	if err != nil {
		return err
	}
	p.match = m
	p.conj = c.equalities(e)
	return nil
}

func unknownColumn(t *abi.TableDef, name string) string {
	names := make([]string, len(t.Columns))
	for i, col := range t.Columns {
		names[i] = col.Name
	}
	return fmt.Sprintf("table %s has no column %q (its columns: %s)", t.Name, name, strings.Join(names, ", "))
}

type matchFn = func(row []abi.Value, env *Env) bool

func (c *compiler) expr(p *Plan, e Expr) (matchFn, error) {
	switch e := e.(type) {
	case *Logical:
		l, err := c.expr(p, e.L)
		if err != nil {
			return nil, err
		}
		r, err := c.expr(p, e.R)
		if err != nil {
			return nil, err
		}
		if e.Op == "AND" {
			return func(row []abi.Value, env *Env) bool { return l(row, env) && r(row, env) }, nil
		}
		return func(row []abi.Value, env *Env) bool { return l(row, env) || r(row, env) }, nil
	case *Not:
		x, err := c.expr(p, e.X)
		if err != nil {
			return nil, err
		}
		return func(row []abi.Value, env *Env) bool { return !x(row, env) }, nil
	case *Truth:
		get, t, err := c.operand(p, e.X, nil)
		if err != nil {
			return nil, err
		}
		if t.Kind != abi.KindBool {
			return nil, &CompileError{Pos: e.Pos(), Kind: ErrType, Msg: fmt.Sprintf("%s is a %s, not a condition; compare it with something, as in %s = ...", describeOperand(e.X), t, describeOperand(e.X))}
		}
		return func(row []abi.Value, env *Env) bool { return get(row, env).AsBool() }, nil
	case *Comparison:
		return c.comparison(p, e)
	case *In:
		return c.in(p, e)
	}
	return nil, fmt.Errorf("query: unknown expression %T", e)
}

func describeOperand(o Operand) string {
	switch o := o.(type) {
	case *Column:
		return "column " + o.Name
	case *Caller:
		return ":caller"
	case *Literal:
		return o.Text
	}
	return "?"
}

// operand returns a getter and the operand's type. A literal takes its type
// from want; with no want it must be TRUE or FALSE.
func (c *compiler) operand(p *Plan, o Operand, want *abi.Type) (func(row []abi.Value, env *Env) abi.Value, abi.Type, error) {
	switch o := o.(type) {
	case *Column:
		p.readsRow = true
		i := c.table.Column(o.Name)
		if i < 0 {
			return nil, abi.Type{}, &CompileError{Pos: o.At, Kind: ErrUnknownColumn, Msg: unknownColumn(c.table, o.Name)}
		}
		return func(row []abi.Value, _ *Env) abi.Value { return row[i] }, c.table.Columns[i].Type, nil
	case *Caller:
		p.UsesCaller = true
		return func(_ []abi.Value, env *Env) abi.Value { return abi.IdentityValue(env.Caller) }, abi.TypeIdentity, nil
	case *Literal:
		t := abi.TypeBool
		if want != nil {
			t = *want
		} else if o.Kind != LitBool {
			return nil, abi.Type{}, &CompileError{Pos: o.At, Kind: ErrType, Msg: fmt.Sprintf("cannot tell the type of %s; compare it with a column", o.Text)}
		}
		v, err := literalValue(o, t)
		if err != nil {
			return nil, abi.Type{}, err
		}
		return func([]abi.Value, *Env) abi.Value { return v }, t, nil
	}
	return nil, abi.Type{}, fmt.Errorf("query: unknown operand %T", o)
}

func isLiteral(o Operand) bool { _, ok := o.(*Literal); return ok }

func (c *compiler) comparison(p *Plan, e *Comparison) (matchFn, error) {
	if isLiteral(e.L) && isLiteral(e.R) {
		return nil, &CompileError{Pos: e.At, Kind: ErrType, Msg: "comparing two constants; compare a column or :caller with a value"}
	}
	// Type the non-literal side first, so a literal can take its type.
	first, second := e.L, e.R
	if isLiteral(first) {
		first, second = second, first
	}
	getA, ta, err := c.operand(p, first, nil)
	if err != nil {
		return nil, err
	}
	getB, tb, err := c.operand(p, second, &ta)
	if err != nil {
		return nil, err
	}
	if !ta.Equal(tb) {
		return nil, &CompileError{Pos: e.At, Kind: ErrType, Msg: fmt.Sprintf("cannot compare %s (%s) with %s (%s)", describeOperand(first), ta, describeOperand(second), tb)}
	}
	if ta.Kind == abi.KindVec && e.Op != "=" && e.Op != "!=" {
		return nil, &CompileError{Pos: e.At, Kind: ErrType, Msg: fmt.Sprintf("%s is a %s; arrays compare only with = and !=", describeOperand(first), ta)}
	}
	getL, getR := getA, getB
	if first != e.L {
		getL, getR = getB, getA
	}
	var test func(int) bool
	switch e.Op {
	case "=":
		test = func(c int) bool { return c == 0 }
	case "!=":
		test = func(c int) bool { return c != 0 }
	case "<":
		test = func(c int) bool { return c < 0 }
	case ">":
		test = func(c int) bool { return c > 0 }
	case "<=":
		test = func(c int) bool { return c <= 0 }
	case ">=":
		test = func(c int) bool { return c >= 0 }
	default:
		return nil, &CompileError{Pos: e.At, Kind: ErrType, Msg: "unknown operator " + e.Op}
	}
	return func(row []abi.Value, env *Env) bool {
		return test(abi.Compare(getL(row, env), getR(row, env)))
	}, nil
}

func (c *compiler) in(p *Plan, e *In) (matchFn, error) {
	if c.depth >= 4 {
		return nil, &CompileError{Pos: e.At, Kind: ErrType, Msg: "subqueries nest more than 4 deep"}
	}
	sub, err := compileQuery(e.Sub, c.schema, c.depth+1)
	if err != nil {
		return nil, err
	}
	st := sub.Table.Columns[sub.Project[0]].Type
	get, t, err := c.operand(p, e.X, &st)
	if err != nil {
		return nil, err
	}
	if !t.Equal(st) {
		return nil, &CompileError{Pos: e.At, Kind: ErrType, Msg: fmt.Sprintf("%s (%s) cannot be IN a set of %s.%s (%s)", describeOperand(e.X), t, sub.Table.Name, sub.Table.Columns[sub.Project[0]].Name, st)}
	}
	p.UsesCaller = p.UsesCaller || sub.UsesCaller
	p.Reads = appendUnique(p.Reads, sub.Table.Name)
	for _, r := range sub.Reads {
		p.Reads = appendUnique(p.Reads, r)
	}
	col := sub.Project[0]
	_, isCol := e.X.(*Column)
	p.subs = append(p.subs, subRef{sub: sub, col: col, get: get, rowFree: !isCol})
	return func(row []abi.Value, env *Env) bool {
		set := env.subquerySet(sub, col)
		_, ok := set[valueKey(get(row, env))]
		return ok
	}, nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func (env *Env) subquerySet(sub *Plan, col int) map[string]struct{} {
	if set, ok := env.sets[sub]; ok {
		return set
	}
	shared := env.Cache != nil && !sub.UsesCaller
	if shared {
		if set, ok := env.Cache.sets[sub]; ok {
			return set
		}
	}
	set := map[string]struct{}{}
	if env.Source == nil {
		env.err = fmt.Errorf("query: a subquery on %s needs a row source", sub.Table.Name)
	} else if err := env.Source.ScanTable(sub.Table.Name, func(row []abi.Value) bool {
		if sub.Match(row, env) {
			set[valueKey(row[col])] = struct{}{}
		}
		return true
	}); err != nil && env.err == nil {
		env.err = err
	}
	if shared && env.err == nil {
		env.Cache.sets[sub] = set
		return set
	}
	if env.sets == nil {
		env.sets = map[*Plan]map[string]struct{}{}
	}
	env.sets[sub] = set
	return set
}

// valueKey is an injective string form of a value, for sets.
func valueKey(v abi.Value) string {
	w := abi.Writer{}
	w.WriteU8(uint8(v.Kind))
	_ = w.WriteValue(abi.Type{Kind: v.Kind, Elem: elemType(v)}, v)
	return string(w.Bytes())
}

func elemType(v abi.Value) *abi.Type {
	if len(v.Elems) == 0 {
		return nil
	}
	t := abi.Type{Kind: v.Elems[0].Kind, Elem: elemType(v.Elems[0])}
	return &t
}

func (c *compiler) equalities(e Expr) []Equality {
	var out []Equality
	var walk func(Expr)
	walk = func(e Expr) {
		switch e := e.(type) {
		case *Logical:
			if e.Op == "AND" {
				walk(e.L)
				walk(e.R)
			}
		case *Comparison:
			if e.Op != "=" {
				return
			}
			col, other := e.L, e.R
			if _, ok := col.(*Column); !ok {
				col, other = other, col
			}
			cc, ok := col.(*Column)
			if !ok {
				return
			}
			i := c.table.Column(cc.Name)
			switch o := other.(type) {
			case *Caller:
				out = append(out, Equality{Column: i, Caller: true})
			case *Literal:
				if v, err := literalValue(o, c.table.Columns[i].Type); err == nil {
					out = append(out, Equality{Column: i, Value: v})
				}
			}
		}
	}
	walk(e)
	return out
}

// literalValue converts a literal to a value of type t.
func literalValue(l *Literal, t abi.Type) (abi.Value, error) {
	bad := func(why string) (abi.Value, error) {
		return abi.Value{}, &CompileError{Pos: l.At, Kind: ErrType, Msg: fmt.Sprintf("%s is not a %s: %s", literalText(l), t, why)}
	}
	if l.Kind == LitNull {
		if t.Kind != abi.KindOption {
			return bad("only Option columns can be NULL")
		}
		return abi.None(), nil
	}
	switch t.Kind {
	case abi.KindOption:
		v, err := literalValue(l, *t.Elem)
		if err != nil {
			return abi.Value{}, err
		}
		return abi.Some(v), nil
	case abi.KindBool:
		if l.Kind != LitBool {
			return bad("write TRUE or FALSE")
		}
		return abi.Bool(l.Text == "true"), nil
	case abi.KindU8, abi.KindU16, abi.KindU32, abi.KindU64:
		if l.Kind != LitNumber {
			return bad("write a whole number")
		}
		n, err := strconv.ParseUint(l.Text, 10, 8*t.Kind.FixedSize())
		if err != nil {
			return bad(fmt.Sprintf("write a whole number from 0 to %d", uint64(math.MaxUint64)>>(64-8*t.Kind.FixedSize())))
		}
		return abi.Value{Kind: t.Kind, Bits: n}, nil
	case abi.KindI8, abi.KindI16, abi.KindI32, abi.KindI64:
		if l.Kind != LitNumber {
			return bad("write a whole number")
		}
		n, err := strconv.ParseInt(l.Text, 10, 8*t.Kind.FixedSize())
		if err != nil {
			return bad("out of range or not a whole number")
		}
		return abi.Value{Kind: t.Kind, Bits: uint64(n)}, nil
	case abi.KindF32, abi.KindF64:
		if l.Kind != LitNumber {
			return bad("write a number")
		}
		f, err := strconv.ParseFloat(l.Text, 64)
		if err != nil {
			return bad("write a number")
		}
		if t.Kind == abi.KindF32 {
			return abi.F32(float32(f)), nil
		}
		return abi.F64(f), nil
	case abi.KindString:
		if l.Kind != LitString {
			return bad("write it in single quotes")
		}
		return abi.String(l.Text), nil
	case abi.KindBytes:
		h := l.Text
		if l.Kind == LitHex {
			h = strings.TrimPrefix(h, "0x")
		} else if l.Kind != LitString {
			return bad("write hex, as in 0xdead or 'dead'")
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			return bad("write hex, as in 0xdead or 'dead'")
		}
		return abi.Bytes(b), nil
	case abi.KindIdentity:
		if l.Kind != LitString && l.Kind != LitHex {
			return bad("write its 64 hex digits, as in 'c200...' or 0xc200..., or use :caller")
		}
		id, err := abi.ParseIdentity(l.Text)
		if err != nil {
			return bad("write its 64 hex digits, or use :caller")
		}
		return abi.IdentityValue(id), nil
	case abi.KindTimestamp:
		switch l.Kind {
		case LitNumber:
			n, err := strconv.ParseInt(l.Text, 10, 64)
			if err != nil {
				return bad("write microseconds since the Unix epoch, or an RFC 3339 time in quotes")
			}
			return abi.Timestamp(n), nil
		case LitString:
			ts, err := time.Parse(time.RFC3339Nano, l.Text)
			if err != nil {
				return bad("write an RFC 3339 time such as '2026-01-02T15:04:05Z'")
			}
			return abi.Timestamp(ts.UnixMicro()), nil
		}
		return bad("write microseconds since the Unix epoch, or an RFC 3339 time in quotes")
	}
	return bad("values of this type cannot be written in a query")
}

func literalText(l *Literal) string {
	if l.Kind == LitString {
		return "'" + l.Text + "'"
	}
	return l.Text
}
