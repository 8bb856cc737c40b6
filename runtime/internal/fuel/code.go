package fuel

import (
	"errors"
	"fmt"
)

// Opcodes the rewrite reads or writes.
const (
	opUnreachable  = 0x00
	opBlock        = 0x02
	opLoop         = 0x03
	opIf           = 0x04
	opElse         = 0x05
	opEnd          = 0x0b
	opBr           = 0x0c
	opBrIf         = 0x0d
	opBrTable      = 0x0e
	opReturn       = 0x0f
	opCall         = 0x10
	opCallIndirect = 0x11
	opReturnCall   = 0x12
	opReturnCallIn = 0x13
	opCallRef      = 0x14
	opReturnCallRf = 0x15
	opLocalGet     = 0x20
	opLocalSet     = 0x21
	opLocalTee     = 0x22
	opGlobalGet    = 0x23
	opGlobalSet    = 0x24
	opI32Const     = 0x41
	opI64Const     = 0x42
	opI32Eqz       = 0x45
	opI64LtS       = 0x53
	opI32Add       = 0x6a
	opI32Sub       = 0x6b
	opI64Sub       = 0x7d
	opI64Add       = 0x7c
	opSelect       = 0x1b
	opBrOnNull     = 0xd4
	opBrOnNonNull  = 0xd6
)

// header says what a segment starts with.
type header uint8

const (
	hdrEntry header = iota // function entry: load fuel, check, depth, open the wrapper block
	hdrCheck               // after a loop instruction: charge and check
	hdrPlain               // charge without checking
	hdrDead                // unreachable code: nothing
)

type fn struct {
	m        *module
	fuelG    uint32
	depthG   uint32
	fuelL    uint32
	scratchL uint32
	depthL   uint32 // the depth left at entry, for the entry's own check
	nLocals  uint32
	results  []byte
	out, seg []byte
	hdr      header
	cnt      int64
	ctrl     int // open blocks, the function's own label included
	maxDepth bool
	// What a first pass over the body found (see rewrite): calls says it
	// has a call instruction of any kind; entryLoop that a loop instruction
	// comes before any branch, call or other control instruction from the
	// entry. atEntry tracks the latter while walking.
	calls, entryLoop, atEntry bool
	// scanning: the first pass, whose output is discarded.
	scanning bool
	// locs are the types of the locals, parameters first, when there are
	// at most maxPassLocals.
	locs []byte
	// frames are the open blocks, the function's own first; headOf is
	// the index of the wrapped loop whose head segment is being collected,
	// or -1.
	frames []frame
	headOf int
	// labels collects the current branch instruction's labels, adjusted;
	// brt is a spare buffer for br_table's.
	labels, brt []byte
}

// frame is an open block. A loop whose head calls refuel inside the loop
// makes wazero's register allocator spill the loop's live values around
// that call on every iteration, even though it rarely runs: such a loop
// is wrapped (see unwrapLoop) so that the call sits outside it.
type frame struct {
	wrapped bool  // three blocks were added around this loop
	cost    int64 // a wrapped loop's head charge
	// fold: the function's depth check is this loop's (see foldDepth);
	// entryCost is the entry's charge.
	fold      bool
	entryCost int64
}

// wrapped loops add this many blocks around themselves.
const wrapDepth = 3

