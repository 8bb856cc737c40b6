package fuel

import (
	"errors"
	"fmt"
	"slices"
)

// Names of the globals the rewrite adds and exports.
const (
	FuelGlobal  = "__fuel"
	DepthGlobal = "__depth"
)

// The host function the rewrite imports when [Config.Refuel] is set: a
// check site that finds the fuel below zero calls it (type [] -> []) with
// the fuel written back to [FuelGlobal], and reads the global again after
// it returns; the host refills the global from the call's reserve
// ([Meter.Refuel]). Modules may not import from MeterModule themselves.
const (
	MeterModule = "spacetime_meter"
	RefuelFunc  = "refuel"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrMalformed: the binary is not a well-formed module.
	ErrMalformed = errors.New("malformed WebAssembly module")
	// ErrUnsupported: the module uses a feature the metering cannot bound
	// (exception handling, GC).
	ErrUnsupported = errors.New("unsupported WebAssembly feature")
	// ErrLimit: the module is larger than a [Limits] field allows.
	ErrLimit = errors.New("module exceeds a limit")
)

// Limits bound the shape of a module. Zero fields take their value from
// [DefaultLimits].
type Limits struct {
	// MaxFunctions bounds the functions, imported and defined.
	MaxFunctions int
	// MaxBodyBytes bounds the code of one function.
	MaxBodyBytes int
	// MaxLocals bounds one function's locals, parameters included.
	MaxLocals int
	// MaxNesting bounds how deep blocks, loops and ifs nest.
	MaxNesting int
	// MaxTableElements bounds a table's declared initial size.
	MaxTableElements uint32
	// MaxDataBytes bounds the bytes of all data segments together.
	MaxDataBytes int
	// MaxSectionEntries bounds the entries of the type, import, global,
	// export, element and data sections.
	MaxSectionEntries int
}

// DefaultLimits leave room for large Go guests (about 10k functions, the
// largest body well under 1 MiB) and refuse shapes that only make a
// compiler work hard.
var DefaultLimits = Limits{
	MaxFunctions:      200_000,
	MaxBodyBytes:      4 << 20,
	MaxLocals:         50_000,
	MaxNesting:        10_000,
	MaxTableElements:  1 << 20,
	MaxDataBytes:      64 << 20,
	MaxSectionEntries: 100_000,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&d.MaxFunctions, l.MaxFunctions)
	set(&d.MaxBodyBytes, l.MaxBodyBytes)
	set(&d.MaxLocals, l.MaxLocals)
	set(&d.MaxNesting, l.MaxNesting)
	set(&d.MaxDataBytes, l.MaxDataBytes)
	set(&d.MaxSectionEntries, l.MaxSectionEntries)
	if l.MaxTableElements > 0 {
		d.MaxTableElements = l.MaxTableElements
	}
	return d
}

// Config is what Instrument adds and checks.
type Config struct {
	// InitialFuel is the value __fuel holds when an instance starts, so a
	// start function or an export called before the host sets the global
	// runs on a finite budget. It must be positive.
	InitialFuel int64
	// MaxCallDepth, when positive, adds the __depth counter with this
	// initial value: calls nest at most that deep.
	MaxCallDepth uint32
	// HostCallCost is charged for each call to an imported function on top
	// of the call instruction's own unit: a host call costs tens of
	// nanoseconds to microseconds, hundreds of guest instructions, and a
	// loop of host calls must not buy that time at one unit a call.
	HostCallCost int64
	// Refuel makes check sites call the host ([MeterModule].[RefuelFunc])
	// when the fuel runs out instead of trapping at once, so that the host
	// can hand a call its budget in slices (see [Meter]) and a long call
	// returns to Go at every slice. The import shifts every defined
	// function's index by one; every index is renumbered.
	Refuel bool
	Limits Limits
}

// Result is an instrumented module.
type Result struct {
	// Wasm is the rewritten binary.
	Wasm []byte
	// Functions counts the functions, imported and defined.
	Functions int
	// MemoryMinPages is the initial size of the module's memory (imported
	// or defined), in 64 KiB pages; HasMemory says whether it has one.
	MemoryMinPages uint32
	HasMemory      bool
	// DataBytes is the size of all data segments.
	DataBytes int
	// Depth says whether __depth was added.
	Depth bool
	// Refuel says whether the module imports [MeterModule].[RefuelFunc]
	// (Config.Refuel, and the module defines a function).
	Refuel bool
}

