package runtime

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file reads just enough of a WebAssembly binary to check its imports and
// exports before anything is compiled: the type, import, function and export
// sections. Compiling a Go module costs about 0.6 s of CPU, so a module that
// would be refused anyway must be refused before that, and with a message that
// names what is wrong.

type valType byte

const (
	valI32       valType = 0x7f
	valI64       valType = 0x7e
	valF32       valType = 0x7d
	valF64       valType = 0x7c
	valV128      valType = 0x7b
	valFuncref   valType = 0x70
	valExternref valType = 0x6f
)

func (v valType) String() string {
	switch v {
	case valI32:
		return "i32"
	case valI64:
		return "i64"
	case valF32:
		return "f32"
	case valF64:
		return "f64"
	case valV128:
		return "v128"
	case valFuncref:
		return "funcref"
	case valExternref:
		return "externref"
	}
	return fmt.Sprintf("type(0x%02x)", byte(v))
}

type funcType struct {
	params, results []valType
}

func (f funcType) String() string {
	return "(" + joinTypes(f.params) + ") -> (" + joinTypes(f.results) + ")"
}

func joinTypes(ts []valType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// Extern kinds in import and export descriptions.
const (
	externFunc   byte = 0
	externTable  byte = 1
	externMemory byte = 2
	externGlobal byte = 3
	externTag    byte = 4
)

func externName(k byte) string {
	switch k {
	case externFunc:
		return "function"
	case externTable:
		return "table"
	case externMemory:
		return "memory"
	case externGlobal:
		return "global"
	case externTag:
		return "tag"
	}
	return fmt.Sprintf("kind %d", k)
}

type wasmImport struct {
	module, name string
	kind         byte
	typeIdx      uint32 // functions only
}

type wasmExport struct {
	name string
	kind byte
	idx  uint32
}

// wasmInfo is what validation needs from a module.
type wasmInfo struct {
	types     []funcType
	imports   []wasmImport
	funcTypes []uint32 // type index of each function, imported ones first
	exports   []wasmExport
	// hasStart is set when the module has a start section.
	hasStart bool
}

func (w *wasmInfo) export(name string) (wasmExport, bool) {
	for _, e := range w.exports {
		if e.name == name {
			return e, true
		}
	}
	return wasmExport{}, false
}

func (w *wasmInfo) funcSig(funcIdx uint32) (funcType, bool) {
	if int64(funcIdx) >= int64(len(w.funcTypes)) {
		return funcType{}, false
	}
	ti := w.funcTypes[funcIdx]
	if int64(ti) >= int64(len(w.types)) {
		return funcType{}, false
	}
	return w.types[ti], true
}

var errTruncated = errors.New("unexpected end of the binary")

type wasmReader struct {
	b   []byte
	off int
}

func (r *wasmReader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *wasmReader) u32() (uint32, error) {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 0xffffffff {
				return 0, errors.New("LEB128 value overflows u32")
			}
			return uint32(v), nil
		}
	}
	return 0, errors.New("LEB128 value longer than 5 bytes")
}

func (r *wasmReader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)-r.off) {
		return nil, errTruncated
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

func (r *wasmReader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("a name is not valid UTF-8")
	}
	return string(b), nil
}

// count reads a vector length and checks it against the bytes left, each
// element taking at least minSize bytes, so a forged count cannot make us
// allocate more than the binary's size.
func (r *wasmReader) count(minSize int) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(minSize) > uint64(len(r.b)-r.off) {
		return 0, fmt.Errorf("a vector claims %d elements, more than the section holds", n)
	}
	return n, nil
}

func (r *wasmReader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flags&1 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// parseWasm reads the sections validation needs and skips the others.
func parseWasm(b []byte) (*wasmInfo, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly binary (no \\0asm magic number); upload the .wasm file your build produced")
	}
	if b[4] != 1 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return nil, fmt.Errorf("WebAssembly binary version %d is not supported; only version 1 is", uint32(b[4])|uint32(b[5])<<8|uint32(b[6])<<16|uint32(b[7])<<24)
	}
	info := &wasmInfo{}
	r := &wasmReader{b: b, off: 8}
	for r.off < len(b) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		body, err := r.bytes(size)
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		sr := &wasmReader{b: body}
		switch id {
		case 1:
			err = parseTypes(sr, info)
		case 2:
			err = parseImports(sr, info)
		case 3:
			err = parseFunctions(sr, info)
		case 7:
			err = parseExports(sr, info)
		case 8:
			info.hasStart = true
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
	}
	return info, nil
}

func parseTypes(r *wasmReader, info *wasmInfo) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	info.types = make([]funcType, 0, n)
	for i := uint32(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return fmt.Errorf("type %d: form 0x%02x is not a function type", i, form)
		}
		var ft funcType
		for _, dst := range []*[]valType{&ft.params, &ft.results} {
			k, err := r.count(1)
			if err != nil {
				return err
			}
			vs := make([]valType, k)
			for j := range vs {
				c, err := r.byte()
				if err != nil {
					return err
				}
				vs[j] = valType(c)
			}
			*dst = vs
		}
		info.types = append(info.types, ft)
	}
	return nil
}

func parseImports(r *wasmReader, info *wasmInfo) error {
	n, err := r.count(4)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		var im wasmImport
		if im.module, err = r.name(); err != nil {
			return err
		}
		if im.name, err = r.name(); err != nil {
			return err
		}
		if im.kind, err = r.byte(); err != nil {
			return err
		}
		switch im.kind {
		case externFunc:
			if im.typeIdx, err = r.u32(); err != nil {
				return err
			}
			info.funcTypes = append(info.funcTypes, im.typeIdx)
		case externTable:
			if _, err = r.byte(); err != nil {
				return err
			}
			err = r.limits()
		case externMemory:
			err = r.limits()
		case externGlobal:
			if _, err = r.bytes(2); err != nil {
				return err
			}
		default:
			// Unknown kinds (tags, ...) cannot be skipped safely; they are
			// refused by the allow-list anyway, so stop here with the import recorded.
			info.imports = append(info.imports, im)
			return nil
		}
		if err != nil {
			return err
		}
		info.imports = append(info.imports, im)
	}
	return nil
}

func parseFunctions(r *wasmReader, info *wasmInfo) error {
	n, err := r.count(1)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		ti, err := r.u32()
		if err != nil {
			return err
		}
		info.funcTypes = append(info.funcTypes, ti)
	}
	return nil
}

func parseExports(r *wasmReader, info *wasmInfo) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		var ex wasmExport
		if ex.name, err = r.name(); err != nil {
			return err
		}
		if ex.kind, err = r.byte(); err != nil {
			return err
		}
		if ex.idx, err = r.u32(); err != nil {
			return err
		}
		info.exports = append(info.exports, ex)
	}
	return nil
}