func (m *module) encodeCode(body []byte, fuelG, depthG uint32) ([]byte, error) {
	r := &reader{b: body}
	n, err := r.count(1)
	if err != nil {
		return nil, malformed("code section: %v", err)
	}
	if int(n) != len(m.funcTypes)-m.nImpFuncs {
		return nil, malformed("the code section has %d bodies for %d functions", n, len(m.funcTypes)-m.nImpFuncs)
	}
	out := make([]byte, 0, len(body)*5/4+64)
	f := &fn{m: m, fuelG: fuelG, depthG: depthG, maxDepth: m.cfg.MaxCallDepth > 0}
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, malformed("code section: %v", err)
		}
		if int(size) > m.lim.MaxBodyBytes {
			return nil, fmt.Errorf("%w: function %d's code is %d bytes; at most %d are accepted", ErrLimit, int(i)+m.nImpFuncs, size, m.lim.MaxBodyBytes)
		}
		b, err := r.bytes(uint64(size))
		if err != nil {
			return nil, malformed("code section: %v", err)
		}
		fidx := m.nImpFuncs + int(i)
		rewritten, err := f.rewrite(b, m.types[m.funcTypes[fidx]])
		if err != nil {
			if errors.Is(err, ErrLimit) || errors.Is(err, ErrUnsupported) {
				return nil, fmt.Errorf("function %d: %w", fidx, err)
			}
			return nil, malformed("function %d: %v", fidx, err)
		}
		out = appendU32(out, uint32(len(rewritten)))
		out = append(out, rewritten...)
	}
	if !r.eof() {
		return nil, malformed("code section has bytes after its bodies")
	}
	nOut := n
	if m.refuel {
		b := m.checkBody(fuelG)
		out = appendU32(out, uint32(len(b)))
		out = append(out, b...)
		nOut++
		for _, locs := range m.passLocs {
			b := m.passBody(fuelG, len(locs))
			out = appendU32(out, uint32(len(b)))
			out = append(out, b...)
			nOut++
		}
	}
	return append(appendU32(make([]byte, 0, len(out)+5), nOut), out...), nil
}

// passBody is the body of a wrapped loop's check function (see
// unwrapLoop): with the fuel (below zero) in the global, it calls refuel,
// traps if the fuel is still below zero, and returns its n arguments, the
// caller's locals, as they came.
func (m *module) passBody(fuelG uint32, n int) []byte {
	o := []byte{0, opCall}
	o = appendU32(o, uint32(m.nImpFuncs))
	o = append(o, opGlobalGet)
	o = appendU32(o, fuelG)
	o = append(o, opI64Const, 0, opI64LtS, opIf, 0x40, opUnreachable, opEnd)
	for i := 0; i < n; i++ {
		o = append(o, opLocalGet)
		o = appendU32(o, uint32(i))
	}
	return append(o, opEnd)
}

// unwrapLoop closes a wrapped loop whose head charges cost. A wrapped loop
//
//	block $after (the loop's type)
//	  loop $retry
//	    block $refuel
//	      loop $l (the original)
//	        charge; br_if $refuel when the fuel is below zero
//	        ...
//	      end
//	      br $after
//	    end
//	    cold path: refuel, then br $retry
//	  end
//	  unreachable
//	end
//
// keeps the refuel call out of the loop $l. The cold path hands every
// local to its check function and takes them back as its results, so no
// value of the loop lives across the call either (a value live across a
// call is spilled wherever it is defined, the loop's back edges included).
// The fuel comes back with the head's charge added, which the head takes
// again: a loop entered through $retry is charged once, and energy does
// not depend on where refuel happens.
func (f *fn) unwrapLoop(o []byte, fr frame) []byte {
	cost := fr.cost
	o = append(o, opEnd, opBr, 2, opEnd)
	if fr.fold {
		// No depth left (see foldDepth): the fuel as a check at entry
		// would have left it, the depth global at zero, and the trap.
		// The entry took one from the depth it found, and callees put back
		// what they take: the global is -1 when the entry found none.
		o = append(o, opGlobalGet)
		o = appendU32(o, f.depthG)
		o = append(o, opI32Const, 0x7f, 0x46, opIf, 0x40, opGlobalGet) // i32.const -1; i32.eq
		o = appendU32(o, f.fuelG)
		o = append(o, opI64Const)
		o = appendS64(o, fr.entryCost)
		o = append(o, opI64Sub, opGlobalSet)
		o = appendU32(o, f.fuelG)
		o = append(o, opI32Const, 0, opGlobalSet)
		o = appendU32(o, f.depthG)
		o = append(o, opUnreachable, opEnd)
	}
	o = f.store(o)
	for i := uint32(0); i < f.nLocals; i++ {
		o = append(o, opLocalGet)
		o = appendU32(o, i)
	}
	o = append(o, opCall)
	o = appendU32(o, f.m.passFunc(f.locs))
	for i := int(f.nLocals) - 1; i >= 0; i-- {
		o = append(o, opLocalSet)
		o = appendU32(o, uint32(i))
	}
	o = append(o, opGlobalGet)
	o = appendU32(o, f.fuelG)
	o = append(o, opI64Const)
	o = appendS64(o, cost)
	o = append(o, opI64Add, opLocalSet)
	o = appendU32(o, f.fuelL)
	return append(o, opBr, 0, opEnd, opUnreachable, opEnd)
}

