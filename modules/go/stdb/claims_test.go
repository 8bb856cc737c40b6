package stdb_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

// TestStringClaim: the guest's claim scanner agrees with encoding/json on
// string members, escapes included, and finds nothing where a member is
// absent or not a string.
func TestStringClaim(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  string
		key  string
		want string
		ok   bool
	}{
		{"plain", `{"iss":"https://issuer.example/","sub":"alice"}`, "sub", "alice", true},
		{"whitespace", " {\n\t\"iss\" : \"a\" ,\r\n \"sub\"\t:\t\"b\" } ", "sub", "b", true},
		{"after nested values", `{"aud":["x","y\"]"],"o":{"k":[1,{"sub":"no"}]},"n":-1.5e3,"t":true,"z":null,"sub":"yes"}`, "sub", "yes", true},
		{"escapes", `{"sub":"a\"b\\c\/d\b\f\n\r\t\u00e9\u4e2d"}`, "sub", "a\"b\\c/d\b\f\n\r\té中", true},
		{"surrogate pair", `{"sub":"\ud83d\ude00!"}`, "sub", "😀!", true},
		{"lone surrogate", `{"sub":"\ud83dx"}`, "sub", "\uFFFDx", true},
		{"escaped key", `{"s\u0075b":"k"}`, "sub", "k", true},
		{"UTF-8 as is", `{"name":"Zoë 中文"}`, "name", "Zoë 中文", true},
		{"missing", `{"iss":"a"}`, "sub", "", false},
		{"not a string", `{"sub":42}`, "sub", "", false},
		{"nested only", `{"x":{"sub":"a"}}`, "sub", "", false},
		{"not an object", `["sub","a"]`, "sub", "", false},
		{"empty object", `{}`, "sub", "", false},
		{"truncated", `{"sub":"ab`, "sub", "", false},
		{"bad escape", `{"sub":"a\x"}`, "sub", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := stdb.StringClaim([]byte(tc.obj), tc.key)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("StringClaim(%s, %q) = %q, %v; want %q, %v", tc.obj, tc.key, got, ok, tc.want, tc.ok)
			}
			var m map[string]any
			if tc.ok && json.Unmarshal([]byte(tc.obj), &m) == nil {
				if s, _ := m[tc.key].(string); s != got {
					t.Fatalf("encoding/json reads %q, StringClaim %q", s, got)
				}
			}
		})
	}
}

// FuzzStringClaim: for every JSON object encoding/json decodes, each
// top-level string member reads the same through StringClaim.
func FuzzStringClaim(f *testing.F) {
	for _, s := range []string{
		`{"iss":"a","sub":"b"}`, `{"sub":"\u00e9\ud83d\ude00","x":[{"y":"}"}]}`, `{"a":1,"b":"\\\""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]any
		if !utf8.Valid(b) || json.Unmarshal(b, &m) != nil {
			return
		}
		// Duplicate names are refused by the host's verifier; the scanner
		// returns the first, encoding/json the last.
		var raw map[string]json.RawMessage
		json.Unmarshal(b, &raw)
		for k, v := range m {
			s, isString := v.(string)
			got, ok := stdb.StringClaim(b, k)
			if ok != isString || got != s {
				if dup := countKey(b, k); dup > 1 {
					continue
				}
				t.Fatalf("StringClaim(%s, %q) = %q, %v; encoding/json %q (%T)", b, k, got, ok, s, v)
			}
		}
	})
}

// countKey is how many top-level members named k encoding/json sees, by
// decoding member by member.
func countKey(b []byte, k string) int {
	d := json.NewDecoder(bytesReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return 0
	}
	n := 0
	for d.More() {
		key, err := d.Token()
		if err != nil {
			return n
		}
		if key == k {
			n++
		}
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return n
		}
	}
	return n
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
