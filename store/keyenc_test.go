package store

import (
	"bytes"
	"math"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"pgregory.net/rapid"
)

func genType(depth int) *rapid.Generator[abi.Type] {
	return rapid.Custom(func(t *rapid.T) abi.Type {
		kinds := []abi.Kind{abi.KindBool, abi.KindU8, abi.KindU16, abi.KindU32, abi.KindU64, abi.KindI8, abi.KindI16, abi.KindI32, abi.KindI64, abi.KindF32, abi.KindF64, abi.KindString, abi.KindBytes, abi.KindIdentity, abi.KindTimestamp}
		if depth > 0 {
			kinds = append(kinds, abi.KindOption, abi.KindVec)
		}
		k := rapid.SampledFrom(kinds).Draw(t, "kind")
		if k == abi.KindOption || k == abi.KindVec {
			e := genType(depth-1).Draw(t, "elem")
			return abi.Type{Kind: k, Elem: &e}
		}
		return abi.Type{Kind: k}
	})
}

func genValue(typ abi.Type) *rapid.Generator[abi.Value] {
	return rapid.Custom(func(t *rapid.T) abi.Value {
		// Small domains, so that equal values and near neighbours are common.
		switch typ.Kind {
		case abi.KindBool:
			return abi.Bool(rapid.Bool().Draw(t, "b"))
		case abi.KindU8, abi.KindU16, abi.KindU32, abi.KindU64:
			v := rapid.SampledFrom([]uint64{0, 1, 2, 255, 256, 1 << 31, math.MaxUint64}).Draw(t, "u")
			switch typ.Kind {
			case abi.KindU8:
				v &= 0xFF
			case abi.KindU16:
				v &= 0xFFFF
			case abi.KindU32:
				v &= 0xFFFFFFFF
			}
			return abi.Value{Kind: typ.Kind, Bits: v}
		case abi.KindI8, abi.KindI16, abi.KindI32, abi.KindI64, abi.KindTimestamp:
			v := rapid.SampledFrom([]int64{math.MinInt64, -129, -128, -1, 0, 1, 127, 128, math.MaxInt64}).Draw(t, "i")
			switch typ.Kind {
			case abi.KindI8:
				v = int64(int8(v))
			case abi.KindI16:
				v = int64(int16(v))
			case abi.KindI32:
				v = int64(int32(v))
			}
			return abi.Value{Kind: typ.Kind, Bits: uint64(v)}
		case abi.KindF32:
			return abi.F32(rapid.SampledFrom([]float32{float32(math.Inf(-1)), -1.5, float32(math.Copysign(0, -1)), 0, 1e-40, 2, float32(math.Inf(1)), float32(math.NaN())}).Draw(t, "f"))
		case abi.KindF64:
			return abi.F64(rapid.SampledFrom([]float64{math.Inf(-1), -1.5, math.Copysign(0, -1), 0, 5e-324, 2, math.Inf(1), math.NaN()}).Draw(t, "f"))
		case abi.KindString:
			return abi.String(rapid.SampledFrom([]string{"", "\x00", "\x00\x00", "\x00\x01", "a", "a\x00", "a\x00b", "a\x01", "ab", "ÿ"}).Draw(t, "s"))
		case abi.KindBytes:
			return abi.Bytes(rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 0xFF}), 0, 3).Draw(t, "by"))
		case abi.KindIdentity:
			var id abi.Identity
			id[rapid.IntRange(0, 31).Draw(t, "pos")] = rapid.SampledFrom([]byte{0, 1, 0xFF}).Draw(t, "idb")
			return abi.IdentityValue(id)
		case abi.KindOption:
			if rapid.Bool().Draw(t, "none") {
				return abi.None()
			}
			return abi.Some(genValue(*typ.Elem).Draw(t, "some"))
		case abi.KindVec:
			n := rapid.IntRange(0, 3).Draw(t, "n")
			es := make([]abi.Value, n)
			for i := range es {
				es[i] = genValue(*typ.Elem).Draw(t, "e")
			}
			return abi.Vec(es...)
		}
		panic("unreachable")
	})
}

func encodeValueKey(t *rapid.T, typ abi.Type, v abi.Value) []byte {
	w := abi.NewWriter(nil)
	if err := w.WriteValue(typ, v); err != nil {
		t.Fatal(err)
	}
	b := w.Bytes()
	k, n := encodeKey(nil, &typ, b)
	if n != len(b) {
		t.Fatalf("encodeKey read %d of %d bytes", n, len(b))
	}
	if vl := valueLen(&typ, b); vl != len(b) {
		t.Fatalf("valueLen = %d, want %d", vl, len(b))
	}
	return k
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// The key encoding orders tuples the way abi.Compare orders values, column
// by column, and a tuple prefix encodes to a byte prefix.
func TestKeyEncodingOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ncols := rapid.IntRange(1, 3).Draw(t, "ncols")
		types := make([]abi.Type, ncols)
		for i := range types {
			types[i] = genType(2).Draw(t, "type")
		}
		var ka, kb []byte
		want := 0
		for i, typ := range types {
			a := genValue(typ).Draw(t, "a")
			b := rapid.OneOf(genValue(typ), rapid.Just(a)).Draw(t, "b")
			ea, eb := encodeValueKey(t, typ, a), encodeValueKey(t, typ, b)
			if got, w := sign(bytes.Compare(ea, eb)), sign(abi.Compare(a, b)); got != w {
				t.Fatalf("column %d (%s): %v vs %v: key order %d, value order %d (%x vs %x)", i, typ, a, b, got, w, ea, eb)
			}
			prefix := append([]byte(nil), ka...)
			ka, kb = append(ka, ea...), append(kb, eb...)
			if !bytes.HasPrefix(ka, prefix) {
				t.Fatal("prefix property broken")
			}
			if want == 0 {
				want = sign(abi.Compare(a, b))
			}
		}
		if got := sign(bytes.Compare(ka, kb)); got != want {
			t.Fatalf("tuple order %d, want %d", got, want)
		}
	})
}

func TestPrefixEnd(t *testing.T) {
	cases := []struct{ in, want []byte }{
		{nil, nil},
		{[]byte{0xFF, 0xFF}, nil},
		{[]byte{1}, []byte{2}},
		{[]byte{1, 0xFF}, []byte{2}},
		{[]byte{0, 0, 0xFE}, []byte{0, 0, 0xFF}},
	}
	for _, c := range cases {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("prefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}