// maxPassLocals bounds the locals a check site hands its check function.
const maxPassLocals = 32

// passFunc returns the index of the check function for a function whose
// locals have types locs, adding it when new.
func (m *module) passFunc(locs []byte) uint32 {
	if m.passFuncs == nil {
		m.passFuncs = map[string]uint32{}
	}
	j, ok := m.passFuncs[string(locs)]
	if !ok {
		j = uint32(len(m.passLocs))
		m.passFuncs[string(locs)] = j
		m.passTyps = append(m.passTyps, m.addType(locs, locs))
		m.passLocs = append(m.passLocs, append([]byte(nil), locs...))
	}
	return m.checkFunc() + 1 + j
}

// checkBody is the check function's: it takes the fuel (below zero),
// writes it to the global, calls refuel, and returns the global's new
// value, trapping first if that is still below zero. It is not metered.
func (m *module) checkBody(fuelG uint32) []byte {
	o := []byte{0, opLocalGet, 0, opGlobalSet}
	o = appendU32(o, fuelG)
	o = append(o, opCall)
	o = appendU32(o, uint32(m.nImpFuncs))
	o = append(o, opGlobalGet)
	o = appendU32(o, fuelG)
	o = append(o, opLocalTee, 0, opI64Const, 0, opI64LtS, opIf, 0x40, opUnreachable, opEnd, opLocalGet, 0, opEnd)
	return o
}

func (f *fn) rewrite(body []byte, sig funcSig) ([]byte, error) {
	r := &reader{b: body}
	groups, err := r.count(2)
	if err != nil {
		return nil, err
	}
	declStart := r.off
	total := uint64(sig.params)
	f.locs = append(f.locs[:0], sig.ptypes...)
	for g := uint32(0); g < groups; g++ {
		c, err := r.u32()
		if err != nil {
			return nil, err
		}
		t, err := r.u8()
		if err != nil {
			return nil, err
		}
		if !isValType(t) {
			return nil, fmt.Errorf("%w: a local of value type 0x%02x", ErrUnsupported, t)
		}
		total += uint64(c)
		if total <= maxPassLocals {
			for range c {
				f.locs = append(f.locs, t)
			}
		}
		if total > uint64(f.m.lim.MaxLocals) {
			return nil, fmt.Errorf("%w: more than %d locals", ErrLimit, f.m.lim.MaxLocals)
		}
	}
	f.nLocals = uint32(total)
	f.fuelL = f.nLocals
	f.scratchL = f.nLocals + 1
	f.depthL = f.nLocals + 2
	f.results = sig.results
	// Two passes: what the entry emits depends on what the whole body
	// holds (calls, a loop before anything else). The first also does all
	// the checking; its output is thrown away.
	codeStart := r.off
	for _, scan := range []bool{true, false} {
		f.scanning = scan
		r.off = codeStart
		if scan {
			f.calls, f.entryLoop = false, false
		}
		f.atEntry = true
		f.out = appendU32(f.out[:0], groups+3)
		f.out = append(f.out, body[declStart:codeStart]...)
		f.out = append(f.out, 1, 0x7e, 1, 0x7f, 1, 0x7f) // the fuel local, an i32 scratch local, the depth local
		f.seg, f.cnt, f.hdr, f.ctrl = f.seg[:0], 0, hdrEntry, 1
		f.frames, f.headOf = append(f.frames[:0], frame{}), -1
		if err := f.code(r); err != nil {
			return nil, err
		}
	}
	// f.out is reused by the next body: the caller copies it first.
	return f.out, nil
}

