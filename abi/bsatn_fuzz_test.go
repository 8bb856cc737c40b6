package abi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// parseTypes parses a comma-separated list of types; the fuzzer mutates the
// list as well as the data.
func parseTypes(spec string) ([]Type, bool) {
	if spec == "" || len(spec) > 200 {
		return nil, false
	}
	var ts []Type
	for _, s := range strings.Split(spec, ",") {
		t, err := ParseType(s)
		if err != nil {
			return nil, false
		}
		ts = append(ts, t)
	}
	return ts, true
}

func addRowSeeds(f *testing.F) {
	seeds := []struct {
		spec string
		row  []Value
	}{
		{"u64,String,bool", []Value{U64(7), String("héllo"), Bool(true)}},
		{"Option<i32>,Vec<u8>", []Value{Some(I32(-5)), Vec(U8(1), U8(2))}},
		{"Option<String>,f64,f32", []Value{None(), F64(1.5), F32(-2)}},
		{"IdentityId,Timestamp,Bytes", []Value{IdentityValue(Identity{1, 2}), Timestamp(-1), Bytes([]byte{0, 1})}},
		{"Vec<Option<Vec<String>>>", []Value{Vec(Some(Vec(String("a"))), None())}},
		{"i8,i16,u16,u32", []Value{I8(-1), I16(300), U16(65535), U32(1 << 31)}},
	}
	for _, s := range seeds {
		ts, ok := parseTypes(s.spec)
		if !ok {
			f.Fatalf("bad seed spec %q", s.spec)
		}
		b, err := EncodeRow(nil, ts, s.row)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.spec, b)
		f.Add(s.spec, b[:len(b)/2])
	}
	f.Add("Vec<Vec<Vec<u64>>>", []byte{0xff, 0xff, 0xff, 0xff})
	f.Add("String", []byte{2, 0, 0, 0, 0xc3, 0x28})
}

// FuzzDecodeRow checks that DecodeRow and ValidateRow never panic, agree
// with each other, report errors wrapping ErrMalformed, and that whatever
// decodes re-encodes to the same bytes (BSATN is canonical).
func FuzzDecodeRow(f *testing.F) {
	addRowSeeds(f)
	f.Fuzz(func(t *testing.T, spec string, data []byte) {
		ts, ok := parseTypes(spec)
		if !ok {
			return
		}
		row, derr := DecodeRow(ts, data)
		verr := ValidateRow(ts, data)
		if (derr == nil) != (verr == nil) {
			t.Fatalf("DecodeRow err %v, ValidateRow err %v", derr, verr)
		}
		if derr != nil {
			if !errors.Is(derr, ErrMalformed) || !errors.Is(verr, ErrMalformed) {
				t.Fatalf("errors do not wrap ErrMalformed: %v / %v", derr, verr)
			}
			return
		}
		for i, v := range row {
			if !v.Conforms(ts[i]) {
				t.Fatalf("column %d: decoded %v does not conform to %s", i, v, ts[i])
			}
		}
		again, err := EncodeRow(nil, ts, row)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded %x, decoded from %x", again, data)
		}
	})
}

// FuzzReader drives the Reader's primitive reads in an order chosen by the
// fuzzer: it must never panic, read past the end, or move backwards.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, []byte{1, 2, 3, 4})
	f.Add([]byte{5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0}, []byte{11, 14, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f}, []byte{13, 12, 15})
	f.Fuzz(func(t *testing.T, data, ops []byte) {
		r := NewReader(data)
		last := 0
		for _, op := range ops {
			switch op % 17 {
			case 0:
				r.ReadBool()
			case 1:
				r.ReadU8()
			case 2:
				r.ReadU16()
			case 3:
				r.ReadU32()
			case 4:
				r.ReadU64()
			case 5:
				r.ReadI8()
			case 6:
				r.ReadI16()
			case 7:
				r.ReadI32()
			case 8:
				r.ReadI64()
			case 9:
				r.ReadF32()
			case 10:
				r.ReadF64()
			case 11:
				r.ReadString()
			case 12:
				r.ReadBytes()
			case 13:
				r.ReadLen(int(op / 17))
			case 14:
				r.ReadOptionTag()
			case 15:
				r.ReadIdentity()
			case 16:
				r.Skip(VecOf(OptionOf(TypeString)))
			}
			if r.Offset() < last || r.Offset() > len(data) || r.Remaining() != len(data)-r.Offset() {
				t.Fatalf("offset %d (was %d) of %d", r.Offset(), last, len(data))
			}
			last = r.Offset()
			if err := r.Err(); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
		}
	})
}
