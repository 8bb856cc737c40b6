package fuel

import (
	"errors"
	"fmt"
)

var errTruncated = errors.New("unexpected end of the binary")

// reader decodes the primitive encodings of the binary format. It is strict
// about LEB128 (length and unused bits), as wazero is: a looser reader could
// see a different instruction sequence than the compiler does.
type reader struct {
	b   []byte
	off int
}

func (r *reader) eof() bool { return r.off >= len(r.b) }

func (r *reader) u8() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) uleb(maxBytes int, lastMax byte) (uint64, error) {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c, err := r.u8()
		if err != nil {
			return 0, err
		}
		if i == maxBytes-1 && c > lastMax {
			return 0, errors.New("LEB128 value overflows its type")
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 value too long")
}

func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(5, 0x0f)
	return uint32(v), err
}

// sleb reads a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits uint) (int64, error) {
	maxBytes := int((bits + 6) / 7)
	var v int64
	var shift uint
	for i := 0; i < maxBytes; i++ {
		c, err := r.u8()
		if err != nil {
			return 0, err
		}
		if i == maxBytes-1 {
			if c&0x80 != 0 {
				return 0, errors.New("signed LEB128 value too long")
			}
			used := bits - 7*uint(maxBytes-1)
			val := c & 0x7f
			sign := (val >> (used - 1)) & 1
			upper := val >> used
			want := byte(0)
			if sign == 1 {
				want = byte(1<<(7-used)) - 1
			}
			if upper != want {
				return 0, errors.New("signed LEB128 value overflows its type")
			}
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
	return 0, errors.New("signed LEB128 value too long")
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, errTruncated
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// count reads a vector length and checks it against the bytes left, each
// element taking at least minSize bytes, so a forged count cannot make us
// allocate more than the binary's size.
func (r *reader) count(minSize int) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(minSize) > uint64(len(r.b)-r.off) {
		return 0, fmt.Errorf("a vector claims %d elements, more than its section holds", n)
	}
	return n, nil
}

func (r *reader) name() error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	_, err = r.bytes(uint64(n))
	return err
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func (r *reader) str() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(uint64(n))
	return string(b), err
}