// entryChecks says whether the function's entry must check its fuel. It
// need not when the function makes no call (its loops check; without one
// it runs a bounded number of instructions, and the caller's next check,
// or the host when it returns, sees the fuel spent), nor when a loop, whose
// head checks, comes before any call or branch. What the entry check is for,
// stopping a loop-free call tree, needs only that every function that
// calls checks before its first call.
func (f *fn) entryChecks() bool { return f.calls && !f.entryLoop }

// foldDepth says whether the depth check is left to the head of the loop
// the entry segment ends at: a function that counts depth, whose first
// control instruction is that loop, wrapped. A check at entry costs a
// branch and a trap block on every call (measured as most of what the
// depth counter costs a Go guest); the loop head checks anyway.
func (f *fn) foldDepth() bool {
	return f.countsDepth() && f.entryLoop && !f.entryChecks() &&
		len(f.frames) > 1 && f.frames[len(f.frames)-1].wrapped
}

// countsDepth says whether the function counts call depth: a function that
// makes no call adds at most one frame to a stack the counter bounds.
func (f *fn) countsDepth() bool { return f.maxDepth && f.calls }

// boundary ends the current segment and starts one with header h.
func (f *fn) boundary(h header) {
	f.flush()
	f.hdr = h
}

func (f *fn) flush() {
	o := f.out
	switch f.hdr {
	case hdrEntry:
		if f.foldDepth() {
			// The depth check folded into the entry loop's head: no branch
			// here. With no depth left the fuel is made negative (select,
			// no overflow), and the head's cold path traps (unwrapLoop).
			fr := &f.frames[len(f.frames)-1]
			fr.fold, fr.entryCost = true, f.cnt
			o = append(o, opGlobalGet)
			o = appendU32(o, f.fuelG)
			o = append(o, opI64Const)
			o = appendS64(o, f.cnt)
			o = append(o, opI64Sub, opI64Const)
			o = appendS64(o, -1<<62)
			o = append(o, opGlobalGet)
			o = appendU32(o, f.depthG)
			o = append(o, opLocalTee)
			o = appendU32(o, f.depthL)
			o = append(o, opSelect, opLocalSet)
			o = appendU32(o, f.fuelL)
			o = append(o, opLocalGet)
			o = appendU32(o, f.depthL)
			o = append(o, opI32Const, 1, opI32Sub, opGlobalSet)
			o = appendU32(o, f.depthG)
			o = append(o, opBlock)
			o = append(o, f.m.blockType(f.results)...)
			break
		}
		o = append(o, opGlobalGet)
		o = appendU32(o, f.fuelG)
		if f.entryChecks() {
			o = append(o, opLocalSet)
			o = appendU32(o, f.fuelL)
			o = f.check(o, f.cnt)
		} else {
			o = append(o, opI64Const)
			o = appendS64(o, f.cnt)
			o = append(o, opI64Sub, opLocalSet)
			o = appendU32(o, f.fuelL)
		}
		if f.countsDepth() {
			o = append(o, opGlobalGet)
			o = appendU32(o, f.depthG)
			// The fuel is written back before the depth trap, so the energy
			// it reports includes the entry's charge whether or not that
			// charge called refuel (which writes it back).
			o = append(o, opLocalTee)
			o = appendU32(o, f.depthL)
			o = append(o, opI32Eqz, opIf, 0x40)
			o = f.store(o)
			o = append(o, opUnreachable, opEnd, opLocalGet)
			o = appendU32(o, f.depthL)
			o = append(o, opI32Const, 1, opI32Sub, opGlobalSet)
			o = appendU32(o, f.depthG)
		}
		o = append(o, opBlock)
		o = append(o, f.m.blockType(f.results)...)
	case hdrCheck:
		if f.headOf >= 0 {
			// A wrapped loop's head (see unwrapLoop): out to the cold path.
			f.frames[f.headOf].cost = f.cnt
			o = append(o, opLocalGet)
			o = appendU32(o, f.fuelL)
			o = append(o, opI64Const)
			o = appendS64(o, f.cnt)
			o = append(o, opI64Sub, opLocalTee)
			o = appendU32(o, f.fuelL)
			o = append(o, opI64Const, 0, opI64LtS, opBrIf, 1)
			f.headOf = -1
			break
		}
		o = f.check(o, f.cnt)
	case hdrPlain:
		if f.cnt > 0 {
			o = append(o, opLocalGet)
			o = appendU32(o, f.fuelL)
			o = append(o, opI64Const)
			o = appendS64(o, f.cnt)
			o = append(o, opI64Sub, opLocalSet)
			o = appendU32(o, f.fuelL)
		}
	}
	f.out = append(o, f.seg...)
	f.seg, f.cnt = f.seg[:0], 0
}

