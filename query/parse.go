package query

import (
	"fmt"
	"strings"
)

// maxDepth bounds expression nesting, so a hostile query cannot exhaust the stack.
const maxDepth = 64

type parser struct {
	toks  []token
	i     int
	depth int
	src   string
}

// Parse parses one SELECT statement (an optional trailing ';' is allowed).
func Parse(src string) (*Query, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	if p.peek().kind == tokSemicolon {
		p.i++
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errAt(t, "unexpected %s after the query; one statement at a time", describe(t))
	}
	q.sourceText = strings.TrimSpace(src)
	return q, nil
}

// ParseExpr parses a boolean expression alone, as a grant_access rule's
// WHERE clause is written.
func ParseExpr(src string) (Expr, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errAt(t, "unexpected %s after the condition", describe(t))
	}
	return e, nil
}

func newParser(src string) (*parser, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{toks: toks, src: src}, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(kw string) bool {
	t := p.peek()
	return t.kind == tokIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) acceptKeyword(kw string) bool {
	if p.isKeyword(kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw, context string) (token, error) {
	t := p.peek()
	if !p.acceptKeyword(kw) {
		return t, p.errAt(t, "expected %s %s, found %s", kw, context, describe(t))
	}
	return t, nil
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return &Error{Pos: t.pos, Msg: fmt.Sprintf(format, args...)}
}

func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "the end of the query"
	case tokString:
		return fmt.Sprintf("the string '%s'", t.text)
	case tokIdent:
		if isKeyword(t.text) {
			return "the keyword " + strings.ToUpper(t.text)
		}
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func (p *parser) ident(what string) (string, Pos, error) {
	t := p.peek()
	switch {
	case t.kind == tokQuotedIdent:
		p.i++
		return t.text, t.pos, nil
	case t.kind == tokIdent && !isKeyword(t.text):
		p.i++
		return t.text, t.pos, nil
	}
	return "", t.pos, p.errAt(t, "expected %s, found %s", what, describe(t))
}

func (p *parser) query() (*Query, error) {
	sel, err := p.expectKeyword("SELECT", "to start the query")
	if err != nil {
		return nil, err
	}
	q := &Query{SelectPos: sel.pos}
	switch {
	case p.peek().kind == tokStar:
		p.i++
	case p.isKeyword("COUNT"):
		p.i++
		for _, want := range []tokenKind{tokLParen, tokStar, tokRParen} {
			if t := p.next(); t.kind != want {
				return nil, p.errAt(t, "expected COUNT(*), found %s", describe(t))
			}
		}
		q.Count = true
	default:
		for {
			name, pos, err := p.ident("a column name or *")
			if err != nil {
				return nil, err
			}
			q.Columns = append(q.Columns, name)
			q.ColumnPos = append(q.ColumnPos, pos)
			if p.peek().kind != tokComma {
				break
			}
			p.i++
		}
	}
	if _, err := p.expectKeyword("FROM", "after the selected columns"); err != nil {
		return nil, err
	}
	if q.Table, q.TablePos, err = p.ident("a table name"); err != nil {
		return nil, err
	}
	if p.acceptKeyword("WHERE") {
		if q.Where, err = p.expr(); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func (p *parser) expr() (Expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errAt(p.peek(), "condition nested deeper than %d levels", maxDepth)
	}
	return p.or()
}

func (p *parser) or() (Expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isKeyword("OR") {
		at := p.next().pos
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &Logical{Op: "OR", L: l, R: r, At: at}
	}
	return l, nil
}

func (p *parser) and() (Expr, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.isKeyword("AND") {
		at := p.next().pos
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &Logical{Op: "AND", L: l, R: r, At: at}
	}
	return l, nil
}

func (p *parser) not() (Expr, error) {
	if p.isKeyword("NOT") {
		at := p.next().pos
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, p.errAt(p.peek(), "condition nested deeper than %d levels", maxDepth)
		}
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &Not{X: x, At: at}, nil
	}
	return p.primary()
}

func (p *parser) primary() (Expr, error) {
	if p.peek().kind == tokLParen {
		open := p.next()
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if t := p.next(); t.kind != tokRParen {
			return nil, p.errAt(t, "expected ) to close the ( at %s, found %s", open.pos, describe(t))
		}
		return e, nil
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tokOp:
		p.i++
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		return &Comparison{Op: t.text, L: l, R: r, At: t.pos}, nil
	case p.isKeyword("IN"):
		p.i++
		if open := p.next(); open.kind != tokLParen {
			return nil, p.errAt(open, "expected ( and a subquery after IN, found %s", describe(open))
		}
		sub, err := p.query()
		if err != nil {
			return nil, err
		}
		if sub.Count || len(sub.Columns) != 1 {
			return nil, p.errAt(token{pos: sub.SelectPos}, "a subquery after IN must select exactly one column, as in (SELECT identity_id FROM User WHERE role = 'admin')")
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, p.errAt(c, "expected ) to close the subquery, found %s", describe(c))
		}
		return &In{X: l, Sub: sub, At: t.pos}, nil
	case p.isKeyword("NOT"):
		return nil, p.errAt(t, "NOT goes before a condition, as in NOT (a = 1)")
	}
	return &Truth{X: l}, nil
}

func (p *parser) operand() (Operand, error) {
	t := p.peek()
	switch t.kind {
	case tokQuotedIdent:
		p.i++
		return &Column{Name: t.text, At: t.pos}, nil
	case tokIdent:
		switch strings.ToUpper(t.text) {
		case "TRUE", "FALSE":
			p.i++
			return &Literal{Kind: LitBool, Text: strings.ToLower(t.text), At: t.pos}, nil
		case "NULL":
			p.i++
			return &Literal{Kind: LitNull, Text: "null", At: t.pos}, nil
		}
		if isKeyword(t.text) {
			return nil, p.errAt(t, "expected a column, a value or :caller, found %s", describe(t))
		}
		p.i++
		return &Column{Name: t.text, At: t.pos}, nil
	case tokNumber:
		p.i++
		if strings.HasPrefix(t.text, "0x") || strings.HasPrefix(t.text, "0X") {
			return &Literal{Kind: LitHex, Text: strings.ToLower(t.text), At: t.pos}, nil
		}
		return &Literal{Kind: LitNumber, Text: t.text, At: t.pos}, nil
	case tokString:
		p.i++
		return &Literal{Kind: LitString, Text: t.text, At: t.pos}, nil
	case tokParam:
		p.i++
		return &Caller{At: t.pos}, nil
	}
	return nil, p.errAt(t, "expected a column, a value or :caller, found %s", describe(t))
}
