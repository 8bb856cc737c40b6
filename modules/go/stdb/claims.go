package stdb

import (
	"unicode/utf16"
	"unicode/utf8"
)

// Token is a token the host verified: its issuer, subject and the identity
// they derive, and every claim as the token carries them.
type Token struct {
	Issuer   string
	Subject  string
	Identity Identity
	// Claims is the token's payload (a JSON object); read a claim with
	// StringClaim, or decode it whole with encoding/json.
	Claims []byte
}

// VerifyToken asks the host to verify a token, as VerifyJWT does, and
// derives the caller's identity from its issuer and subject. It reads the
// claims it needs with a small scanner rather than encoding/json, which
// costs a guest more than the rest of a typical auth reducer. Errors are
// VerifyJWT's (a *TokenError when the host refused the token).
func VerifyToken(token string) (Token, error) {
	raw, err := VerifyJWT(token)
	if err != nil {
		return Token{}, err
	}
	t := Token{Claims: raw}
	var ok1, ok2 bool
	t.Issuer, ok1 = StringClaim(raw, "iss")
	t.Subject, ok2 = StringClaim(raw, "sub")
	if !ok1 || !ok2 || t.Issuer == "" || t.Subject == "" {
		return Token{}, &TokenError{Reason: "the token needs iss and sub claims"}
	}
	if t.Identity, err = IdentityFromClaims(t.Issuer, t.Subject); err != nil {
		return Token{}, err
	}
	return t, nil
}

// StringClaim returns the claim name of the token.
func (t Token) StringClaim(name string) (string, bool) { return StringClaim(t.Claims, name) }

// StringClaim returns the top-level member name of the JSON object obj when
// it is a string, and false when obj has no such member or it is not a
// string (or obj is not a JSON object). The host has checked the claims of
// a verified token: they are valid JSON with no duplicate names.
func StringClaim(obj []byte, name string) (string, bool) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return "", false
		}
		key, next, ok := jsonString(obj, i)
		if !ok {
			return "", false
		}
		i = skipWS(obj, next)
		if i >= len(obj) || obj[i] != ':' {
			return "", false
		}
		i = skipWS(obj, i+1)
		if key == name {
			if i >= len(obj) || obj[i] != '"' {
				return "", false
			}
			v, _, ok := jsonString(obj, i)
			return v, ok
		}
		if i = skipJSONValue(obj, i); i < 0 {
			return "", false
		}
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != ',' {
			return "", false
		}
		i++
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonString decodes the string starting at b[i] (a quote) and returns it
// with the index after its closing quote. A string without escapes is
// returned without decoding byte by byte.
func jsonString(b []byte, i int) (string, int, bool) {
	start := i + 1
	j := start
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	if j < len(b) && b[j] == '"' {
		return string(b[start:j]), j + 1, true
	}
	out := append([]byte(nil), b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			return string(out), j + 1, true
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(b) {
			return "", 0, false
		}
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, j+2)
			if !ok {
				return "", 0, false
			}
			j += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if j+7 < len(b) && b[j+2] == '\\' && b[j+3] == 'u' {
					r2, ok = hex4(b, j+4)
				}
				if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
					r = d
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", 0, false
		}
		j += 2
	}
	return "", 0, false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipJSONValue returns the index after the value starting at b[i], or -1.
func skipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			case '"':
				if j = skipJSONValue(b, j); j < 0 {
					return -1
				}
				j--
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}