// check charges cost and traps when the fuel is then below zero. It checks
// even when cost is zero (FIELD_NOTES: a free check site that skips its
// check lets a loop of empty blocks spin).
func (f *fn) check(o []byte, cost int64) []byte {
	o = append(o, opLocalGet)
	o = appendU32(o, f.fuelL)
	o = append(o, opI64Const)
	o = appendS64(o, cost)
	o = append(o, opI64Sub, opLocalTee)
	o = appendU32(o, f.fuelL)
	return f.underflow(o)
}

// underflow follows a charge that left the fuel local on the stack as an
// i64.lt_s operand pair: when the fuel is below zero, it is written back
// and the function traps, or, with Config.Refuel, the check function asks
// the host for the next slice (it sets the global; the local takes its new
// value) and traps only if the fuel is still below zero: the call's whole
// budget is spent. Both branches are off the path a call takes until its
// slice runs out.
func (f *fn) underflow(o []byte) []byte {
	o = append(o, opI64Const, 0, opI64LtS, opIf, 0x40, opLocalGet)
	o = appendU32(o, f.fuelL)
	if f.m.refuel {
		o = append(o, opCall)
		o = appendU32(o, f.m.checkFunc())
		o = append(o, opLocalSet)
		o = appendU32(o, f.fuelL)
		return append(o, opEnd)
	}
	o = append(o, opGlobalSet)
	o = appendU32(o, f.fuelG)
	return append(o, opUnreachable, opEnd)
}

// Shifts from a bulk instruction's length operand to its price: a unit per
// 8 bytes (memory and copies run at about that rate of the cheapest guest
// instructions), per 8 bytes of each page memory.grow adds and zeroes, and
// per table element.
const (
	bytesShift = 3
	pagesShift = 16 - bytesShift
)

// chargeLength charges the length on top of the stack (kept there),
// shifted right (or left, for pages), and traps before the instruction runs
// if the fuel does not cover it. Without it a loop of memory.fill over the
// whole memory would buy milliseconds a unit.
func (f *fn) chargeLength(o []byte, shr, shl byte) []byte {
	o = append(o, opLocalTee)
	o = appendU32(o, f.scratchL)
	o = append(o, opLocalGet)
	o = appendU32(o, f.fuelL)
	o = append(o, opLocalGet)
	o = appendU32(o, f.scratchL)
	o = append(o, 0xad) // i64.extend_i32_u
	if shr > 0 {
		o = append(o, opI64Const, shr, 0x88) // i64.shr_u
	}
	if shl > 0 {
		o = append(o, opI64Const, shl, 0x86) // i64.shl
	}
	o = append(o, opI64Sub, opLocalTee)
	o = appendU32(o, f.fuelL)
	return f.underflow(o)
}

// store writes the fuel local back to the global.
func (f *fn) store(o []byte) []byte {
	o = append(o, opLocalGet)
	o = appendU32(o, f.fuelL)
	o = append(o, opGlobalSet)
	return appendU32(o, f.fuelG)
}

func (f *fn) reload(o []byte) []byte {
	o = append(o, opGlobalGet)
	o = appendU32(o, f.fuelG)
	o = append(o, opLocalSet)
	return appendU32(o, f.fuelL)
}

