package codegen

import (
	"go/token"
	"strings"
	"unicode"
)

// initialisms are written in capitals in Go names, as golint expects.
var initialisms = map[string]string{
	"id": "ID", "url": "URL", "uri": "URI", "uuid": "UUID", "api": "API", "http": "HTTP",
	"json": "JSON", "ip": "IP", "sql": "SQL", "jwt": "JWT", "html": "HTML", "utf8": "UTF8",
}

// exported turns snake_case (or any identifier) into an exported Go name:
// identity_id -> IdentityID, create_post -> CreatePost, User -> User.
func exported(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part == "" {
			continue
		}
		if up, ok := initialisms[strings.ToLower(part)]; ok && strings.ToLower(part) == part {
			b.WriteString(up)
			continue
		}
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	if b.Len() == 0 {
		return "X" + s
	}
	out := b.String()
	if !unicode.IsLetter([]rune(out)[0]) {
		out = "X" + out
	}
	return out
}

// unexported turns s into an unexported Go name that is not a keyword:
// new_username -> newUsername, type -> type_.
func unexported(s string) string {
	e := exported(s)
	// Lower the leading initialism or letter: IDCard -> idCard, URL -> url.
	r := []rune(e)
	i := 0
	for i < len(r) && unicode.IsUpper(r[i]) {
		i++
	}
	switch {
	case i == len(r):
		i = len(r)
	case i > 1:
		i-- // keep the start of the next word capitalised
	}
	for j := 0; j < i; j++ {
		r[j] = unicode.ToLower(r[j])
	}
	out := string(r)
	if token.IsKeyword(out) || out == "ctx" {
		out += "_"
	}
	return out
}
