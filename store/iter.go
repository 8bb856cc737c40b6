package store

import (
	"bytes"
	"fmt"
)

// BoundKind says how a range scan treats its bound. The values match
// abi.BoundInclusive, abi.BoundExclusive and abi.BoundUnbounded.
type BoundKind uint32

const (
	Inclusive BoundKind = 0
	Exclusive BoundKind = 1
	Unbounded BoundKind = 2
)

// Bound is one end of a range scan. Key is the BSATN of a prefix of the
// index's columns; a bound on a prefix covers every row that starts with it
// (an inclusive upper bound on (a) includes (a, anything)).
type Bound struct {
	Key  []byte
	Kind BoundKind
}

// RowIter iterates over rows. It sees the rows as of when it was opened,
// whatever the transaction does afterwards. The returned rows are shared and
// must not be modified.
type RowIter struct {
	it      treeIter
	seek    []byte
	end     []byte
	hasEnd  bool
	started bool
	done    bool
}

type treeIter = interface {
	First() bool
	Seek(entry) bool
	Next() bool
	Item() entry
	Release()
}

// Next returns the next row, or ok=false at the end.
func (r *RowIter) Next() (row []byte, ok bool) {
	if r == nil || r.done {
		return nil, false
	}
	if !r.started {
		r.started = true
		if r.seek != nil {
			ok = r.it.Seek(entry{key: r.seek})
		} else {
			ok = r.it.First()
		}
	} else {
		ok = r.it.Next()
	}
	if !ok {
		r.Close()
		return nil, false
	}
	e := r.it.Item()
	if r.hasEnd && bytes.Compare(e.key, r.end) >= 0 {
		r.Close()
		return nil, false
	}
	return e.rec.row, true
}

// Close releases the iterator; Next then returns ok=false.
func (r *RowIter) Close() {
	if r != nil && !r.done {
		r.done = true
		r.it.Release()
	}
}

var emptyIter = &RowIter{done: true}

func newIter(t *tree) *RowIter {
	it := t.Iter()
	return &RowIter{it: &it}
}

func scanAll(t *tree) *RowIter { return newIter(t) }

func scanPrefix(t *tree, p []byte) *RowIter {
	r := newIter(t)
	r.seek = p
	if end := prefixEnd(p); end != nil {
		r.end, r.hasEnd = end, true
	}
	return r
}

func scanRange(t *tree, ix *indexSchema, lo, hi Bound) (*RowIter, error) {
	var loKey, hiKey []byte
	var err error
	if lo.Kind > Unbounded || hi.Kind > Unbounded {
		return nil, fmt.Errorf("%w: bound kind %d/%d for index %q is not Inclusive (0), Exclusive (1) or Unbounded (2)", ErrSchemaMismatch, lo.Kind, hi.Kind, ix.name)
	}
	if lo.Kind != Unbounded {
		if loKey, err = ix.encodeSearchKey(lo.Key); err != nil {
			return nil, err
		}
	}
	if hi.Kind != Unbounded {
		if hiKey, err = ix.encodeSearchKey(hi.Key); err != nil {
			return nil, err
		}
	}
	r := newIter(t)
	switch lo.Kind {
	case Inclusive:
		r.seek = loKey
	case Exclusive:
		r.seek = prefixEnd(loKey)
		if r.seek == nil {
			r.Close()
			return emptyIter, nil
		}
	}
	switch hi.Kind {
	case Inclusive:
		if end := prefixEnd(hiKey); end != nil {
			r.end, r.hasEnd = end, true
		}
	case Exclusive:
		r.end, r.hasEnd = hiKey, true
	}
	return r, nil
}