// epilogue is what runs before the function is left.
func (f *fn) epilogue(o []byte) []byte {
	o = f.store(o)
	if f.countsDepth() {
		// Every callee puts the depth back as it found it, so adding back
		// the one this function took leaves what it found. (Not the entry's
		// value from a local: that local would live across every call in
		// the body, and wazero spills such a value where it is defined.)
		o = append(o, opGlobalGet)
		o = appendU32(o, f.depthG)
		o = append(o, opI32Const, 1, opI32Add, opGlobalSet)
		o = appendU32(o, f.depthG)
	}
	return o
}

func (f *fn) label(r *reader) error {
	l, err := r.u32()
	if err != nil {
		return err
	}
	if int64(l) >= int64(f.ctrl) {
		return fmt.Errorf("branch to label %d with %d blocks open", l, f.ctrl)
	}
	// The label, counting the blocks added around wrapped loops between
	// the branch and its target.
	adj, top := l, len(f.frames)-1
	for k := top; k > top-int(l); k-- {
		if f.frames[k].wrapped {
			adj += wrapDepth
		}
	}
	f.labels = appendU32(f.labels, adj)
	return nil
}

// blockType reads a block type and returns how many parameters it takes.
func (f *fn) blockType(r *reader) (int, error) {
	c, err := r.u8()
	if err != nil {
		return 0, err
	}
	if c == 0x40 || isValType(c) {
		return 0, nil
	}
	r.off--
	idx, err := r.sleb(33)
	if err != nil {
		return 0, err
	}
	if idx < 0 {
		return 0, fmt.Errorf("%w: a block of value type 0x%02x", ErrUnsupported, c)
	}
	if idx >= int64(len(f.m.types)) {
		return 0, fmt.Errorf("block type %d does not exist", idx)
	}
	return f.m.types[idx].params, nil
}

func (f *fn) memarg(r *reader) error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 { // multi-memory: an explicit memory index
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.u32()
	return err
}

func (f *fn) funcIdx(r *reader) (uint32, error) {
	idx, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int(idx) >= len(f.m.funcTypes) {
		return 0, fmt.Errorf("function %d does not exist", idx)
	}
	return idx, nil
}

