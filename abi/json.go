package abi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrJSONValue is wrapped by every error that converting JSON to a value returns.
var ErrJSONValue = errors.New("invalid JSON value")

// The JSON form of values, used by the HTTP API, the WebSocket protocol and
// the CLI:
//
//   - bool: true or false;
//   - integers: numbers (u64 and i64 are written exactly, and also accepted as
//     strings of digits, since many JSON readers lose precision past 2^53);
//   - f32, f64: numbers; NaN and the infinities as the strings "NaN",
//     "Infinity" and "-Infinity";
//   - String: a string;
//   - Bytes: a hex string (a leading 0x is accepted);
//   - IdentityId: 64 hex digits (a leading 0x is accepted);
//   - Timestamp: microseconds since the Unix epoch as a number; an RFC 3339
//     string is accepted too;
//   - Option<T>: null for None, else T's form. When T is itself an Option,
//     Some is written {"some": value} so that Some(None) differs from None;
//   - Vec<T>: an array.

// AppendJSON appends the JSON form of v, a value of type t.
func AppendJSON(buf []byte, t Type, v Value) []byte {
	switch t.Kind {
	case KindBool:
		return strconv.AppendBool(buf, v.AsBool())
	case KindU8, KindU16, KindU32, KindU64:
		return strconv.AppendUint(buf, v.Bits, 10)
	case KindI8, KindI16, KindI32, KindI64, KindTimestamp:
		return strconv.AppendInt(buf, int64(v.Bits), 10)
	case KindF32, KindF64:
		f := v.AsFloat()
		switch {
		case math.IsNaN(f):
			return append(buf, `"NaN"`...)
		case math.IsInf(f, 1):
			return append(buf, `"Infinity"`...)
		case math.IsInf(f, -1):
			return append(buf, `"-Infinity"`...)
		}
		bits := 64
		if t.Kind == KindF32 {
			bits = 32
		}
		return strconv.AppendFloat(buf, f, 'g', -1, bits)
	case KindString:
		return AppendJSONString(buf, v.Str)
	case KindBytes, KindIdentity:
		buf = append(buf, '"')
		buf = hex.AppendEncode(buf, []byte(v.Str))
		return append(buf, '"')
	case KindOption:
		if len(v.Elems) == 0 {
			return append(buf, "null"...)
		}
		if t.Elem.Kind == KindOption {
			buf = append(buf, `{"some":`...)
			buf = AppendJSON(buf, *t.Elem, v.Elems[0])
			return append(buf, '}')
		}
		return AppendJSON(buf, *t.Elem, v.Elems[0])
	case KindVec:
		buf = append(buf, '[')
		for i, e := range v.Elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendJSON(buf, *t.Elem, e)
		}
		return append(buf, ']')
	}
	return append(buf, "null"...)
}

// AppendJSONString appends s as a JSON string without allocating. It
// escapes what JSON requires and replaces invalid UTF-8 with U+FFFD, as
// encoding/json does, but leaves <, > and & readable.
func AppendJSONString(buf []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript string literals.
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// marshalNoEscape is json.Marshal without HTML escaping, so that "<" in a
// type such as Option<String> or a user's text stays readable.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// AppendRowJSON appends a row as a JSON object keyed by column name, in
// column order.
func AppendRowJSON(buf []byte, table *TableDef, row []Value) []byte {
	buf = append(buf, '{')
	for i, c := range table.Columns {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendJSONString(buf, c.Name)
		buf = append(buf, ':')
		buf = AppendJSON(buf, c.Type, row[i])
	}
	return append(buf, '}')
}

// ValueFromJSON converts the JSON form of a value of type t.
func ValueFromJSON(t Type, data []byte) (Value, error) {
	if x, ok := plainJSON(data); ok {
		return valueFromAny(t, x, 0)
	}
	var x any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return Value{}, fmt.Errorf("%w: %v", ErrJSONValue, err)
	}
	if dec.More() {
		return Value{}, fmt.Errorf("%w: more than one JSON value", ErrJSONValue)
	}
	return valueFromAny(t, x, 0)
}

// plainJSON decodes the commonest argument forms (a number, a string
// without escapes, true, false, null) without a json.Decoder, giving the
// value the Decoder (with UseNumber) gives; it declines anything else,
// surrounding spaces included. Reducer calls arrive at tens of thousands a
// second, and a Decoder per argument was a tenth of the server's CPU.
func plainJSON(b []byte) (any, bool) {
	switch {
	case len(b) == 0:
		return nil, false
	case b[0] == '"':
		if len(b) < 2 || b[len(b)-1] != '"' {
			return nil, false
		}
		in := b[1 : len(b)-1]
		for _, c := range in {
			if c == '"' || c == '\\' || c < 0x20 {
				return nil, false
			}
		}
		if !utf8.Valid(in) {
			return nil, false
		}
		return string(in), true
	case string(b) == "true":
		return true, true
	case string(b) == "false":
		return false, true
	case string(b) == "null":
		return nil, true
	case isJSONNumber(b):
		return json.Number(b), true
	}
	return nil, false
}

