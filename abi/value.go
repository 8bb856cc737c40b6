package abi

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"strconv"
)

// Value is a dynamically typed value, used by the host where it must look
// inside rows it does not have Go types for: index keys, filters, JSON.
//
// Bits holds bool (0 or 1), integers (signed ones as two's complement,
// sign-extended), float bits and Timestamp microseconds. Str holds String,
// Bytes and IdentityId (32 raw bytes). Elems holds the elements of a Vec, and
// of an Option: none when None, one when Some.
type Value struct {
	Kind  Kind
	Bits  uint64
	Str   string
	Elems []Value
}

// Constructors for values of each kind.
func Bool(b bool) Value {
	if b {
		return Value{Kind: KindBool, Bits: 1}
	}
	return Value{Kind: KindBool}
}
func U8(v uint8) Value                { return Value{Kind: KindU8, Bits: uint64(v)} }
func U16(v uint16) Value              { return Value{Kind: KindU16, Bits: uint64(v)} }
func U32(v uint32) Value              { return Value{Kind: KindU32, Bits: uint64(v)} }
func U64(v uint64) Value              { return Value{Kind: KindU64, Bits: v} }
func I8(v int8) Value                 { return Value{Kind: KindI8, Bits: uint64(int64(v))} }
func I16(v int16) Value               { return Value{Kind: KindI16, Bits: uint64(int64(v))} }
func I32(v int32) Value               { return Value{Kind: KindI32, Bits: uint64(int64(v))} }
func I64(v int64) Value               { return Value{Kind: KindI64, Bits: uint64(v)} }
func F32(v float32) Value             { return Value{Kind: KindF32, Bits: uint64(math.Float32bits(v))} }
func F64(v float64) Value             { return Value{Kind: KindF64, Bits: math.Float64bits(v)} }
func String(s string) Value           { return Value{Kind: KindString, Str: s} }
func Bytes(b []byte) Value            { return Value{Kind: KindBytes, Str: string(b)} }
func IdentityValue(id Identity) Value { return Value{Kind: KindIdentity, Str: string(id[:])} }
func Timestamp(micros int64) Value    { return Value{Kind: KindTimestamp, Bits: uint64(micros)} }
func Some(v Value) Value              { return Value{Kind: KindOption, Elems: []Value{v}} }
func None() Value                     { return Value{Kind: KindOption} }
func Vec(elems ...Value) Value        { return Value{Kind: KindVec, Elems: elems} }

// AsBool, AsUint, AsInt and AsFloat read scalar values.
func (v Value) AsBool() bool   { return v.Bits != 0 }
func (v Value) AsUint() uint64 { return v.Bits }
func (v Value) AsInt() int64   { return int64(v.Bits) }
func (v Value) AsFloat() float64 {
	if v.Kind == KindF32 {
		return float64(math.Float32frombits(uint32(v.Bits)))
	}
	return math.Float64frombits(v.Bits)
}

// AsIdentity returns the identity held by an IdentityId value.
func (v Value) AsIdentity() Identity {
	var id Identity
	copy(id[:], v.Str)
	return id
}

// IsSome reports whether an Option value holds a value.
func (v Value) IsSome() bool { return v.Kind == KindOption && len(v.Elems) == 1 }

// Equal reports whether v and w are the same value of the same kind. Floats
// compare by bits, so NaN equals itself and 0 differs from -0, matching how
// indexes key them.
func (v Value) Equal(w Value) bool { return Compare(v, w) == 0 }

// Compare orders two values of the same type the way indexes order them:
// integers and timestamps numerically, floats by IEEE total order, strings
// and bytes bytewise, None before Some, vectors lexicographically. Values of
// different kinds order by kind.
func Compare(v, w Value) int {
	if v.Kind != w.Kind {
		return cmp.Compare(v.Kind, w.Kind)
	}
	switch v.Kind {
	case KindBool, KindU8, KindU16, KindU32, KindU64:
		return cmp.Compare(v.Bits, w.Bits)
	case KindI8, KindI16, KindI32, KindI64, KindTimestamp:
		return cmp.Compare(int64(v.Bits), int64(w.Bits))
	case KindF32:
		return cmp.Compare(totalOrder32(uint32(v.Bits)), totalOrder32(uint32(w.Bits)))
	case KindF64:
		return cmp.Compare(totalOrder64(v.Bits), totalOrder64(w.Bits))
	case KindString, KindBytes, KindIdentity:
		return cmp.Compare(v.Str, w.Str)
	case KindOption:
		// None (no elements) sorts before Some.
		if len(v.Elems) != len(w.Elems) {
			return cmp.Compare(len(v.Elems), len(w.Elems))
		}
		if len(v.Elems) == 0 {
			return 0
		}
		return Compare(v.Elems[0], w.Elems[0])
	case KindVec:
		for i := 0; i < len(v.Elems) && i < len(w.Elems); i++ {
			if c := Compare(v.Elems[i], w.Elems[i]); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(v.Elems), len(w.Elems))
	}
	return 0
}

func totalOrder32(b uint32) uint32 {
	if b&(1<<31) != 0 {
		return ^b
	}
	return b | 1<<31
}

func totalOrder64(b uint64) uint64 {
	if b&(1<<63) != 0 {
		return ^b
	}
	return b | 1<<63
}

// String renders v for logs and error messages.
func (v Value) String() string {
	switch v.Kind {
	case KindBool:
		return strconv.FormatBool(v.AsBool())
	case KindU8, KindU16, KindU32, KindU64:
		return strconv.FormatUint(v.Bits, 10)
	case KindI8, KindI16, KindI32, KindI64, KindTimestamp:
		return strconv.FormatInt(int64(v.Bits), 10)
	case KindF32:
		return strconv.FormatFloat(v.AsFloat(), 'g', -1, 32)
	case KindF64:
		return strconv.FormatFloat(v.AsFloat(), 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.Str)
	case KindBytes:
		return fmt.Sprintf("0x%x", v.Str)
	case KindIdentity:
		return v.AsIdentity().String()
	case KindOption:
		if len(v.Elems) == 0 {
			return "None"
		}
		return "Some(" + v.Elems[0].String() + ")"
	case KindVec:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.String())
		}
		b.WriteByte(']')
		return b.String()
	}
	return "<invalid>"
}

// Conforms reports whether v is a value of type t.
func (v Value) Conforms(t Type) bool {
	if v.Kind != t.Kind {
		return false
	}
	switch t.Kind {
	case KindIdentity:
		return len(v.Str) == IdentitySize
	case KindOption:
		return len(v.Elems) == 0 || len(v.Elems) == 1 && v.Elems[0].Conforms(*t.Elem)
	case KindVec:
		for _, e := range v.Elems {
			if !e.Conforms(*t.Elem) {
				return false
			}
		}
	}
	return true
}