const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// rank gives the order sections must appear in.
var rank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

type funcSig struct {
	params  int
	ptypes  []byte
	results []byte
}

type section struct {
	id   byte
	body []byte
}

// module is what the rewrite needs to know about the original.
type module struct {
	lim       Limits
	cfg       Config
	sections  []section
	types     []funcSig
	funcTypes []uint32 // type of each function, imported first
	nImpFuncs int
	nGlobals  uint32 // imported and defined
	globalSec []byte // body of the global section, nil if none
	tableSec  []byte // the table section with every maximum capped
	exportSec []byte
	hasMemory bool
	memMin    uint32
	dataBytes int
	// extraTypes are appended to the type section, encoded: [] -> results,
	// for wrapping bodies of functions with several results, and the
	// refuel functions' types.
	extraTypes [][]byte
	blockTypes map[string]uint32
	// refuel: the module imports the refuel function, at function index
	// nImpFuncs; every original index at or above it is shifted by one.
	refuel    bool
	refuelTyp uint32
	// checkTyp is the type (i64) -> i64 of the function the rewrite
	// appends after the module's own (index len(funcTypes)+1), which
	// check sites call when their fuel is spent: keeping the host call and
	// the trap out of every metered body keeps the code a check site adds
	// to hot loops small.
	checkTyp uint32
	// passFuncs are further check functions, appended after checkFunc, one
	// per list of local types: they take and return the fuel and every
	// local of the function whose check site calls them (see underflow).
	passFuncs map[string]uint32 // local types -> index among them
	passTyps  []uint32
	passLocs  [][]byte
}

// checkFunc returns the index of the appended check function.
func (m *module) checkFunc() uint32 { return uint32(len(m.funcTypes)) + 1 }

