package abi

import (
	"fmt"
	"strings"
)

// Kind is the shape of a column or value type.
type Kind uint8

// The kinds of the schema language. The zero Kind is invalid.
const (
	KindInvalid Kind = iota
	KindBool
	KindU8
	KindU16
	KindU32
	KindU64
	KindI8
	KindI16
	KindI32
	KindI64
	KindF32
	KindF64
	KindString
	KindBytes
	KindIdentity  // 32 bytes; the all-zero identity is the unauthenticated caller
	KindTimestamp // i64 microseconds since the Unix epoch
	KindOption    // Option<Elem>: tag 0 = some, 1 = none
	KindVec       // Vec<Elem>: u32 length, then the elements
)

var kindNames = [...]string{
	KindInvalid:   "invalid",
	KindBool:      "bool",
	KindU8:        "u8",
	KindU16:       "u16",
	KindU32:       "u32",
	KindU64:       "u64",
	KindI8:        "i8",
	KindI16:       "i16",
	KindI32:       "i32",
	KindI64:       "i64",
	KindF32:       "f32",
	KindF64:       "f64",
	KindString:    "String",
	KindBytes:     "Bytes",
	KindIdentity:  "IdentityId",
	KindTimestamp: "Timestamp",
	KindOption:    "Option",
	KindVec:       "Vec",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// IsInteger reports whether k is one of the fixed-width integer kinds.
func (k Kind) IsInteger() bool { return k >= KindU8 && k <= KindI64 }

// IsSigned reports whether k is a signed integer kind.
func (k Kind) IsSigned() bool { return k >= KindI8 && k <= KindI64 }

// FixedSize is the BSATN size of a value of kind k, or 0 when it varies.
func (k Kind) FixedSize() int {
	switch k {
	case KindBool, KindU8, KindI8:
		return 1
	case KindU16, KindI16:
		return 2
	case KindU32, KindI32, KindF32:
		return 4
	case KindU64, KindI64, KindF64, KindTimestamp:
		return 8
	case KindIdentity:
		return IdentitySize
	}
	return 0
}

// Type is a column, parameter or return type. Elem is set only for Option and Vec.
//
// In JSON (the ModuleDef) a Type is its schema-language spelling, for example
// "u64", "Option<String>" or "Vec<IdentityId>".
type Type struct {
	Kind Kind
	Elem *Type
}

// Common types, for convenience.
var (
	TypeBool      = Type{Kind: KindBool}
	TypeU8        = Type{Kind: KindU8}
	TypeU16       = Type{Kind: KindU16}
	TypeU32       = Type{Kind: KindU32}
	TypeU64       = Type{Kind: KindU64}
	TypeI8        = Type{Kind: KindI8}
	TypeI16       = Type{Kind: KindI16}
	TypeI32       = Type{Kind: KindI32}
	TypeI64       = Type{Kind: KindI64}
	TypeF32       = Type{Kind: KindF32}
	TypeF64       = Type{Kind: KindF64}
	TypeString    = Type{Kind: KindString}
	TypeBytes     = Type{Kind: KindBytes}
	TypeIdentity  = Type{Kind: KindIdentity}
	TypeTimestamp = Type{Kind: KindTimestamp}
)

// OptionOf returns Option<elem>.
func OptionOf(elem Type) Type { return Type{Kind: KindOption, Elem: &elem} }

// VecOf returns Vec<elem>.
func VecOf(elem Type) Type { return Type{Kind: KindVec, Elem: &elem} }

// String returns the schema-language spelling of t.
func (t Type) String() string {
	switch t.Kind {
	case KindOption, KindVec:
		if t.Elem == nil {
			return t.Kind.String() + "<?>"
		}
		return t.Kind.String() + "<" + t.Elem.String() + ">"
	}
	return t.Kind.String()
}

// Equal reports whether t and u are the same type.
func (t Type) Equal(u Type) bool {
	if t.Kind != u.Kind {
		return false
	}
	if t.Kind == KindOption || t.Kind == KindVec {
		if t.Elem == nil || u.Elem == nil {
			return t.Elem == u.Elem
		}
		return t.Elem.Equal(*u.Elem)
	}
	return true
}

// Valid reports whether t is a well-formed type.
func (t Type) Valid() bool {
	switch t.Kind {
	case KindOption, KindVec:
		return t.Elem != nil && t.Elem.Valid()
	case KindInvalid:
		return false
	}
	return int(t.Kind) < len(kindNames) && t.Elem == nil
}

// maxTypeDepth bounds nesting such as Option<Vec<Option<...>>> so that parsing
// and decoding untrusted descriptions cannot recurse without limit.
const maxTypeDepth = 16

// ParseType parses the schema-language spelling of a type. Whitespace around
// the angle brackets is allowed. The aliases "Identity" and "string" are
// accepted for "IdentityId" and "String".
func ParseType(s string) (Type, error) {
	t, rest, err := parseType(strings.TrimSpace(s), 0)
	if err != nil {
		return Type{}, err
	}
	if strings.TrimSpace(rest) != "" {
		return Type{}, fmt.Errorf("abi: unexpected %q after type in %q", rest, s)
	}
	return t, nil
}

func parseType(s string, depth int) (Type, string, error) {
	if depth > maxTypeDepth {
		return Type{}, "", fmt.Errorf("abi: type nested deeper than %d levels", maxTypeDepth)
	}
	s = strings.TrimLeft(s, " \t")
	end := 0
	for end < len(s) && (isIdentByte(s[end])) {
		end++
	}
	name, rest := s[:end], s[end:]
	if name == "" {
		return Type{}, "", fmt.Errorf("abi: expected a type name, found %q", s)
	}
	var k Kind
	switch name {
	case "Identity":
		k = KindIdentity
	case "string":
		k = KindString
	default:
		for i, n := range kindNames {
			if i != int(KindInvalid) && n == name {
				k = Kind(i)
				break
			}
		}
	}
	if k == KindInvalid {
		return Type{}, "", fmt.Errorf("abi: unknown type %q (known: bool, u8..u64, i8..i64, f32, f64, String, Bytes, IdentityId, Timestamp, Option<T>, Vec<T>)", name)
	}
	if k != KindOption && k != KindVec {
		return Type{Kind: k}, rest, nil
	}
	rest = strings.TrimLeft(rest, " \t")
	if !strings.HasPrefix(rest, "<") {
		return Type{}, "", fmt.Errorf("abi: %s needs an element type, as in %s<u64>", name, name)
	}
	elem, rest, err := parseType(rest[1:], depth+1)
	if err != nil {
		return Type{}, "", err
	}
	rest = strings.TrimLeft(rest, " \t")
	if !strings.HasPrefix(rest, ">") {
		return Type{}, "", fmt.Errorf("abi: expected '>' to close %s<%s", name, elem)
	}
	return Type{Kind: k, Elem: &elem}, rest[1:], nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("abi: cannot marshal invalid type %s", t)
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	p, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = p
	return nil
}