// code walks the instructions, copying each into the current segment and
// cutting segments at control instructions.
func (f *fn) code(r *reader) error {
	for {
		if r.eof() {
			return errors.New("the body ends without end")
		}
		start := r.off
		op, _ := r.u8()
		var err error
		// before and after hold code inserted around the instruction;
		// next is the header of the segment that follows it, if it ends one.
		var before, after bool
		next := header(255)
		// fref: the instruction's function index, which is written
		// renumbered rather than copied (Config.Refuel).
		fref, hasFref := uint32(0), false
		// wrapIdx: the frame of a loop wrapped here; branch: the
		// instruction's labels are written from f.labels.
		wrapIdx, branch := -1, false
		f.labels = f.labels[:0]
		switch op {
		case opUnreachable:
			next = hdrDead
		case 0x01, 0x1a, 0x1b, 0xd1, 0xd3, 0xd5: // nop, drop, select, ref.is_null, ref.as_non_null, ref.eq
		case opBlock:
			_, err = f.blockType(r)
			f.ctrl++
			f.frames = append(f.frames, frame{})
		case opLoop:
			var params int
			params, err = f.blockType(r)
			f.ctrl++
			next = hdrCheck
			wrap := err == nil && f.m.refuel && params == 0 && f.nLocals <= maxPassLocals
			f.frames = append(f.frames, frame{wrapped: wrap})
			if wrap {
				// $after, typed like the loop; $retry; $refuel.
				f.seg = append(f.seg, opBlock)
				f.seg = append(f.seg, r.b[start+1:r.off]...)
				f.seg = append(f.seg, opLoop, 0x40, opBlock, 0x40)
				wrapIdx = len(f.frames) - 1
			}
		case opIf:
			_, err = f.blockType(r)
			f.ctrl++
			f.frames = append(f.frames, frame{})
			next = hdrPlain
		case opElse:
			if f.ctrl <= 1 {
				return errors.New("else outside if")
			}
			next = hdrPlain
		case opEnd:
			if top := len(f.frames) - 1; top > 0 && f.frames[top].wrapped {
				f.flush()
				f.out = f.unwrapLoop(f.out, f.frames[top])
				f.frames = f.frames[:top]
				f.ctrl--
				// The end's own unit, on the one path past it.
				f.hdr, f.cnt = hdrPlain, 1
				continue
			}
			f.frames = f.frames[:len(f.frames)-1]
			f.ctrl--
			if f.ctrl == 0 {
				// The function's end closes the wrapper block; the
				// epilogue follows it, then the real end.
				f.seg = append(f.seg, opEnd)
				f.cnt++
				f.flush()
				f.out = f.epilogue(f.out)
				f.out = append(f.out, opEnd)
				if !r.eof() {
					return errors.New("bytes after the function's end")
				}
				return nil
			}
			next = hdrPlain
		case opBr:
			err = f.label(r)
			next, branch = hdrDead, true
		case opBrIf, opBrOnNull, opBrOnNonNull:
			err = f.label(r)
			next, branch = hdrPlain, true
		case opBrTable:
			var n uint32
			if n, err = r.count(1); err == nil {
				for i := uint32(0); i <= n && err == nil; i++ {
					err = f.label(r)
				}
			}
			next, branch = hdrDead, true
			if err == nil {
				// The count goes first: build it in the spare buffer.
				f.brt = append(appendU32(f.brt[:0], n), f.labels...)
				f.labels, f.brt = f.brt, f.labels
			}
		case opReturn:
			before = true
			next = hdrDead
		case opCall:
			var idx uint32
			idx, err = f.funcIdx(r)
			fref, hasFref = idx, true
			if err == nil && int(idx) >= f.m.nImpFuncs {
				before, after = true, true
			} else if err == nil {
				// Host functions neither read nor spend the global; their
				// price is charged here.
				f.cnt += f.m.cfg.HostCallCost
			}
		case opCallIndirect:
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
			before, after = true, true
		case opCallRef:
			_, err = r.u32()
			before, after = true, true
		case opReturnCall:
			fref, err = f.funcIdx(r)
			hasFref = true
			before = true
			next = hdrDead
		case opReturnCallIn:
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
			before = true
			next = hdrDead
		case opReturnCallRf:
			_, err = r.u32()
			before = true
			next = hdrDead
		case 0x06, 0x07, 0x08, 0x09, 0x0a, 0x18, 0x19, 0x1f:
			return fmt.Errorf("%w: exception handling (instruction 0x%02x)", ErrUnsupported, op)
		case 0x1c: // select t*
			var n uint32
			if n, err = r.count(1); err == nil {
				var ts []byte
				if ts, err = r.bytes(uint64(n)); err == nil {
					for _, t := range ts {
						if !isValType(t) {
							err = fmt.Errorf("%w: select of value type 0x%02x", ErrUnsupported, t)
						}
					}
				}
			}
		case opLocalGet, opLocalSet, opLocalTee:
			var l uint32
			if l, err = r.u32(); err == nil && l >= f.nLocals {
				err = fmt.Errorf("local %d does not exist (the function has %d)", l, f.nLocals)
			}
		case opGlobalGet, opGlobalSet:
			var g uint32
			if g, err = r.u32(); err == nil && g >= f.m.nGlobals {
				err = fmt.Errorf("global %d does not exist (the module has %d)", g, f.m.nGlobals)
			}
		case 0x25, 0x26: // table.get, table.set
			_, err = r.u32()
		case 0x3f: // memory.size
			_, err = r.u32()
		case 0x40: // memory.grow: pages on top
			_, err = r.u32()
			f.seg = f.chargeLength(f.seg, 0, pagesShift)
		case opI32Const:
			_, err = r.sleb(32)
		case opI64Const:
			_, err = r.sleb(64)
		case 0x43:
			_, err = r.bytes(4)
		case 0x44:
			_, err = r.bytes(8)
		case 0xd0: // ref.null
			_, err = r.sleb(33)
		case 0xd2: // ref.func
			fref, err = f.funcIdx(r)
			hasFref = true
		case 0xfc:
			var sub uint32
			if sub, err = f.prefixFC(r); err == nil {
				switch sub {
				case 8, 10, 11: // memory.init, memory.copy, memory.fill: bytes on top
					f.seg = f.chargeLength(f.seg, bytesShift, 0)
				case 12, 14, 15, 17: // table.init, table.copy, table.grow, table.fill: elements on top
					f.seg = f.chargeLength(f.seg, 0, 0)
				}
			}
		case 0xfd:
			err = f.prefixFD(r)
		case 0xfe:
			err = f.prefixFE(r)
		case 0xfb:
			return fmt.Errorf("%w: GC instructions", ErrUnsupported)
		default:
			switch {
			case op >= 0x28 && op <= 0x3e: // loads and stores
				err = f.memarg(r)
			case op >= 0x45 && op <= 0xc4: // numeric, no immediates
			default:
				return fmt.Errorf("unknown opcode 0x%02x", op)
			}
		}
		if err != nil {
			return err
		}
		if f.ctrl > f.m.lim.MaxNesting {
			return fmt.Errorf("%w: blocks nest more than %d deep", ErrLimit, f.m.lim.MaxNesting)
		}
		switch op {
		case opCall, opCallIndirect, opCallRef, opReturnCall, opReturnCallIn, opReturnCallRf:
			f.calls = true
		}
		if f.atEntry && op != opBlock && op != 0x01 && (op <= opCallRef || op == opBrOnNull || op == opBrOnNonNull) {
			// The first control instruction (a block transfers nothing):
			// a loop, or anything that could reach a call without one.
			f.entryLoop = f.entryLoop || (f.scanning && op == opLoop)
			f.atEntry = false
		}
		if before {
			if next == hdrDead && op != opCall {
				f.seg = f.epilogue(f.seg)
			} else {
				f.seg = f.store(f.seg)
			}
		}
		if hasFref && f.m.refuel {
			f.seg = append(f.seg, op)
			f.seg = appendU32(f.seg, f.m.fidx(fref))
		} else if branch {
			f.seg = append(f.seg, op)
			f.seg = append(f.seg, f.labels...)
		} else {
			f.seg = append(f.seg, r.b[start:r.off]...)
		}
		f.cnt++
		if after {
			f.seg = f.reload(f.seg)
		}
		if next != 255 {
			f.boundary(next)
		}
		if wrapIdx >= 0 {
			f.headOf = wrapIdx
		}
	}
}

func (f *fn) prefixFC(r *reader) (uint32, error) {
	sub, err := r.u32()
	if err != nil {
		return 0, err
	}
	switch {
	case sub <= 7: // saturating truncations
		return sub, nil
	case sub == 8, sub == 12, sub == 14, sub == 10: // memory.init, table.init, table.copy, memory.copy
		if _, err := r.u32(); err != nil {
			return 0, err
		}
		_, err = r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		_, err = r.u32()
	default:
		return 0, fmt.Errorf("unknown instruction 0xfc %d", sub)
	}
	return sub, err
}

func (f *fn) prefixFD(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads, stores
		return f.memarg(r)
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		_, err = r.u8()
	case sub >= 84 && sub <= 91: // load/store lane
		if err = f.memarg(r); err == nil {
			_, err = r.u8()
		}
	case sub <= 0x113:
	default:
		return fmt.Errorf("unknown instruction 0xfd %d", sub)
	}
	return err
}

func (f *fn) prefixFE(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 2, sub >= 0x10 && sub <= 0x4e:
		return f.memarg(r)
	case sub == 3: // atomic.fence
		_, err = r.u8()
		return err
	}
	return fmt.Errorf("unknown instruction 0xfe %d", sub)
}