// fidx returns the rewritten index of the original function idx.
func (m *module) fidx(idx uint32) uint32 {
	if m.refuel && idx >= uint32(m.nImpFuncs) {
		return idx + 1
	}
	return idx
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Instrument checks wasm and returns it with fuel metering added. See the
// package documentation for what it adds and checks.
func Instrument(wasm []byte, cfg Config) (*Result, error) {
	if cfg.InitialFuel <= 0 {
		return nil, errors.New("fuel: InitialFuel must be positive")
	}
	m := &module{lim: cfg.Limits.withDefaults(), cfg: cfg, blockTypes: map[string]uint32{}}
	if err := m.decode(wasm); err != nil {
		return nil, err
	}
	out, err := m.encode()
	if err != nil {
		return nil, err
	}
	return &Result{
		Wasm: out, Functions: len(m.funcTypes), MemoryMinPages: m.memMin, HasMemory: m.hasMemory,
		DataBytes: m.dataBytes, Depth: cfg.MaxCallDepth > 0, Refuel: m.refuel,
	}, nil
}

func (m *module) decode(b []byte) error {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return malformed("no \\0asm magic number")
	}
	if b[4] != 1 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return malformed("binary version %x is not 1", b[4:8])
	}
	r := &reader{b: b, off: 8}
	last := 0
	var codeSeen bool
	var nDefined uint32
	for !r.eof() {
		id, err := r.u8()
		if err != nil {
			return malformed("%v", err)
		}
		size, err := r.u32()
		if err != nil {
			return malformed("section %d: %v", id, err)
		}
		body, err := r.bytes(uint64(size))
		if err != nil {
			return malformed("section %d: %v", id, err)
		}
		if id != secCustom {
			rk, ok := rank[id]
			if !ok {
				return malformed("unknown section id %d", id)
			}
			if rk <= last {
				return malformed("section %d is out of order or repeated", id)
			}
			last = rk
		}
		sr := &reader{b: body}
		switch id {
		case secCustom:
			// A name, then anything; wazero decodes the "name" section,
			// allocating by its counts.
			var name string
			if name, err = sr.str(); err == nil {
				if name == "name" {
					err = checkNames(&reader{b: body[sr.off:]})
				}
				sr.off = len(body)
			}
		case secType:
			err = m.decodeTypes(sr)
		case secImport:
			err = m.decodeImports(sr)
		case secFunction:
			var n uint32
			n, err = sr.count(1)
			nDefined = n
			for i := uint32(0); err == nil && i < n; i++ {
				var ti uint32
				if ti, err = sr.u32(); err == nil {
					if int(ti) >= len(m.types) {
						err = fmt.Errorf("function %d has type %d, which does not exist", i, ti)
					}
					m.funcTypes = append(m.funcTypes, ti)
				}
			}
			if err == nil && len(m.funcTypes) > m.lim.MaxFunctions {
				return fmt.Errorf("%w: the module has %d functions; at most %d are accepted", ErrLimit, len(m.funcTypes), m.lim.MaxFunctions)
			}
		case secTable:
			err = m.decodeTables(sr)
		case secMemory:
			err = m.decodeMemories(sr)
		case secTag:
			return fmt.Errorf("%w: the module declares exception tags; exception handling is not supported", ErrUnsupported)
		case secGlobal:
			m.globalSec = body
			err = m.decodeGlobals(sr)
		case secExport:
			m.exportSec = body
			err = m.decodeExports(sr)
		case secData:
			err = m.decodeData(sr)
		case secCode:
			codeSeen = true
			// Decoded while encoding: the rewrite walks each body once.
			sr.off = len(body)
		case secElement:
			// Read, not just copied: wazero allocates by its counts.
			err = m.decodeElements(sr)
		case secStart:
			// Read, not copied: the rewrite renumbers the index, and an
			// empty section read as function 0 would become valid.
			var idx uint32
			if idx, err = sr.u32(); err == nil && int(idx) >= len(m.funcTypes) {
				err = fmt.Errorf("the start function %d does not exist", idx)
			}
		case secDataCount:
			_, err = sr.u32()
		}
		if err != nil {
			if errors.Is(err, ErrLimit) || errors.Is(err, ErrUnsupported) {
				return err
			}
			return malformed("section %d: %v", id, err)
		}
		if !sr.eof() {
			return malformed("section %d has %d bytes after its contents", id, len(body)-sr.off)
		}
		m.sections = append(m.sections, section{id: id, body: body})
	}
	if nDefined > 0 && !codeSeen {
		return malformed("the module declares %d functions but has no code section", nDefined)
	}
	return nil
}

func isValType(c byte) bool {
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return true
	}
	return false
}

func (m *module) entries(r *reader, minSize int, what string) (uint32, error) {
	n, err := r.count(minSize)
	if err != nil {
		return 0, err
	}
	if int(n) > m.lim.MaxSectionEntries {
		return 0, fmt.Errorf("%w: the module has %d %s; at most %d are accepted", ErrLimit, n, what, m.lim.MaxSectionEntries)
	}
	return n, nil
}

func (m *module) decodeTypes(r *reader) error {
	n, err := m.entries(r, 3, "types")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		form, err := r.u8()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return fmt.Errorf("%w: type %d has form 0x%02x; only function types are supported", ErrUnsupported, i, form)
		}
		var sig funcSig
		for k := 0; k < 2; k++ {
			c, err := r.count(1)
			if err != nil {
				return err
			}
			vs, err := r.bytes(uint64(c))
			if err != nil {
				return err
			}
			for _, v := range vs {
				if !isValType(v) {
					return fmt.Errorf("%w: type %d has value type 0x%02x", ErrUnsupported, i, v)
				}
			}
			if k == 0 {
				sig.params = len(vs)
				sig.ptypes = vs
			} else {
				sig.results = vs
			}
		}
		m.types = append(m.types, sig)
	}
	return nil
}

func (m *module) limits(r *reader, memory bool) (minV uint32, err error) {
	flags, err := r.u8()
	if err != nil {
		return 0, err
	}
	if flags > 3 || (!memory && flags > 1) {
		return 0, fmt.Errorf("limits flags 0x%02x are not supported", flags)
	}
	if minV, err = r.u32(); err != nil {
		return 0, err
	}
	if flags&1 != 0 {
		if _, err = r.u32(); err != nil {
			return 0, err
		}
	}
	return minV, nil
}

