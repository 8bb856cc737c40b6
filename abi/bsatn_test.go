package abi

import (
	"errors"
	"math"
	"testing"
)

var roundTripCases = []struct {
	name string
	t    Type
	v    Value
	hex  string // expected BSATN, when pinned
}{
	{"bool", TypeBool, Bool(true), "01"},
	{"u16", TypeU16, U16(0x1234), "3412"},
	{"i8", TypeI8, I8(-2), "fe"},
	{"i32", TypeI32, I32(-1), "ffffffff"},
	{"u64", TypeU64, U64(math.MaxUint64), "ffffffffffffffff"},
	{"f64", TypeF64, F64(1.5), "000000000000f83f"},
	{"f32 nan", TypeF32, F32(float32(math.NaN())), ""},
	{"string", TypeString, String("hé"), "0300000068c3a9"},
	{"bytes", TypeBytes, Bytes([]byte{0, 1}), "020000000001"},
	{"timestamp", TypeTimestamp, Timestamp(-5), "fbffffffffffffff"},
	{"identity", TypeIdentity, IdentityValue(Identity{31: 1}), "0000000000000000000000000000000000000000000000000000000000000001"},
	{"some", OptionOf(TypeU8), Some(U8(7)), "0007"},
	{"none", OptionOf(TypeU8), None(), "01"},
	{"vec", VecOf(TypeI16), Vec(I16(1), I16(-1)), "020000000100ffff"},
	{"nested", VecOf(OptionOf(TypeString)), Vec(Some(String("a")), None()), "020000000001000000610" + "1"},
}

func TestBSATNRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases {
		t.Run(tc.name, func(t *testing.T) {
			w := Writer{}
			if err := w.WriteValue(tc.t, tc.v); err != nil {
				t.Fatal(err)
			}
			if tc.hex != "" {
				if got := hexString(w.Bytes()); got != tc.hex {
					t.Fatalf("encoded %s, want %s", got, tc.hex)
				}
			}
			r := NewReader(w.Bytes())
			got := r.ReadValue(tc.t)
			if r.Err() != nil || r.Remaining() != 0 {
				t.Fatalf("decode: err=%v remaining=%d", r.Err(), r.Remaining())
			}
			if !got.Equal(tc.v) {
				t.Fatalf("decoded %s, want %s", got, tc.v)
			}
			r2 := NewReader(w.Bytes())
			r2.Skip(tc.t)
			if r2.Err() != nil || r2.Remaining() != 0 {
				t.Fatalf("skip: err=%v remaining=%d", r2.Err(), r2.Remaining())
			}
		})
	}
}

func TestDecodeRowRejectsMalformed(t *testing.T) {
	types := []Type{TypeU32, TypeString, OptionOf(TypeBool)}
	good, err := EncodeRow(nil, types, []Value{U32(1), String("x"), Some(Bool(true))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRow(types, good); err != nil {
		t.Fatalf("good row: %v", err)
	}
	bad := map[string][]byte{
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"bad bool":       append(append([]byte{}, good[:len(good)-1]...), 2),
		"bad option tag": append(append([]byte{}, good[:len(good)-2]...), 7, 1),
		"huge length":    {1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f},
		"invalid utf8":   {1, 0, 0, 0, 1, 0, 0, 0, 0xff, 1},
		"empty":          {},
	}
	for name, data := range bad {
		if _, err := DecodeRow(types, data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeRow error = %v, want ErrMalformed", name, err)
		}
		if err := ValidateRow(types, data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ValidateRow error = %v, want ErrMalformed", name, err)
		}
	}
}

func TestWriteValueRejectsWrongType(t *testing.T) {
	w := Writer{}
	if err := w.WriteValue(TypeU8, String("x")); err == nil {
		t.Fatal("WriteValue accepted a String for u8")
	}
	if _, err := EncodeRow(nil, []Type{TypeU8}, nil); err == nil {
		t.Fatal("EncodeRow accepted a short row")
	}
}

func TestCompareOrdersLikeIndexes(t *testing.T) {
	ordered := [][]Value{
		{I64(math.MinInt64), I64(-1), I64(0), I64(5)},
		{F64(math.Inf(-1)), F64(-1), F64(0), F64(2), F64(math.Inf(1))},
		{None(), Some(U8(0)), Some(U8(9))},
		{String(""), String("a"), String("ab"), String("b")},
		{Vec(), Vec(U8(1)), Vec(U8(1), U8(0)), Vec(U8(2))},
	}
	for _, seq := range ordered {
		for i := 1; i < len(seq); i++ {
			if Compare(seq[i-1], seq[i]) >= 0 || Compare(seq[i], seq[i-1]) <= 0 {
				t.Errorf("Compare(%s, %s) not ascending", seq[i-1], seq[i])
			}
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
