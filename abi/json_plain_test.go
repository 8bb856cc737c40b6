package abi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// viaDecoder is ValueFromJSON without its fast path.
func viaDecoder(t Type, data []byte) (Value, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return Value{}, err
	}
	if dec.More() {
		return Value{}, ErrJSONValue
	}
	return valueFromAny(t, x, 0)
}

// checkPlain: whenever the fast path takes an input, it gives the value
// (or the error) the json.Decoder path gives.
func checkPlain(t *testing.T, data []byte) {
	t.Helper()
	if _, ok := plainJSON(data); !ok {
		return
	}
	for _, typ := range []string{"String", "u64", "i32", "u8", "bool", "f64", "f32", "Option<u64>", "Option<String>", "IdentityId", "Bytes", "Timestamp"} {
		ty, err := ParseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		got, gerr := ValueFromJSON(ty, data)
		want, werr := viaDecoder(ty, data)
		if (gerr == nil) != (werr == nil) || (gerr == nil && !reflect.DeepEqual(got, want)) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("%s %q: fast %v, %v; decoder %v, %v", typ, data, got, gerr, want, werr)
		}
	}
}

func TestPlainJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{`"k17"`, true}, {`""`, true}, {`"héllo wörld"`, true}, {"\"a\u2028b\"", true},
		{`0`, true}, {`-0`, true}, {`42`, true}, {`-17`, true}, {`1.5`, true}, {`1e3`, true}, {`-2.5E-7`, true},
		{`18446744073709551615`, true}, {`18446744073709551616`, true}, {`1e400`, true},
		{`true`, true}, {`false`, true}, {`null`, true},
		{`"a\"b"`, false}, {`"a\nb"`, false}, {"\"a\x01\"", false}, {"\"\xff\"", false}, {`"`, false},
		{`01`, false}, {`1.`, false}, {`.5`, false}, {`1e`, false}, {`+1`, false}, {`-`, false},
		{` 1`, false}, {`1 `, false}, {`[1]`, false}, {`{}`, false}, {`nul`, false}, {``, false},
	} {
		if _, ok := plainJSON([]byte(tc.in)); ok != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.in, ok, tc.fast)
		}
		checkPlain(t, []byte(tc.in))
	}
}

func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{`"k17"`, `-2.5E-7`, `18446744073709551616`, `true`, `null`, `"2026-11-27T22:00:00Z"`, `"c200"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkPlain(t, data) })
}