func (m *module) table(r *reader) error {
	rt, err := r.u8()
	if err != nil {
		return err
	}
	if rt != 0x70 && rt != 0x6f {
		return fmt.Errorf("table element type 0x%02x is not supported", rt)
	}
	minV, err := m.limits(r, false)
	if err != nil {
		return err
	}
	if minV > m.lim.MaxTableElements {
		return fmt.Errorf("%w: a table starts with %d elements; at most %d are accepted", ErrLimit, minV, m.lim.MaxTableElements)
	}
	return nil
}

func (m *module) memory(r *reader) error {
	minV, err := m.limits(r, true)
	if err != nil {
		return err
	}
	if m.hasMemory {
		return fmt.Errorf("%w: the module has more than one memory", ErrUnsupported)
	}
	m.hasMemory, m.memMin = true, minV
	return nil
}

func (m *module) decodeImports(r *reader) error {
	n, err := m.entries(r, 4, "imports")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		mod, err := r.str()
		if err != nil {
			return err
		}
		if mod == MeterModule {
			// It would hand out the call's reserve on demand.
			return fmt.Errorf("%w: import %d is from %q, a module the host reserves", ErrUnsupported, i, mod)
		}
		if err := r.name(); err != nil {
			return err
		}
		kind, err := r.u8()
		if err != nil {
			return err
		}
		switch kind {
		case 0:
			ti, err := r.u32()
			if err != nil {
				return err
			}
			if int(ti) >= len(m.types) {
				return fmt.Errorf("import %d has type %d, which does not exist", i, ti)
			}
			m.funcTypes = append(m.funcTypes, ti)
			m.nImpFuncs++
		case 1:
			err = m.table(r)
		case 2:
			err = m.memory(r)
		case 3:
			var vt []byte
			if vt, err = r.bytes(2); err == nil && (!isValType(vt[0]) || vt[1] > 1) {
				err = fmt.Errorf("%w: import %d: global of type 0x%02x, mutability %d", ErrUnsupported, i, vt[0], vt[1])
			}
			m.nGlobals++
		default:
			return fmt.Errorf("%w: import %d has kind %d (tags and other kinds are not supported)", ErrUnsupported, i, kind)
		}
		if err != nil {
			return err
		}
	}
	if len(m.funcTypes) > m.lim.MaxFunctions {
		return fmt.Errorf("%w: the module imports %d functions; at most %d are accepted", ErrLimit, len(m.funcTypes), m.lim.MaxFunctions)
	}
	return nil
}

// decodeTables also rewrites each table's maximum to at most
// MaxTableElements: table.grow is priced per element, but a budget of 1e9
// would otherwise buy an 8 GB table, which no memory limit covers.
func (m *module) decodeTables(r *reader) error {
	n, err := m.entries(r, 3, "tables")
	if err != nil {
		return err
	}
	m.tableSec = appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		start := r.off
		if err := m.table(r); err != nil {
			return err
		}
		t := &reader{b: r.b[start:r.off]}
		rt, _ := t.u8()
		flags, _ := t.u8()
		minV, _ := t.u32()
		maxV := m.lim.MaxTableElements
		if flags&1 != 0 {
			declared, _ := t.u32()
			maxV = min(maxV, declared)
		}
		m.tableSec = append(m.tableSec, rt, 1)
		m.tableSec = appendU32(m.tableSec, minV)
		m.tableSec = appendU32(m.tableSec, maxV)
	}
	return nil
}

func (m *module) decodeMemories(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if err := m.memory(r); err != nil {
			return err
		}
	}
	return nil
}

