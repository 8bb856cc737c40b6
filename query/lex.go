package query

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokIdent
	tokQuotedIdent
	tokNumber
	tokString
	tokParam // :caller
	tokOp    // = != <> < > <= >=
	tokLParen
	tokRParen
	tokComma
	tokStar
	tokDot
	tokSemicolon
)

type token struct {
	kind tokenKind
	text string // identifier, keyword (as written), number, operator; unquoted string
	pos  Pos
}

// Pos is a place in a query's text; Line and Column count from 1, in bytes.
type Pos struct {
	Offset, Line, Column int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// Error is a syntax or type error at a place in the query.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("query:%s: %s", e.Pos, e.Msg) }

// Is lets errors.Is(err, ErrSyntax) match syntax errors.
func (e *Error) Is(target error) bool { return target == ErrSyntax }

// maxQueryLen bounds what the lexer accepts; queries come from clients.
const maxQueryLen = 64 << 10

type lexer struct {
	src  string
	off  int
	line int
	col  int
}

func (l *lexer) pos() Pos { return Pos{Offset: l.off, Line: l.line, Column: l.col} }

func (l *lexer) advance(n int) {
	for i := 0; i < n; i++ {
		if l.src[l.off] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off++
	}
}

func lex(src string) ([]token, error) {
	if len(src) > maxQueryLen {
		return nil, &Error{Pos: Pos{Line: 1, Column: 1}, Msg: fmt.Sprintf("query is %d bytes; the limit is %d", len(src), maxQueryLen)}
	}
	if !utf8.ValidString(src) {
		return nil, &Error{Pos: Pos{Line: 1, Column: 1}, Msg: "query is not valid UTF-8"}
	}
	l := &lexer{src: src, line: 1, col: 1}
	var toks []token
	for {
		// Skip spaces and -- comments.
		for l.off < len(src) {
			c := src[l.off]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				l.advance(1)
				continue
			}
			if strings.HasPrefix(src[l.off:], "--") {
				for l.off < len(src) && src[l.off] != '\n' {
					l.advance(1)
				}
				continue
			}
			break
		}
		p := l.pos()
		if l.off >= len(src) {
			return append(toks, token{kind: tokEOF, pos: p}), nil
		}
		c := src[l.off]
		switch {
		case isIdentStart(c):
			n := 1
			for l.off+n < len(src) && isIdentPart(src[l.off+n]) {
				n++
			}
			toks = append(toks, token{kind: tokIdent, text: src[l.off : l.off+n], pos: p})
			l.advance(n)
		case c >= '0' && c <= '9' || c == '-' && l.off+1 < len(src) && (src[l.off+1] >= '0' && src[l.off+1] <= '9' || src[l.off+1] == '.'):
			n := 1
			if strings.HasPrefix(src[l.off:], "0x") || strings.HasPrefix(src[l.off:], "0X") {
				n = 2
				for l.off+n < len(src) && isHex(src[l.off+n]) {
					n++
				}
			} else {
				for l.off+n < len(src) && (isDigit(src[l.off+n]) || src[l.off+n] == '.' || src[l.off+n] == 'e' || src[l.off+n] == 'E' ||
					(src[l.off+n] == '-' || src[l.off+n] == '+') && (src[l.off+n-1] == 'e' || src[l.off+n-1] == 'E')) {
					n++
				}
			}
			toks = append(toks, token{kind: tokNumber, text: src[l.off : l.off+n], pos: p})
			l.advance(n)
		case c == '\'':
			var b strings.Builder
			i := l.off + 1
			for {
				if i >= len(src) {
					return nil, &Error{Pos: p, Msg: "string literal is not closed; add a ' at its end"}
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					break
				}
				b.WriteByte(src[i])
				i++
			}
			toks = append(toks, token{kind: tokString, text: b.String(), pos: p})
			l.advance(i + 1 - l.off)
		case c == '"':
			end := strings.IndexByte(src[l.off+1:], '"')
			if end < 0 {
				return nil, &Error{Pos: p, Msg: `quoted identifier is not closed; add a " at its end`}
			}
			name := src[l.off+1 : l.off+1+end]
			if name == "" {
				return nil, &Error{Pos: p, Msg: "empty quoted identifier"}
			}
			toks = append(toks, token{kind: tokQuotedIdent, text: name, pos: p})
			l.advance(end + 2)
		case c == ':':
			n := 1
			for l.off+n < len(src) && isIdentPart(src[l.off+n]) {
				n++
			}
			name := src[l.off+1 : l.off+n]
			if !strings.EqualFold(name, "caller") {
				return nil, &Error{Pos: p, Msg: fmt.Sprintf("unknown parameter :%s; the only parameter is :caller", name)}
			}
			toks = append(toks, token{kind: tokParam, text: "caller", pos: p})
			l.advance(n)
		case c == '=' || c == '<' || c == '>' || c == '!':
			n := 1
			if l.off+1 < len(src) {
				two := src[l.off : l.off+2]
				if two == "<=" || two == ">=" || two == "!=" || two == "<>" || two == "==" {
					n = 2
				}
			}
			op := src[l.off : l.off+n]
			if op == "!" {
				return nil, &Error{Pos: p, Msg: "unexpected '!'; did you mean != ?"}
			}
			if op == "==" {
				op = "="
			}
			if op == "<>" {
				op = "!="
			}
			toks = append(toks, token{kind: tokOp, text: op, pos: p})
			l.advance(n)
		case c == '(':
			toks = append(toks, token{kind: tokLParen, text: "(", pos: p})
			l.advance(1)
		case c == ')':
			toks = append(toks, token{kind: tokRParen, text: ")", pos: p})
			l.advance(1)
		case c == ',':
			toks = append(toks, token{kind: tokComma, text: ",", pos: p})
			l.advance(1)
		case c == '*':
			toks = append(toks, token{kind: tokStar, text: "*", pos: p})
			l.advance(1)
		case c == '.':
			toks = append(toks, token{kind: tokDot, text: ".", pos: p})
			l.advance(1)
		case c == ';':
			toks = append(toks, token{kind: tokSemicolon, text: ";", pos: p})
			l.advance(1)
		default:
			r, _ := utf8.DecodeRuneInString(src[l.off:])
			return nil, &Error{Pos: p, Msg: fmt.Sprintf("unexpected character %q", r)}
		}
	}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
