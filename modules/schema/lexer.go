package schema

import (
	"fmt"
	"unicode/utf8"

	"github.com/spacetime-go/spacetime/abi"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString // '...' (SQL-style, used inside grant filters)
	tPunct  // one of # [ ] ( ) { } < > : ; , = * . ! and the two-byte ->, !=, <=, >=
	tIllegal
)

type token struct {
	kind tokKind
	text string
	pos  abi.Pos
	off  int // byte offset of the token's start in the source
	end  int // byte offset just past the token
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tIdent:
		return fmt.Sprintf("%q", t.text)
	case tString:
		return "string " + t.text
	case tNumber:
		return "number " + t.text
	}
	return fmt.Sprintf("%q", t.text)
}

// lexer turns source into tokens, skipping whitespace and comments. It never
// fails: bad input becomes a tIllegal token the parser reports where it stands.
type lexer struct {
	file string
	src  string
	off  int
	line int
	col  int // in runes, from 1
}

func newLexer(file, src string) *lexer { return &lexer{file: file, src: src, line: 1, col: 1} }

func (l *lexer) advance(n int) {
	for n > 0 && l.off < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.off:])
		l.off += size
		n -= size
		if r == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
	}
}

func (l *lexer) pos() abi.Pos { return abi.Pos{File: l.file, Line: l.line, Column: l.col} }

// skipSpace skips whitespace, // line comments and /* block */ comments. An
// unterminated block comment runs to the end of the file.
func (l *lexer) skipSpace() {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.advance(1)
		case c == '/' && l.off+1 < len(l.src) && l.src[l.off+1] == '/':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance(1)
			}
		case c == '/' && l.off+1 < len(l.src) && l.src[l.off+1] == '*':
			l.advance(2)
			for l.off < len(l.src) && !(l.src[l.off] == '*' && l.off+1 < len(l.src) && l.src[l.off+1] == '/') {
				l.advance(1)
			}
			l.advance(2)
		default:
			return
		}
	}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

func (l *lexer) next() token {
	l.skipSpace()
	start, pos := l.off, l.pos()
	tok := func(k tokKind) token {
		return token{kind: k, text: l.src[start:l.off], pos: pos, off: start, end: l.off}
	}
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: pos, off: l.off, end: l.off}
	}
	c := l.src[l.off]
	switch {
	case isIdentStart(c):
		for l.off < len(l.src) && (isIdentStart(l.src[l.off]) || isDigit(l.src[l.off])) {
			l.advance(1)
		}
		return tok(tIdent)
	case isDigit(c):
		for l.off < len(l.src) && (isDigit(l.src[l.off]) || l.src[l.off] == '.' || isIdentStart(l.src[l.off])) {
			l.advance(1)
		}
		return tok(tNumber)
	case c == '\'':
		l.advance(1)
		for l.off < len(l.src) {
			if l.src[l.off] == '\'' {
				if l.off+1 < len(l.src) && l.src[l.off+1] == '\'' { // '' escapes a quote, as in SQL
					l.advance(2)
					continue
				}
				l.advance(1)
				return tok(tString)
			}
			if l.src[l.off] == '\n' {
				break
			}
			l.advance(1)
		}
		return tok(tIllegal) // unterminated string
	}
	if l.off+1 < len(l.src) {
		switch l.src[l.off : l.off+2] {
		case "->", "!=", "<=", ">=":
			l.advance(2)
			return tok(tPunct)
		}
	}
	switch c {
	case '#', '[', ']', '(', ')', '{', '}', '<', '>', ':', ';', ',', '=', '*', '.', '!':
		l.advance(1)
		return tok(tPunct)
	}
	l.advance(1) // one whole rune, even if it is not ASCII
	return tok(tIllegal)
}
