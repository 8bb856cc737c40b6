package abi

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error that decoding BSATN returns.
var ErrMalformed = errors.New("malformed BSATN")

// Writer appends BSATN to a byte slice. The zero Writer is ready to use;
// Bytes returns what was written. Generated code and the host both use it.
type Writer struct{ buf []byte }

// NewWriter returns a Writer that appends to buf.
func NewWriter(buf []byte) *Writer { return &Writer{buf: buf} }

// Bytes returns the encoded bytes.
func (w *Writer) Bytes() []byte { return w.buf }

// Reset empties the writer, keeping its buffer.
func (w *Writer) Reset() { w.buf = w.buf[:0] }

func (w *Writer) WriteBool(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}
func (w *Writer) WriteU8(v uint8)   { w.buf = append(w.buf, v) }
func (w *Writer) WriteU16(v uint16) { w.buf = append(w.buf, byte(v), byte(v>>8)) }
func (w *Writer) WriteU32(v uint32) {
	w.buf = append(w.buf, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}
func (w *Writer) WriteU64(v uint64) {
	w.buf = append(w.buf, byte(v), byte(v>>8), byte(v>>16), byte(v>>24),
		byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}
func (w *Writer) WriteI8(v int8)            { w.WriteU8(uint8(v)) }
func (w *Writer) WriteI16(v int16)          { w.WriteU16(uint16(v)) }
func (w *Writer) WriteI32(v int32)          { w.WriteU32(uint32(v)) }
func (w *Writer) WriteI64(v int64)          { w.WriteU64(uint64(v)) }
func (w *Writer) WriteF32(v float32)        { w.WriteU32(math.Float32bits(v)) }
func (w *Writer) WriteF64(v float64)        { w.WriteU64(math.Float64bits(v)) }
func (w *Writer) WriteTimestamp(us int64)   { w.WriteU64(uint64(us)) }
func (w *Writer) WriteIdentity(id Identity) { w.buf = append(w.buf, id[:]...) }

// WriteString writes a u32 length and the string's bytes.
func (w *Writer) WriteString(s string) {
	w.WriteU32(uint32(len(s)))
	w.buf = append(w.buf, s...)
}

// WriteBytes writes a u32 length and the bytes.
func (w *Writer) WriteBytes(b []byte) {
	w.WriteU32(uint32(len(b)))
	w.buf = append(w.buf, b...)
}

// WriteLen writes the u32 length that starts a Vec.
func (w *Writer) WriteLen(n int) { w.WriteU32(uint32(n)) }

// WriteSome and WriteNone write an Option's tag; after WriteSome comes the value.
func (w *Writer) WriteSome() { w.buf = append(w.buf, 0) }
func (w *Writer) WriteNone() { w.buf = append(w.buf, 1) }

// WriteRaw appends already-encoded bytes.
func (w *Writer) WriteRaw(b []byte) { w.buf = append(w.buf, b...) }

// WriteValue writes a dynamic value of type t.
func (w *Writer) WriteValue(t Type, v Value) error {
	if !v.Conforms(t) {
		return fmt.Errorf("abi: value %s is not a %s", v, t)
	}
	w.writeValue(v)
	return nil
}

func (w *Writer) writeValue(v Value) {
	switch v.Kind {
	case KindBool, KindU8, KindI8:
		w.WriteU8(uint8(v.Bits))
	case KindU16, KindI16:
		w.WriteU16(uint16(v.Bits))
	case KindU32, KindI32, KindF32:
		w.WriteU32(uint32(v.Bits))
	case KindU64, KindI64, KindF64, KindTimestamp:
		w.WriteU64(v.Bits)
	case KindString, KindBytes:
		w.WriteString(v.Str)
	case KindIdentity:
		w.buf = append(w.buf, v.Str...)
	case KindOption:
		if len(v.Elems) == 0 {
			w.WriteNone()
		} else {
			w.WriteSome()
			w.writeValue(v.Elems[0])
		}
	case KindVec:
		w.WriteLen(len(v.Elems))
		for _, e := range v.Elems {
			w.writeValue(e)
		}
	}
}

// Reader decodes BSATN. The first error sticks: later reads return zero
// values, and Err reports it, so generated code can read a whole row and check
// once.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over buf.
func NewReader(buf []byte) *Reader { return &Reader{buf: buf} }

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Remaining is the number of bytes not yet read.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// Fail records err (wrapped in ErrMalformed) unless an error is already set.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(format, args...), r.off)
	}
}

