package store

import (
	"bytes"

	"github.com/tidwall/btree"
)

// rowRec is a stored row. key is the row's identity: the encoded primary
// key, or a hidden row id. key and row share one allocation and never change.
type rowRec struct {
	key []byte
	row []byte
}

// entry is a B-tree item. In a table's rows tree key == rec.key; in an index
// tree key is the index key, followed by rec.key when the index is not
// unique (so that every entry is distinct).
type entry struct {
	key []byte
	rec *rowRec
}

type tree = btree.BTreeG[entry]

func lessEntry(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

var treeOpts = btree.Options{NoLocks: true, Degree: 32}

func newTree() *tree { return btree.NewBTreeGOptions(lessEntry, treeOpts) }

// tableState is one version of a table. Once published (committed) it is
// immutable; a writer that needs to change it clones it first, which is O(1)
// per tree thanks to the trees' copy-on-write.
type tableState struct {
	schema    *tableSchema
	rows      *tree
	idx       []*tree  // by index position; nil for the index the rows tree serves
	nextRowID uint64   // next hidden row id, for tables without a primary key
	autoinc   []uint64 // last value issued, per schema.autoinc
}

func newTableState(ts *tableSchema) *tableState {
	st := &tableState{schema: ts, rows: newTree(), idx: make([]*tree, len(ts.indexes)), nextRowID: 1, autoinc: make([]uint64, len(ts.autoinc))}
	for i, ix := range ts.indexes {
		if !ix.primary {
			st.idx[i] = newTree()
		}
	}
	return st
}

func (st *tableState) clone() *tableState {
	c := &tableState{schema: st.schema, rows: st.rows.Copy(), idx: make([]*tree, len(st.idx)), nextRowID: st.nextRowID, autoinc: append([]uint64(nil), st.autoinc...)}
	for i, t := range st.idx {
		if t != nil {
			c.idx[i] = t.Copy()
		}
	}
	return c
}

// treeFor returns the tree that serves index ix.
func (st *tableState) treeFor(ix *indexSchema) *tree {
	if ix.primary {
		return st.rows
	}
	return st.idx[ix.pos]
}

// version is the state of a whole database as of a committed offset.
type version struct {
	schema *dbSchema
	tables []*tableState
	offset uint64
}