// constExpr skips a constant expression. A global.get in it may only name
// a global that exists at that point (maxGlobal excluded), which keeps it
// off the globals the rewrite appends.
func (m *module) constExpr(r *reader, maxGlobal uint32) error {
	for {
		op, err := r.u8()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b:
			return nil
		case 0x41:
			_, err = r.sleb(32)
		case 0x42:
			_, err = r.sleb(64)
		case 0x43:
			_, err = r.bytes(4)
		case 0x44:
			_, err = r.bytes(8)
		case 0x23:
			var g uint32
			if g, err = r.u32(); err == nil && g >= maxGlobal {
				err = fmt.Errorf("a constant expression reads global %d, which does not exist", g)
			}
		case 0xd0:
			_, err = r.sleb(33)
		case 0xd2:
			var f uint32
			if f, err = r.u32(); err == nil && int(f) >= len(m.funcTypes) {
				err = fmt.Errorf("a constant expression refers to function %d, which does not exist", f)
			}
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant expressions
		case 0xfd:
			var sub uint32
			if sub, err = r.u32(); err == nil {
				if sub != 12 {
					err = fmt.Errorf("SIMD instruction %d in a constant expression", sub)
				} else {
					_, err = r.bytes(16)
				}
			}
		default:
			return fmt.Errorf("instruction 0x%02x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}

func (m *module) decodeGlobals(r *reader) error {
	n, err := m.entries(r, 4, "globals")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		vt, err := r.bytes(2)
		if err != nil {
			return err
		}
		if !isValType(vt[0]) || vt[1] > 1 {
			return fmt.Errorf("%w: global %d has type 0x%02x, mutability %d", ErrUnsupported, i, vt[0], vt[1])
		}
		if err := m.constExpr(r, m.nGlobals); err != nil {
			return err
		}
		m.nGlobals++
	}
	return nil
}

func (m *module) decodeExports(r *reader) error {
	n, err := m.entries(r, 3, "exports")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		ln, err := r.u32()
		if err != nil {
			return err
		}
		name, err := r.bytes(uint64(ln))
		if err != nil {
			return err
		}
		if s := string(name); s == FuelGlobal || s == DepthGlobal {
			return fmt.Errorf("the module exports %q, a name the host reserves", s)
		}
		kind, err := r.u8()
		if err != nil {
			return err
		}
		idx, err := r.u32()
		if err != nil {
			return err
		}
		// An export of the index a global the rewrite appends would become
		// valid (and hand out the fuel under another name).
		if (kind == 3 && idx >= m.nGlobals) || (kind == 0 && int(idx) >= len(m.funcTypes)) {
			return fmt.Errorf("export %q refers to %s %d, which does not exist", name, map[byte]string{0: "function", 3: "global"}[kind], idx)
		}
	}
	return nil
}

func (m *module) funcIndexes(r *reader) error {
	n, err := r.count(1)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		f, err := r.u32()
		if err != nil {
			return err
		}
		if int(f) >= len(m.funcTypes) {
			return fmt.Errorf("an element segment refers to function %d, which does not exist", f)
		}
	}
	return nil
}

