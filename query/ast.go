package query

import (
	"errors"
	"strings"
)

// ErrSyntax is matched (errors.Is) by every parse error.
var ErrSyntax = errors.New("query syntax error")

// Query is a parsed SELECT.
type Query struct {
	Table    string
	TablePos Pos
	// Columns is nil for SELECT *; otherwise the selected columns in order.
	Columns    []string
	ColumnPos  []Pos
	Count      bool // SELECT COUNT(*)
	Where      Expr // nil when there is no WHERE
	SelectPos  Pos
	sourceText string
}

// String returns the query's text as written.
func (q *Query) String() string { return q.sourceText }

// Expr is a boolean expression.
type Expr interface {
	Pos() Pos
	expr()
}

// Operand is a value in a comparison: a column, a literal or :caller.
type Operand interface {
	Pos() Pos
	operand()
}

// Logical is AND or OR.
type Logical struct {
	Op   string // "AND" or "OR"
	L, R Expr
	At   Pos
}

// Not negates an expression.
type Not struct {
	X  Expr
	At Pos
}

// Comparison compares two operands with = != < > <= >=.
type Comparison struct {
	Op   string
	L, R Operand
	At   Pos
}

// In tests membership of an operand in a one-column subquery.
type In struct {
	X   Operand
	Sub *Query
	At  Pos
}

// Truth is an operand used as a condition (a bool column, TRUE or FALSE).
type Truth struct {
	X Operand
}

// Column names a column of the table being queried.
type Column struct {
	Name string
	At   Pos
}

// Caller is :caller, the identity of whoever runs the query.
type Caller struct{ At Pos }

// LiteralKind tells what a literal looked like.
type LiteralKind uint8

const (
	LitNumber LiteralKind = iota + 1
	LitString
	LitHex
	LitBool
	LitNull
)

// Literal is a constant as written; its type comes from what it is compared with.
type Literal struct {
	Kind LiteralKind
	Text string
	At   Pos
}

func (e *Logical) Pos() Pos    { return e.At }
func (e *Not) Pos() Pos        { return e.At }
func (e *Comparison) Pos() Pos { return e.At }
func (e *In) Pos() Pos         { return e.At }
func (e *Truth) Pos() Pos      { return e.X.Pos() }
func (e *Column) Pos() Pos     { return e.At }
func (e *Caller) Pos() Pos     { return e.At }
func (e *Literal) Pos() Pos    { return e.At }

func (*Logical) expr()    {}
func (*Not) expr()        {}
func (*Comparison) expr() {}
func (*In) expr()         {}
func (*Truth) expr()      {}
func (*Column) operand()  {}
func (*Caller) operand()  {}
func (*Literal) operand() {}

// Format renders an expression in canonical form, with every keyword upper
// case and every operator spaced; equal expressions format equally, so the
// text can key a cache of identical queries.
func Format(e Expr) string {
	var b strings.Builder
	formatExpr(&b, e)
	return b.String()
}

// Canonical renders a query in canonical form (see Format).
func (q *Query) Canonical() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	switch {
	case q.Count:
		b.WriteString("COUNT(*)")
	case q.Columns == nil:
		b.WriteString("*")
	default:
		for i, c := range q.Columns {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteIdent(c))
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(quoteIdent(q.Table))
	if q.Where != nil {
		b.WriteString(" WHERE ")
		formatExpr(&b, q.Where)
	}
	return b.String()
}

func formatExpr(b *strings.Builder, e Expr) {
	switch e := e.(type) {
	case *Logical:
		b.WriteByte('(')
		formatExpr(b, e.L)
		b.WriteString(" " + e.Op + " ")
		formatExpr(b, e.R)
		b.WriteByte(')')
	case *Not:
		b.WriteString("NOT ")
		formatExpr(b, e.X)
	case *Comparison:
		formatOperand(b, e.L)
		b.WriteString(" " + e.Op + " ")
		formatOperand(b, e.R)
	case *In:
		formatOperand(b, e.X)
		b.WriteString(" IN (")
		b.WriteString(e.Sub.Canonical())
		b.WriteByte(')')
	case *Truth:
		formatOperand(b, e.X)
	}
}

func formatOperand(b *strings.Builder, o Operand) {
	switch o := o.(type) {
	case *Column:
		b.WriteString(quoteIdent(o.Name))
	case *Caller:
		b.WriteString(":caller")
	case *Literal:
		switch o.Kind {
		case LitString:
			b.WriteString("'" + strings.ReplaceAll(o.Text, "'", "''") + "'")
		case LitBool, LitNull:
			b.WriteString(strings.ToUpper(o.Text))
		default:
			b.WriteString(o.Text)
		}
	}
}

func quoteIdent(s string) string {
	if s == "" {
		return `""`
	}
	plain := isIdentStart(s[0]) && !isKeyword(s)
	for i := 1; plain && i < len(s); i++ {
		plain = isIdentPart(s[i])
	}
	if plain {
		return s
	}
	return `"` + s + `"`
}

var keywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true,
	"IN": true, "TRUE": true, "FALSE": true, "NULL": true, "COUNT": true,
}

func isKeyword(s string) bool { return keywords[strings.ToUpper(s)] }
