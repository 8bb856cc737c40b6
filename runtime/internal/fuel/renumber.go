package fuel

// Importing the refuel function gives it function index nImpFuncs and
// shifts every defined function up by one. Everything that carries a
// function index is rewritten here: constant expressions (ref.func in
// globals, element and data segments), element segments' index vectors,
// exports and the start function (in fuel.go), call, return_call and
// ref.func in bodies (code.go), and the name section. Each section was
// read and checked by decode, so these second reads cannot fail.

// copyConstExpr appends the constant expression at r to o, renumbering
// ref.func.
func (m *module) copyConstExpr(r *reader, o []byte) []byte {
	for {
		start := r.off
		op, _ := r.u8()
		switch op {
		case 0x0b:
			return append(o, op)
		case 0xd2:
			f, _ := r.u32()
			o = append(o, op)
			o = appendU32(o, m.fidx(f))
			continue
		case 0x41:
			r.sleb(32)
		case 0x42:
			r.sleb(64)
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0x23:
			r.u32()
		case 0xd0:
			r.sleb(33)
		case 0xfd:
			r.u32()
			r.bytes(16)
		}
		o = append(o, r.b[start:r.off]...)
	}
}

func (m *module) renumberElements(body []byte) []byte {
	if !m.refuel {
		return body
	}
	r := &reader{b: body}
	n, _ := r.u32()
	o := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		flags, _ := r.u32()
		o = appendU32(o, flags)
		if flags&2 != 0 && flags&1 == 0 {
			t, _ := r.u32()
			o = appendU32(o, t)
		}
		if flags&1 == 0 {
			o = m.copyConstExpr(r, o)
		}
		if flags&3 != 0 {
			k, _ := r.u8()
			o = append(o, k)
		}
		k, _ := r.u32()
		o = appendU32(o, k)
		for j := uint32(0); j < k; j++ {
			if flags&4 == 0 {
				f, _ := r.u32()
				o = appendU32(o, m.fidx(f))
			} else {
				o = m.copyConstExpr(r, o)
			}
		}
	}
	return o
}

// renumberData renumbers ref.func in the offsets (type-invalid there, but
// an index must mean the same function before and after).
func (m *module) renumberData(body []byte) []byte {
	if !m.refuel {
		return body
	}
	r := &reader{b: body}
	n, _ := r.u32()
	o := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		flag, _ := r.u32()
		o = appendU32(o, flag)
		switch flag {
		case 0:
			o = m.copyConstExpr(r, o)
		case 2:
			mem, _ := r.u32()
			o = m.copyConstExpr(r, appendU32(o, mem))
		}
		start := r.off
		ln, _ := r.u32()
		r.bytes(uint64(ln))
		o = append(o, r.b[start:r.off]...)
	}
	return o
}

// renumberCustom returns a custom section as it is rewritten, and whether
// to keep it. In the name section, function and local names are
// renumbered (wazero shows function names in stack traces); the other
// subsections that name things by function index (labels) are dropped.
func (m *module) renumberCustom(body []byte) ([]byte, bool) {
	r := &reader{b: body}
	name, err := r.str()
	if !m.refuel || err != nil || name != "name" {
		return body, true
	}
	o := append([]byte(nil), body[:r.off]...)
	for !r.eof() {
		id, _ := r.u8()
		size, _ := r.u32()
		sub, _ := r.bytes(uint64(size))
		switch id {
		case 0:
		case 1, 2:
			sr := &reader{b: sub}
			n, _ := sr.u32()
			s := appendU32(nil, n)
			for i := uint32(0); i < n; i++ {
				f, _ := sr.u32()
				s = appendU32(s, m.fidx(f))
				start := sr.off
				if id == 1 {
					sr.name()
				} else {
					k, _ := sr.u32()
					for j := uint32(0); j < k; j++ {
						sr.u32()
						sr.name()
					}
				}
				s = append(s, sr.b[start:sr.off]...)
			}
			sub = s
		default:
			continue
		}
		o = append(o, id)
		o = appendU32(o, uint32(len(sub)))
		o = append(o, sub...)
	}
	return o, true
}
