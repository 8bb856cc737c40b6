package abi

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		t    Type
		v    Value
		json string
	}{
		{TypeBool, Bool(false), `false`},
		{TypeU64, U64(math.MaxUint64), `18446744073709551615`},
		{TypeI64, I64(math.MinInt64), `-9223372036854775808`},
		{TypeI8, I8(-3), `-3`},
		{TypeF64, F64(0.1), `0.1`},
		{TypeF32, F32(float32(math.Inf(-1))), `"-Infinity"`},
		{TypeString, String("a\"b\n"), `"a\"b\n"`},
		{TypeBytes, Bytes([]byte{0xde, 0xad}), `"dead"`},
		{TypeIdentity, IdentityValue(Identity{0: 0xc2}), `"c2` + strings.Repeat("0", 62) + `"`},
		{TypeTimestamp, Timestamp(1700000000000000), `1700000000000000`},
		{OptionOf(TypeString), None(), `null`},
		{OptionOf(TypeString), Some(String("x")), `"x"`},
		{OptionOf(OptionOf(TypeU8)), Some(None()), `{"some":null}`},
		{VecOf(TypeU8), Vec(U8(1), U8(2)), `[1,2]`},
	}
	for _, tt := range tests {
		got := string(AppendJSON(nil, tt.t, tt.v))
		if got != tt.json {
			t.Errorf("AppendJSON(%s, %s) = %s, want %s", tt.t, tt.v, got, tt.json)
			continue
		}
		back, err := ValueFromJSON(tt.t, []byte(got))
		if err != nil {
			t.Errorf("ValueFromJSON(%s, %s): %v", tt.t, got, err)
			continue
		}
		if !back.Equal(tt.v) {
			t.Errorf("ValueFromJSON(%s, %s) = %s, want %s", tt.t, got, back, tt.v)
		}
	}
}

func TestValueFromJSONAccepts(t *testing.T) {
	tests := []struct {
		t    Type
		json string
		want Value
	}{
		{TypeU64, `"18446744073709551615"`, U64(math.MaxUint64)},
		{TypeU32, `3.0`, U32(3)},
		{TypeTimestamp, `"1970-01-01T00:00:01Z"`, Timestamp(1_000_000)},
		{TypeIdentity, `"0x` + strings.Repeat("ab", 32) + `"`, IdentityValue(Identity{0: 0xab, 1: 0xab, 2: 0xab, 3: 0xab, 4: 0xab, 5: 0xab, 6: 0xab, 7: 0xab, 8: 0xab, 9: 0xab, 10: 0xab, 11: 0xab, 12: 0xab, 13: 0xab, 14: 0xab, 15: 0xab, 16: 0xab, 17: 0xab, 18: 0xab, 19: 0xab, 20: 0xab, 21: 0xab, 22: 0xab, 23: 0xab, 24: 0xab, 25: 0xab, 26: 0xab, 27: 0xab, 28: 0xab, 29: 0xab, 30: 0xab, 31: 0xab})},
	}
	for _, tt := range tests {
		got, err := ValueFromJSON(tt.t, []byte(tt.json))
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ValueFromJSON(%s, %s) = %s, %v; want %s", tt.t, tt.json, got, err, tt.want)
		}
	}
}

func TestValueFromJSONRejects(t *testing.T) {
	tests := []struct {
		t       Type
		json    string
		wantMsg string
	}{
		{TypeU8, `256`, "is not a u8 (0 to 255)"},
		{TypeU8, `-1`, "is not a u8"},
		{TypeU32, `"12"`, "expected a number for u32"},
		{TypeU32, `1.5`, "expected a number"},
		{TypeI8, `128`, "is not an i8"},
		{TypeBool, `"true"`, "expected true or false"},
		{TypeString, `5`, "expected a string for String, got the number 5"},
		{TypeIdentity, `"abcd"`, "64 hex digits"},
		{TypeBytes, `"xyz"`, "hex string"},
		{VecOf(TypeU8), `[1,"a"]`, "element 1"},
		{OptionOf(OptionOf(TypeU8)), `3`, `{"some": value}`},
		{TypeU8, `1 2`, "more than one"},
		{TypeU8, `{`, "invalid JSON value"},
	}
	for _, tt := range tests {
		_, err := ValueFromJSON(tt.t, []byte(tt.json))
		if !errors.Is(err, ErrJSONValue) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ValueFromJSON(%s, %s) error = %v, want ErrJSONValue containing %q", tt.t, tt.json, err, tt.wantMsg)
		}
	}
}

func TestArgsFromJSON(t *testing.T) {
	params := []ParamDef{{Name: "new_username", Type: TypeString}, {Name: "age", Type: TypeU8}}
	got, err := ArgsFromJSON(params, []byte(`["alice", 30]`))
	if err != nil {
		t.Fatal(err)
	}
	row, err := DecodeRow([]Type{TypeString, TypeU8}, got)
	if err != nil || row[0].Str != "alice" || row[1].Bits != 30 {
		t.Fatalf("ArgsFromJSON decoded to %v, %v", row, err)
	}
	for in, want := range map[string]string{
		`["alice"]`:        "expected 2 arguments (new_username: String, age: u8), got 1",
		`["alice", "old"]`: "argument 2 (age: u8)",
		`{"a":1}`:          "must be a JSON array",
	} {
		if _, err := ArgsFromJSON(params, []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ArgsFromJSON(%s) error = %v, want %q", in, err, want)
		}
	}
	if b, err := ArgsFromJSON(nil, nil); err != nil || len(b) != 0 {
		t.Errorf("ArgsFromJSON(no params, empty) = %x, %v", b, err)
	}
}

func TestAppendRowJSON(t *testing.T) {
	td := &TableDef{Name: "Post", Columns: []ColumnDef{{Name: "post_id", Type: TypeU64}, {Name: "content", Type: TypeString}}}
	got := string(AppendRowJSON(nil, td, []Value{U64(1), String("hi")}))
	if want := `{"post_id":1,"content":"hi"}`; got != want {
		t.Fatalf("AppendRowJSON = %s, want %s", got, want)
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\t\r\n", "<b>&amp;</b>", "héllo 世界 🚀", "bad\xffutf8\xc3", "line\u2028sep\u2029"} {
		got := string(AppendJSONString(nil, s))
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("AppendJSONString(%q) = %s, not valid JSON: %v", s, got, err)
			continue
		}
		want, _ := json.Marshal(s) // encoding/json's reading of the same string
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("AppendJSONString(%q) decodes to %q, encoding/json gives %q", s, back, wantBack)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b\\c\x00\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendJSONString(%q) = %s is not valid JSON: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("AppendJSONString(%q) decodes to %q, encoding/json gives %q", s, back, wantBack)
		}
	})
}