// isJSONNumber: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// ArgsFromJSON converts a JSON array of reducer arguments to the BSATN of
// the argument product. Errors name the parameter.
func ArgsFromJSON(params []ParamDef, data []byte) ([]byte, error) {
	var raw []json.RawMessage
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("[]")
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: arguments must be a JSON array: %v", ErrJSONValue, err)
	}
	if len(raw) != len(params) {
		return nil, fmt.Errorf("%w: expected %d argument%s (%s), got %d", ErrJSONValue,
			len(params), plural(len(params)), describeParams(params), len(raw))
	}
	w := Writer{}
	for i, p := range params {
		v, err := ValueFromJSON(p.Type, raw[i])
		if err != nil {
			return nil, fmt.Errorf("argument %d (%s: %s): %w", i+1, p.Name, p.Type, err)
		}
		w.writeValue(v)
	}
	return w.buf, nil
}

func describeParams(params []ParamDef) string {
	if len(params) == 0 {
		return "none"
	}
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = p.Name + ": " + p.Type.String()
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func valueFromAny(t Type, x any, depth int) (Value, error) {
	if depth > maxTypeDepth {
		return Value{}, fmt.Errorf("%w: nested deeper than %d levels", ErrJSONValue, maxTypeDepth)
	}
	bad := func(want string) (Value, error) {
		return Value{}, fmt.Errorf("%w: expected %s for %s, got %s", ErrJSONValue, want, t, describeJSON(x))
	}
	switch t.Kind {
	case KindBool:
		b, ok := x.(bool)
		if !ok {
			return bad("true or false")
		}
		return Bool(b), nil
	case KindU8, KindU16, KindU32, KindU64:
		s, ok := numberText(x, t.Kind == KindU64)
		if !ok {
			return bad("a number")
		}
		n, err := strconv.ParseUint(s, 10, 8*t.Kind.FixedSize())
		if err != nil {
			return Value{}, fmt.Errorf("%w: %s is not a %s (0 to %d)", ErrJSONValue, s, t, uint64(math.MaxUint64)>>(64-8*t.Kind.FixedSize()))
		}
		return Value{Kind: t.Kind, Bits: n}, nil
	case KindI8, KindI16, KindI32, KindI64:
		s, ok := numberText(x, t.Kind == KindI64)
		if !ok {
			return bad("a number")
		}
		n, err := strconv.ParseInt(s, 10, 8*t.Kind.FixedSize())
		if err != nil {
			return Value{}, fmt.Errorf("%w: %s is not an %s", ErrJSONValue, s, t)
		}
		return Value{Kind: t.Kind, Bits: uint64(n)}, nil
	case KindF32, KindF64:
		var f float64
		switch v := x.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(string(v), 64); err != nil {
				return bad("a number")
			}
		case string:
			switch v {
			case "NaN":
				f = math.NaN()
			case "Infinity":
				f = math.Inf(1)
			case "-Infinity":
				f = math.Inf(-1)
			default:
				return bad("a number")
			}
		default:
			return bad("a number")
		}
		if t.Kind == KindF32 {
			return F32(float32(f)), nil
		}
		return F64(f), nil
	case KindString:
		s, ok := x.(string)
		if !ok {
			return bad("a string")
		}
		return String(s), nil
	case KindBytes:
		s, ok := x.(string)
		if !ok {
			return bad("a hex string")
		}
		b, err := hex.DecodeString(trimHexPrefix(s))
		if err != nil {
			return bad("a hex string")
		}
		return Bytes(b), nil
	case KindIdentity:
		s, ok := x.(string)
		if !ok {
			return bad("an IdentityId (64 hex digits)")
		}
		id, err := ParseIdentity(s)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %v", ErrJSONValue, err)
		}
		return IdentityValue(id), nil
	case KindTimestamp:
		if s, ok := x.(string); ok {
			if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return Timestamp(ts.UnixMicro()), nil
			}
		}
		s, ok := numberText(x, true)
		if !ok {
			return bad("microseconds since the Unix epoch or an RFC 3339 time")
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("microseconds since the Unix epoch or an RFC 3339 time")
		}
		return Timestamp(n), nil
	case KindOption:
		if x == nil {
			return None(), nil
		}
		if t.Elem.Kind == KindOption {
			m, ok := x.(map[string]any)
			inner, has := m["some"]
			if !ok || !has || len(m) != 1 {
				return bad(`null or {"some": value}`)
			}
			x = inner
		}
		v, err := valueFromAny(*t.Elem, x, depth+1)
		if err != nil {
			return Value{}, err
		}
		return Some(v), nil
	case KindVec:
		arr, ok := x.([]any)
		if !ok {
			return bad("an array")
		}
		elems := make([]Value, len(arr))
		for i, e := range arr {
			v, err := valueFromAny(*t.Elem, e, depth+1)
			if err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			elems[i] = v
		}
		return Vec(elems...), nil
	}
	return Value{}, fmt.Errorf("%w: cannot convert to type %s", ErrJSONValue, t)
}

// numberText returns the digits of a JSON integer; strings of digits are
// accepted when allowString is set (for 64-bit values).
func numberText(x any, allowString bool) (string, bool) {
	switch v := x.(type) {
	case json.Number:
		s := string(v)
		if strings.ContainsAny(s, ".eE") {
			// Accept 3.0 or 1e3 when they are whole numbers.
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return "", false
			}
			return strconv.FormatFloat(f, 'f', 0, 64), true
		}
		return s, true
	case string:
		if allowString && v != "" {
			return v, true
		}
	}
	return "", false
}

func trimHexPrefix(s string) string {
	return strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
}

func describeJSON(x any) string {
	switch v := x.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return "the number " + string(v)
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return "the string " + strconv.Quote(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", x)
}