func (m *module) decodeElements(r *reader) error {
	n, err := m.entries(r, 3, "element segments")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return fmt.Errorf("element segment %d has flags %d", i, flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // an explicit table index
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		if flags&1 == 0 { // active: an offset
			if err := m.constExpr(r, m.nGlobals); err != nil {
				return err
			}
		}
		if flags&3 != 0 { // element kind or reference type
			if _, err := r.u8(); err != nil {
				return err
			}
		}
		if flags&4 == 0 {
			err = m.funcIndexes(r)
		} else {
			var k uint32
			if k, err = r.count(2); err == nil {
				for j := uint32(0); j < k && err == nil; j++ {
					err = m.constExpr(r, m.nGlobals)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *module) decodeData(r *reader) error {
	n, err := m.entries(r, 2, "data segments")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		flag, err := r.u32()
		if err != nil {
			return err
		}
		switch flag {
		case 0:
			err = m.constExpr(r, m.nGlobals)
		case 1:
		case 2:
			if _, err = r.u32(); err == nil {
				err = m.constExpr(r, m.nGlobals)
			}
		default:
			err = fmt.Errorf("data segment %d has flags %d", i, flag)
		}
		if err != nil {
			return err
		}
		ln, err := r.u32()
		if err != nil {
			return err
		}
		if _, err := r.bytes(uint64(ln)); err != nil {
			return err
		}
		m.dataBytes += int(ln)
		if m.dataBytes > m.lim.MaxDataBytes {
			return fmt.Errorf("%w: the module's data segments hold more than %d bytes", ErrLimit, m.lim.MaxDataBytes)
		}
	}
	return nil
}

// encode writes the module back with the globals, exports and bodies the
// rewrite adds, inserting the import, global and export sections where they
// belong if the original has none, and renumbering function indexes when
// the refuel function is imported.
func (m *module) encode() ([]byte, error) {
	fuelIdx := m.nGlobals
	depthIdx := m.nGlobals + 1
	// Only a module that defines functions has check sites (and then it
	// has a type section to take the import's type from).
	if m.cfg.Refuel && len(m.funcTypes) > m.nImpFuncs {
		m.refuel = true
		m.refuelTyp = m.funcType(nil)
		m.checkTyp = m.addType([]byte{0x7e}, []byte{0x7e})
	}
	// Code first: it may add block types to the type section.
	var code []byte
	for _, s := range m.sections {
		if s.id == secCode {
			var err error
			if code, err = m.encodeCode(s.body, fuelIdx, depthIdx); err != nil {
				return nil, err
			}
		}
	}
	out := make([]byte, 0, len(code)+1024)
	out = append(out, "\x00asm\x01\x00\x00\x00"...)
	wroteImport, wroteGlobal, wroteExport := !m.refuel, false, false
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	flushBefore := func(rk int) {
		if !wroteImport && rk > rank[secImport] {
			wroteImport = true
			emit(secImport, m.imports(nil))
		}
		if !wroteGlobal && rk > rank[secGlobal] {
			wroteGlobal = true
			emit(secGlobal, m.globals(nil))
		}
		if !wroteExport && rk > rank[secExport] {
			wroteExport = true
			emit(secExport, m.exports(nil, fuelIdx, depthIdx))
		}
	}
	for _, s := range m.sections {
		if s.id != secCustom {
			flushBefore(rank[s.id])
		}
		switch s.id {
		case secType:
			emit(secType, m.typesBody(s.body))
		case secImport:
			wroteImport = true
			if m.refuel {
				emit(secImport, m.imports(s.body))
			} else {
				emit(secImport, s.body)
			}
		case secGlobal:
			wroteGlobal = true
			emit(secGlobal, m.globals(s.body))
		case secExport:
			wroteExport = true
			emit(secExport, m.exports(s.body, fuelIdx, depthIdx))
		case secFunction:
			if m.refuel {
				e := appendU32(nil, m.checkTyp)
				for _, t := range m.passTyps {
					e = appendU32(e, t)
				}
				emit(secFunction, rewriteVec(s.body, 1+len(m.passTyps), e))
			} else {
				emit(secFunction, s.body)
			}
		case secCode:
			emit(secCode, code)
		case secTable:
			emit(secTable, m.tableSec)
		case secStart:
			if m.refuel {
				idx, _ := (&reader{b: s.body}).u32()
				emit(secStart, appendU32(nil, m.fidx(idx)))
			} else {
				emit(secStart, s.body)
			}
		case secElement:
			emit(secElement, m.renumberElements(s.body))
		case secData:
			emit(secData, m.renumberData(s.body))
		case secCustom:
			if body, keep := m.renumberCustom(s.body); keep {
				emit(secCustom, body)
			}
		default:
			emit(s.id, s.body)
		}
	}
	flushBefore(100)
	if len(m.extraTypes) > 0 && !slices.ContainsFunc(m.sections, func(s section) bool { return s.id == secType }) {
		return nil, malformed("functions without a type section")
	}
	return out, nil
}

// funcType returns the index of the type [] -> results, appending it to
// the type section if the module has none.
func (m *module) funcType(results []byte) uint32 {
	key := string(results)
	idx, ok := m.blockTypes[key]
	if !ok {
		for i, t := range m.types {
			if t.params == 0 && string(t.results) == key {
				idx, ok = uint32(i), true
				break
			}
		}
		if !ok {
			idx = m.addType(nil, results)
		}
		m.blockTypes[key] = idx
	}
	return idx
}

// addType appends the type params -> results and returns its index.
func (m *module) addType(params, results []byte) uint32 {
	e := []byte{0x60}
	e = appendU32(e, uint32(len(params)))
	e = append(e, params...)
	e = appendU32(e, uint32(len(results)))
	e = append(e, results...)
	m.extraTypes = append(m.extraTypes, e)
	return uint32(len(m.types) + len(m.extraTypes) - 1)
}

// imports appends the refuel import after every original import, so that
// it takes function index nImpFuncs.
func (m *module) imports(body []byte) []byte {
	var e []byte
	e = appendU32(e, uint32(len(MeterModule)))
	e = append(e, MeterModule...)
	e = appendU32(e, uint32(len(RefuelFunc)))
	e = append(e, RefuelFunc...)
	e = append(e, 0)
	e = appendU32(e, m.refuelTyp)
	return rewriteVec(body, 1, e)
}

// rewriteVec returns a vector section body with extra entries appended.
func rewriteVec(body []byte, extra int, entries []byte) []byte {
	var n uint32
	rest := body
	if body != nil {
		r := &reader{b: body}
		n, _ = r.u32() // decoded before: cannot fail
		rest = body[r.off:]
	}
	out := appendU32(nil, n+uint32(extra))
	out = append(out, rest...)
	return append(out, entries...)
}

func (m *module) typesBody(body []byte) []byte {
	if len(m.extraTypes) == 0 {
		return body
	}
	var entries []byte
	for _, e := range m.extraTypes {
		entries = append(entries, e...)
	}
	return rewriteVec(body, len(m.extraTypes), entries)
}

func (m *module) globals(body []byte) []byte {
	if m.refuel && body != nil {
		r := &reader{b: body}
		n, _ := r.u32() // decoded before: none of these reads can fail
		o := appendU32(nil, n)
		for i := uint32(0); i < n; i++ {
			vt, _ := r.bytes(2)
			o = m.copyConstExpr(r, append(o, vt...))
		}
		body = o
	}
	e := []byte{0x7e, 1, 0x42}
	e = appendS64(e, m.cfg.InitialFuel)
	e = append(e, 0x0b)
	n := 1
	if m.cfg.MaxCallDepth > 0 {
		e = append(e, 0x7f, 1, 0x41)
		e = appendS64(e, int64(m.cfg.MaxCallDepth))
		e = append(e, 0x0b)
		n++
	}
	return rewriteVec(body, n, e)
}

func (m *module) exports(body []byte, fuelIdx, depthIdx uint32) []byte {
	if m.refuel && body != nil {
		r := &reader{b: body}
		n, _ := r.u32() // decoded before: none of these reads can fail
		o := appendU32(nil, n)
		for i := uint32(0); i < n; i++ {
			start := r.off
			r.name()
			kind, _ := r.u8()
			o = append(o, r.b[start:r.off]...)
			idx, _ := r.u32()
			if kind == 0 {
				idx = m.fidx(idx)
			}
			o = appendU32(o, idx)
		}
		body = o
	}
	var e []byte
	e = appendU32(e, uint32(len(FuelGlobal)))
	e = append(e, FuelGlobal...)
	e = append(e, 3)
	e = appendU32(e, fuelIdx)
	n := 1
	if m.cfg.MaxCallDepth > 0 {
		e = appendU32(e, uint32(len(DepthGlobal)))
		e = append(e, DepthGlobal...)
		e = append(e, 3)
		e = appendU32(e, depthIdx)
		n++
	}
	return rewriteVec(body, n, e)
}

// blockType returns the encoding of a block type [] -> results.
func (m *module) blockType(results []byte) []byte {
	switch len(results) {
	case 0:
		return []byte{0x40}
	case 1:
		return []byte{results[0]}
	}
	return appendS64(nil, int64(m.funcType(results)))
}

// checkNames reads the name section's function and local names, so that
// their counts are checked against the bytes there (wazero allocates by
// them).
func checkNames(r *reader) error {
	for !r.eof() {
		id, err := r.u8()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		body, err := r.bytes(uint64(size))
		if err != nil {
			return fmt.Errorf("name section: %w", err)
		}
		sr := &reader{b: body}
		switch id {
		case 1, 2:
			n, err := sr.count(2)
			for i := uint32(0); err == nil && i < n; i++ {
				if _, err = sr.u32(); err != nil {
					break
				}
				if id == 1 {
					err = sr.name()
					continue
				}
				var k uint32
				k, err = sr.count(2)
				for j := uint32(0); err == nil && j < k; j++ {
					if _, err = sr.u32(); err == nil {
						err = sr.name()
					}
				}
			}
			if err != nil {
				return fmt.Errorf("name section: %w", err)
			}
		}
	}
	return nil
}
