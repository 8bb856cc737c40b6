package store

import (
	"encoding/binary"
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
)

// Index keys are an order-preserving byte encoding of column values, so a
// B-tree ordered by bytes.Compare orders rows the way abi.Compare orders
// values, and the encoding of a prefix of the columns is a byte prefix of
// the encoding of all of them (every column's encoding is self-delimiting):
//
//	bool, u8           the byte
//	u16..u64           big-endian
//	i8..i64, Timestamp big-endian with the sign bit flipped
//	f32, f64           IEEE bits, sign bit flipped (all bits when negative)
//	IdentityId         the 32 bytes
//	String, Bytes      content with 00 escaped as 00 FF, then 00 01
//	Option             00 for None, 01 then the value for Some
//	Vec                01 before each element, then 00
//
// The encoder reads BSATN that has already been validated.

// encodeKey appends the key encoding of the BSATN value of type t at the
// start of b to dst, and returns dst and the number of BSATN bytes read.
func encodeKey(dst []byte, t *abi.Type, b []byte) ([]byte, int) {
	switch t.Kind {
	case abi.KindBool, abi.KindU8:
		return append(dst, b[0]), 1
	case abi.KindI8:
		return append(dst, b[0]^0x80), 1
	case abi.KindU16:
		return append(dst, b[1], b[0]), 2
	case abi.KindI16:
		return append(dst, b[1]^0x80, b[0]), 2
	case abi.KindU32:
		return append(dst, b[3], b[2], b[1], b[0]), 4
	case abi.KindI32:
		return append(dst, b[3]^0x80, b[2], b[1], b[0]), 4
	case abi.KindU64:
		return append(dst, b[7], b[6], b[5], b[4], b[3], b[2], b[1], b[0]), 8
	case abi.KindI64, abi.KindTimestamp:
		return append(dst, b[7]^0x80, b[6], b[5], b[4], b[3], b[2], b[1], b[0]), 8
	case abi.KindF32:
		v := binary.LittleEndian.Uint32(b)
		if v&(1<<31) != 0 {
			v = ^v
		} else {
			v |= 1 << 31
		}
		return binary.BigEndian.AppendUint32(dst, v), 4
	case abi.KindF64:
		v := binary.LittleEndian.Uint64(b)
		if v&(1<<63) != 0 {
			v = ^v
		} else {
			v |= 1 << 63
		}
		return binary.BigEndian.AppendUint64(dst, v), 8
	case abi.KindIdentity:
		return append(dst, b[:abi.IdentitySize]...), abi.IdentitySize
	case abi.KindString, abi.KindBytes:
		n := int(binary.LittleEndian.Uint32(b))
		for _, c := range b[4 : 4+n] {
			if c == 0 {
				dst = append(dst, 0, 0xFF)
			} else {
				dst = append(dst, c)
			}
		}
		return append(dst, 0, 1), 4 + n
	case abi.KindOption:
		if b[0] == 1 {
			return append(dst, 0), 1
		}
		dst = append(dst, 1)
		dst, n := encodeKey(dst, t.Elem, b[1:])
		return dst, 1 + n
	case abi.KindVec:
		cnt := int(binary.LittleEndian.Uint32(b))
		off := 4
		for i := 0; i < cnt; i++ {
			dst = append(dst, 1)
			var n int
			dst, n = encodeKey(dst, t.Elem, b[off:])
			off += n
		}
		return append(dst, 0), off
	}
	panic(fmt.Sprintf("store: encodeKey of invalid type %s", t))
}

// prefixEnd returns the smallest key greater than every key that starts with
// p, or nil when there is none (p is empty or all FF).
func prefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xFF {
			end := make([]byte, i+1)
			copy(end, p)
			end[i]++
			return end
		}
	}
	return nil
}

func appendRowID(dst []byte, id uint64) []byte { return binary.BigEndian.AppendUint64(dst, id) }
