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
	one     *rowRec // a point lookup's only row, when it is not nil
	seek    []byte
	end     []byte
	hasEnd  bool
	started bool
	done    bool
}

// Next returns the next row, or ok=false at the end.
func (r *RowIter) Next() (row []byte, ok bool) {
	rec, ok := r.nextRec()
	if !ok {
		return nil, false
	}
	return rec.row(), true
}

func (r *RowIter) nextRec() (rec *rowRec, ok bool) {
	if r == nil || r.done {
		return nil, false
	}
	if r.it == nil {
		r.done = true
		return r.one, r.one != nil
	}
	if !r.started {
		r.started = true
		if r.seek != nil {
			ok = r.it.seek(r.seek)
		} else {
			ok = r.it.first()
		}
	} else {
		ok = r.it.next()
	}
	if !ok {
		r.Close()
		return nil, false
	}
	k, rec := r.it.item()
	if r.hasEnd && bytes.Compare(k, r.end) >= 0 {
		r.Close()
		return nil, false
	}
	return rec, true
}

// Close releases the iterator; Next then returns ok=false.
func (r *RowIter) Close() {
	if r != nil && !r.done {
		r.done = true
		if r.it != nil {
			r.it.release()
		}
	}
}

// scanPoint iterates over the rows whose key in ix starts with the encoded
// prefix p. A full key of a unique index is a single lookup, with pr's
// probes (nil: fresh ones, for concurrent readers).
func scanPoint(st *tableState, ix *indexSchema, p []byte, copy bool, full bool, pr *probes) *RowIter {
	if ix.unique && full {
		rec, _ := st.get(ix, p, pr)
		return &RowIter{one: rec}
	}
	r := &RowIter{it: st.iter(ix, copy), seek: p}
	if end := prefixEnd(p); end != nil {
		r.end, r.hasEnd = end, true
	}
	return r
}

func scanRange(st *tableState, ix *indexSchema, copy bool, lo, hi Bound) (*RowIter, error) {
	var loKey, hiKey []byte
	var err error
	if lo.Kind > Unbounded || hi.Kind > Unbounded {
		return nil, fmt.Errorf("%w: bound kind %d/%d for index %q is not Inclusive (0), Exclusive (1) or Unbounded (2)", ErrSchemaMismatch, lo.Kind, hi.Kind, ix.name)
	}
	if lo.Kind != Unbounded {
		if loKey, _, err = ix.encodeSearchKey(lo.Key); err != nil {
			return nil, err
		}
	}
	if hi.Kind != Unbounded {
		if hiKey, _, err = ix.encodeSearchKey(hi.Key); err != nil {
			return nil, err
		}
	}
	r := &RowIter{}
	switch lo.Kind {
	case Inclusive:
		r.seek = loKey
	case Exclusive:
		r.seek = prefixEnd(loKey)
		if r.seek == nil {
			r.done = true
			return r, nil
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
	r.it = st.iter(ix, copy)
	return r, nil
}
