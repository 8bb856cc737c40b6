package store

import (
	"bytes"
)

// rowRec is a stored row: b holds the row's BSATN (the first n bytes) then
// its key, the row's identity (the encoded primary key, or a hidden row id).
// One allocation per row; never modified once stored.
type rowRec struct {
	b []byte
	n int
}

func (r *rowRec) row() []byte { return r.b[:r.n:r.n] }
func (r *rowRec) key() []byte { return r.b[r.n:] }

// ixEntry is an entry of a secondary index. key is the index key, followed
// by the row's key when the index is not unique, so entries are distinct.
type ixEntry struct {
	key []byte
	rec *rowRec
}

// The trees hold pointers: a copy-on-write path copy then moves 8 bytes per
// item instead of a whole entry, which keeps a one-row transaction cheap.
type (
	rowTree = cowTree[*rowRec]
	ixTree  = cowTree[*ixEntry]
)

func newRowTree() *rowTree {
	return newCowTree(func(a, b *rowRec) bool { return bytes.Compare(a.key(), b.key()) < 0 })
}

func newIxTree() *ixTree {
	return newCowTree(func(a, b *ixEntry) bool { return bytes.Compare(a.key, b.key) < 0 })
}

// tableState is one version of a table. Once published (committed) it is
// immutable; a writer that needs to change it clones it first, which is O(1)
// per tree thanks to the trees' copy-on-write.
type tableState struct {
	schema    *tableSchema
	rows      *rowTree
	idx       []*ixTree // by index position; nil for the index the rows tree serves
	nextRowID uint64    // next hidden row id, for tables without a primary key
	autoinc   []uint64  // last value issued, per schema.autoinc

	// Backing stores of a clone's rows tree, idx and autoinc for small
	// tables, so that a transaction's first write to a table allocates once.
	rowsBuf rowTree
	idxBuf  [4]*ixTree
	aiBuf   [2]uint64
}

func newTableState(ts *tableSchema) *tableState {
	st := &tableState{schema: ts, rows: newRowTree(), idx: make([]*ixTree, len(ts.indexes)), nextRowID: 1, autoinc: make([]uint64, len(ts.autoinc))}
	for i, ix := range ts.indexes {
		if !ix.primary {
			st.idx[i] = newIxTree()
		}
	}
	return st
}

func (st *tableState) clone() *tableState {
	c := &tableState{schema: st.schema, nextRowID: st.nextRowID}
	c.rows = st.rows.copyTo(&c.rowsBuf)
	if len(st.idx) <= len(c.idxBuf) {
		c.idx = c.idxBuf[:len(st.idx):len(st.idx)]
	} else {
		c.idx = make([]*ixTree, len(st.idx))
	}
	if len(st.autoinc) <= len(c.aiBuf) {
		c.autoinc = append(c.aiBuf[:0:len(st.autoinc)], st.autoinc...)
	} else {
		c.autoinc = append([]uint64(nil), st.autoinc...)
	}
	for i, t := range st.idx {
		if t != nil {
			c.idx[i] = t.Copy()
		}
	}
	return c
}

// probes are the search keys of tree lookups. A tree's comparison function
// is a function value, so a probe passed to it escapes: a writer keeps one
// set in its transaction instead of allocating one per lookup.
type probes struct {
	r   rowRec
	e   ixEntry
	buf []byte // key buffer for e
}

// get returns the row whose key in index ix is exactly key (ix unique),
// searching with pr's probes (nil: fresh ones, for concurrent readers).
func (st *tableState) get(ix *indexSchema, key []byte, pr *probes) (*rowRec, bool) {
	if pr == nil {
		if ix.primary {
			return st.rows.Get(&rowRec{b: key})
		}
		e, ok := st.idx[ix.pos].Get(&ixEntry{key: key})
		if !ok {
			return nil, false
		}
		return e.rec, true
	}
	if ix.primary {
		pr.r.b = key
		r, ok := st.rows.Get(&pr.r)
		pr.r.b = nil
		return r, ok
	}
	pr.e.key = key
	e, ok := st.idx[ix.pos].Get(&pr.e)
	pr.e.key = nil
	if !ok {
		return nil, false
	}
	return e.rec, true
}

// iter opens an iterator over index ix (nil: the rows tree). With copy set,
// it iterates over an O(1) copy of the tree, so later writes to st do not
// disturb it.
func (st *tableState) iter(ix *indexSchema, copy bool) treeIter {
	if ix == nil || ix.primary {
		t := st.rows
		if copy {
			t = t.Copy()
		}
		return &rowIter{it: t.Iter()}
	}
	t := st.idx[ix.pos]
	if copy {
		t = t.Copy()
	}
	return &ixIter{it: t.Iter()}
}

// treeIter hides which kind of tree an iterator walks.
type treeIter interface {
	first() bool
	seek(key []byte) bool
	next() bool
	item() (key []byte, rec *rowRec)
	release()
}

type rowIter struct{ it cowIter[*rowRec] }

func (r *rowIter) first() bool             { return r.it.First() }
func (r *rowIter) seek(k []byte) bool      { return r.it.Seek(&rowRec{b: k}) }
func (r *rowIter) next() bool              { return r.it.Next() }
func (r *rowIter) item() ([]byte, *rowRec) { x := r.it.Item(); return x.key(), x }
func (r *rowIter) release()                { r.it.Release() }

type ixIter struct{ it cowIter[*ixEntry] }

func (r *ixIter) first() bool             { return r.it.First() }
func (r *ixIter) seek(k []byte) bool      { return r.it.Seek(&ixEntry{key: k}) }
func (r *ixIter) next() bool              { return r.it.Next() }
func (r *ixIter) item() ([]byte, *rowRec) { x := r.it.Item(); return x.key, x.rec }
func (r *ixIter) release()                { r.it.Release() }

// version is the state of a whole database as of a committed offset.
type version struct {
	schema *dbSchema
	tables []*tableState
	offset uint64
	tbuf   [4]*tableState // backs tables for small databases
}
