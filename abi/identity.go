package abi

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// IdentitySize is the size of an IdentityId in bytes.
const IdentitySize = 32

// ConnectionIDSize is the size of a ConnectionId in bytes.
const ConnectionIDSize = 16

// Identity is an IdentityId: 32 bytes, shown as 64 hex digits. The zero value
// is the unauthenticated caller.
type Identity [IdentitySize]byte

// ConnectionID identifies one client connection; zero for calls that have none
// (HTTP calls and lifecycle reducers run by the host).
type ConnectionID [ConnectionIDSize]byte

// IsZero reports whether id is the unauthenticated identity.
func (id Identity) IsZero() bool { return id == Identity{} }

// String returns id as 64 lower-case hex digits.
func (id Identity) String() string { return hex.EncodeToString(id[:]) }

// Words returns id as the four little-endian u64 words __call_reducer__ takes.
func (id Identity) Words() (w0, w1, w2, w3 uint64) {
	return le64(id[0:]), le64(id[8:]), le64(id[16:]), le64(id[24:])
}

// IdentityFromWords is the inverse of [Identity.Words].
func IdentityFromWords(w0, w1, w2, w3 uint64) Identity {
	var id Identity
	put64(id[0:], w0)
	put64(id[8:], w1)
	put64(id[16:], w2)
	put64(id[24:], w3)
	return id
}

// ParseIdentity parses 64 hex digits, with an optional 0x prefix.
func ParseIdentity(s string) (Identity, error) {
	var id Identity
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s) != 2*IdentitySize {
		return id, fmt.Errorf("abi: an IdentityId is %d hex digits, got %d", 2*IdentitySize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("abi: IdentityId is not hex: %w", err)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id Identity) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *Identity) UnmarshalText(b []byte) error {
	p, err := ParseIdentity(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// IsZero reports whether c is the zero connection id.
func (c ConnectionID) IsZero() bool { return c == ConnectionID{} }

// String returns c as 32 lower-case hex digits.
func (c ConnectionID) String() string { return hex.EncodeToString(c[:]) }

// Words returns c as the two little-endian u64 words __call_reducer__ takes.
func (c ConnectionID) Words() (w0, w1 uint64) { return le64(c[0:]), le64(c[8:]) }

// ConnectionIDFromWords is the inverse of [ConnectionID.Words].
func ConnectionIDFromWords(w0, w1 uint64) ConnectionID {
	var c ConnectionID
	put64(c[0:], w0)
	put64(c[8:], w1)
	return c
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func put64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	b[4], b[5], b[6], b[7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
}