func (r *Reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.Fail("%s needs %d bytes, %d left", what, n, len(r.buf)-r.off)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

func (r *Reader) ReadBool() bool {
	b := r.take(1, "bool")
	if b == nil {
		return false
	}
	if b[0] > 1 {
		r.off--
		r.Fail("bool byte is %d, not 0 or 1", b[0])
		return false
	}
	return b[0] == 1
}

func (r *Reader) ReadU8() uint8 {
	b := r.take(1, "u8")
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *Reader) ReadU16() uint16 {
	b := r.take(2, "u16")
	if b == nil {
		return 0
	}
	return uint16(b[0]) | uint16(b[1])<<8
}

func (r *Reader) ReadU32() uint32 {
	b := r.take(4, "u32")
	if b == nil {
		return 0
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func (r *Reader) ReadU64() uint64 {
	b := r.take(8, "u64")
	if b == nil {
		return 0
	}
	return le64(b)
}

func (r *Reader) ReadI8() int8         { return int8(r.ReadU8()) }
func (r *Reader) ReadI16() int16       { return int16(r.ReadU16()) }
func (r *Reader) ReadI32() int32       { return int32(r.ReadU32()) }
func (r *Reader) ReadI64() int64       { return int64(r.ReadU64()) }
func (r *Reader) ReadF32() float32     { return math.Float32frombits(r.ReadU32()) }
func (r *Reader) ReadF64() float64     { return math.Float64frombits(r.ReadU64()) }
func (r *Reader) ReadTimestamp() int64 { return int64(r.ReadU64()) }

func (r *Reader) ReadIdentity() Identity {
	var id Identity
	copy(id[:], r.take(IdentitySize, "IdentityId"))
	return id
}

// ReadLen reads a u32 length and checks that at least n*minElemSize bytes
// remain, so a corrupt length cannot make the caller allocate gigabytes.
func (r *Reader) ReadLen(minElemSize int) int {
	n := r.ReadU32()
	if r.err != nil {
		return 0
	}
	if minElemSize < 1 {
		minElemSize = 1
	}
	if uint64(n)*uint64(minElemSize) > uint64(r.Remaining()) {
		r.Fail("length %d exceeds the %d bytes left", n, r.Remaining())
		return 0
	}
	return int(n)
}

// ReadString reads a length-prefixed UTF-8 string.
func (r *Reader) ReadString() string {
	n := r.ReadLen(1)
	b := r.take(n, "string")
	if b == nil {
		return ""
	}
	if !utf8.Valid(b) {
		r.off -= n
		r.Fail("string is not valid UTF-8")
		return ""
	}
	return string(b)
}

// ReadBytes reads length-prefixed bytes. The result is a copy.
func (r *Reader) ReadBytes() []byte {
	n := r.ReadLen(1)
	b := r.take(n, "bytes")
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// ReadOptionTag reads an Option's tag and reports whether a value follows.
func (r *Reader) ReadOptionTag() bool {
	b := r.take(1, "Option tag")
	if b == nil {
		return false
	}
	switch b[0] {
	case 0:
		return true
	case 1:
		return false
	}
	r.off--
	r.Fail("Option tag is %d, not 0 (some) or 1 (none)", b[0])
	return false
}

// ReadValue reads a dynamic value of type t.
func (r *Reader) ReadValue(t Type) Value { return r.readValue(t, 0) }

func (r *Reader) readValue(t Type, depth int) Value {
	if r.err != nil {
		return Value{}
	}
	if depth > maxTypeDepth {
		r.Fail("type nested deeper than %d levels", maxTypeDepth)
		return Value{}
	}
	switch t.Kind {
	case KindBool:
		return Bool(r.ReadBool())
	case KindU8, KindI8:
		return Value{Kind: t.Kind, Bits: signExtend(t.Kind, uint64(r.ReadU8()))}
	case KindU16, KindI16:
		return Value{Kind: t.Kind, Bits: signExtend(t.Kind, uint64(r.ReadU16()))}
	case KindU32, KindI32, KindF32:
		return Value{Kind: t.Kind, Bits: signExtend(t.Kind, uint64(r.ReadU32()))}
	case KindU64, KindI64, KindF64, KindTimestamp:
		return Value{Kind: t.Kind, Bits: r.ReadU64()}
	case KindString:
		return Value{Kind: KindString, Str: r.ReadString()}
	case KindBytes:
		n := r.ReadLen(1)
		return Value{Kind: KindBytes, Str: string(r.take(n, "bytes"))}
	case KindIdentity:
		return Value{Kind: KindIdentity, Str: string(r.take(IdentitySize, "IdentityId"))}
	case KindOption:
		if t.Elem == nil {
			r.Fail("Option without an element type")
			return Value{}
		}
		if r.ReadOptionTag() {
			return Some(r.readValue(*t.Elem, depth+1))
		}
		return None()
	case KindVec:
		if t.Elem == nil {
			r.Fail("Vec without an element type")
			return Value{}
		}
		n := r.ReadLen(MinSize(*t.Elem))
		if r.err != nil {
			return Value{}
		}
		elems := make([]Value, n)
		for i := range elems {
			elems[i] = r.readValue(*t.Elem, depth+1)
			if r.err != nil {
				return Value{}
			}
		}
		return Value{Kind: KindVec, Elems: elems}
	}
	r.Fail("cannot decode type %s", t)
	return Value{}
}

// Skip advances past one value of type t without building it.
func (r *Reader) Skip(t Type) { r.skip(t, 0) }

func (r *Reader) skip(t Type, depth int) {
	if r.err != nil {
		return
	}
	if depth > maxTypeDepth {
		r.Fail("type nested deeper than %d levels", maxTypeDepth)
		return
	}
	if n := t.Kind.FixedSize(); n > 0 {
		if t.Kind == KindBool {
			r.ReadBool()
			return
		}
		r.take(n, t.Kind.String())
		return
	}
	switch t.Kind {
	case KindString:
		// As ReadString, without making the string: validating a row must
		// not allocate.
		n := r.ReadLen(1)
		if b := r.take(n, "string"); b != nil && !utf8.Valid(b) {
			r.off -= n
			r.Fail("string is not valid UTF-8")
		}
	case KindBytes:
		r.take(r.ReadLen(1), "bytes")
	case KindOption:
		if t.Elem == nil {
			r.Fail("Option without an element type")
			return
		}
		if r.ReadOptionTag() {
			r.skip(*t.Elem, depth+1)
		}
	case KindVec:
		if t.Elem == nil {
			r.Fail("Vec without an element type")
			return
		}
		n := r.ReadLen(MinSize(*t.Elem))
		for i := 0; i < n && r.err == nil; i++ {
			r.skip(*t.Elem, depth+1)
		}
	default:
		r.Fail("cannot decode type %s", t)
	}
}

func signExtend(k Kind, bits uint64) uint64 {
	switch k {
	case KindI8:
		return uint64(int64(int8(bits)))
	case KindI16:
		return uint64(int64(int16(bits)))
	case KindI32:
		return uint64(int64(int32(bits)))
	}
	return bits
}

// MinSize is the fewest bytes a value of type t can take in BSATN.
func MinSize(t Type) int {
	if n := t.Kind.FixedSize(); n > 0 {
		return n
	}
	switch t.Kind {
	case KindString, KindBytes, KindVec:
		return 4
	case KindOption:
		return 1
	}
	return 1
}

// EncodeRow appends the BSATN of a row (a product of the columns) to buf.
func EncodeRow(buf []byte, types []Type, row []Value) ([]byte, error) {
	if len(row) != len(types) {
		return buf, fmt.Errorf("abi: row has %d values for %d columns", len(row), len(types))
	}
	w := Writer{buf: buf}
	for i, t := range types {
		if err := w.WriteValue(t, row[i]); err != nil {
			return buf, fmt.Errorf("column %d: %w", i, err)
		}
	}
	return w.buf, nil
}

// DecodeRow decodes a row of the given column types. It fails unless data is
// exactly one row.
func DecodeRow(types []Type, data []byte) ([]Value, error) {
	r := Reader{buf: data}
	row := make([]Value, len(types))
	for i, t := range types {
		row[i] = r.ReadValue(t)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.Remaining() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last column", ErrMalformed, r.Remaining())
	}
	return row, nil
}

// ValidateRow checks that data is exactly one row of the given column types,
// without building values.
func ValidateRow(types []Type, data []byte) error {
	r := Reader{buf: data}
	for _, t := range types {
		r.Skip(t)
	}
	if r.err != nil {
		return r.err
	}
	if r.Remaining() != 0 {
		return fmt.Errorf("%w: %d bytes after the last column", ErrMalformed, r.Remaining())
	}
	return nil
}
