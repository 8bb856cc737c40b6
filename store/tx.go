package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
)

// Tx is a read-write transaction. It holds the database's single writer
// slot from Begin until Commit or Rollback, and is not safe for concurrent
// use. Rows passed in are copied; rows returned are shared and must not be
// modified.
type Tx struct {
	db      *Database
	base    *version
	tables  []*tableState
	changes []*tableChanges // by table id; nil when untouched
	done    bool
}

// tableChanges is the net effect of a transaction on one table, by row key.
type tableChanges struct {
	list  []*change
	byKey map[string]*change
}

type change struct {
	key []byte
	old *rowRec // the row as of Begin, nil if none
	cur *rowRec // the row now, nil if deleted
}

func (tx *Tx) check() error {
	if tx.done {
		return ErrTxDone
	}
	return nil
}

func (tx *Tx) table(t TableID) (*tableSchema, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return tx.base.schema.table(t)
}

func (tx *Tx) index(i IndexID) (*indexSchema, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return tx.base.schema.index(i)
}

// writable returns table t's state, cloned for this transaction on first use.
func (tx *Tx) writable(t TableID) (*tableState, *tableChanges) {
	if tx.changes[t] == nil {
		tx.tables[t] = tx.tables[t].clone()
		tx.changes[t] = &tableChanges{}
	}
	return tx.tables[t], tx.changes[t]
}

func (tc *tableChanges) record(key []byte, old, cur *rowRec) {
	if tc.byKey == nil && len(tc.list) < 8 {
		for _, c := range tc.list {
			if bytes.Equal(c.key, key) {
				c.cur = cur
				return
			}
		}
		tc.list = append(tc.list, &change{key: key, old: old, cur: cur})
		return
	}
	if tc.byKey == nil {
		tc.byKey = make(map[string]*change, 16)
		for _, c := range tc.list {
			tc.byKey[string(c.key)] = c
		}
	}
	if c, ok := tc.byKey[string(key)]; ok {
		c.cur = cur
		return
	}
	c := &change{key: key, old: old, cur: cur}
	tc.list = append(tc.list, c)
	tc.byKey[string(key)] = c
}

func schemaErr(ts *tableSchema, err error) error {
	return fmt.Errorf("%w: table %q: %w", ErrSchemaMismatch, ts.def.Name, err)
}

// Insert validates row against table t, fills its auto-increment columns
// that are 0, and inserts it. It returns the stored row.
func (tx *Tx) Insert(t TableID, row []byte) ([]byte, error) {
	ts, err := tx.table(t)
	if err != nil {
		return nil, err
	}
	if err := abi.ValidateRow(ts.types, row); err != nil {
		return nil, schemaErr(ts, err)
	}
	st, tc := tx.writable(t)
	rec, autoinc, err := tx.newRec(ts, st, row, nil, true)
	if err != nil {
		return nil, err
	}
	keys, err := tx.checkUnique(ts, st, rec, nil)
	if err != nil {
		return nil, err
	}
	if autoinc != nil {
		copy(st.autoinc, autoinc)
	}
	if ts.pk < 0 {
		st.nextRowID++
	}
	insertRec(ts, st, rec, keys)
	tc.record(rec.key(), nil, rec)
	return rec.row(), nil
}

// newRec copies row into a new record with its row key. When fill is set it
// fills auto-increment columns that are 0 and returns the new counters.
// keepKey, when non-nil, is the hidden row id to reuse (updates).
func (tx *Tx) newRec(ts *tableSchema, st *tableState, row []byte, keepKey []byte, fill bool) (*rowRec, []uint64, error) {
	n := len(row)
	keyCap := 8
	if ts.pk >= 0 {
		if fs := ts.types[ts.pk].Kind.FixedSize(); fs > 0 {
			keyCap = fs
		} else {
			keyCap = 16
		}
	}
	buf := make([]byte, n, n+keyCap)
	copy(buf, row)
	var counters []uint64
	if fill {
		for j, c := range ts.autoinc {
			off := ts.colOffset(buf, c)
			k := ts.types[c].Kind
			size := k.FixedSize()
			var v uint64
			for i := size - 1; i >= 0; i-- {
				v = v<<8 | uint64(buf[off+i])
			}
			if v != 0 {
				continue
			}
			if counters == nil {
				counters = append([]uint64(nil), st.autoinc...)
			}
			next := counters[j] + 1
			if next > autoincMax(k) || next == 0 {
				return nil, nil, fmt.Errorf("%w: table %q column %q (%s) has issued its last value %d", ErrAutoIncOverflow, ts.def.Name, ts.def.Columns[c].Name, k, counters[j])
			}
			counters[j] = next
			for i := 0; i < size; i++ {
				buf[off+i] = byte(next >> (8 * i))
			}
		}
	}
	rowPart := buf[:n:n]
	switch {
	case keepKey != nil:
		buf = append(buf, keepKey...)
	case ts.pk >= 0:
		buf = ts.indexes[ts.pkIndex].indexKey(buf, rowPart)
	default:
		buf = appendRowID(buf, st.nextRowID)
	}
	return &rowRec{b: buf[:len(buf):len(buf)], n: n}, counters, nil
}

func autoincMax(k abi.Kind) uint64 {
	switch k {
	case abi.KindU8:
		return 1<<8 - 1
	case abi.KindU16:
		return 1<<16 - 1
	case abi.KindU32:
		return 1<<32 - 1
	case abi.KindU64:
		return 1<<64 - 1
	case abi.KindI8:
		return 1<<7 - 1
	case abi.KindI16:
		return 1<<15 - 1
	case abi.KindI32:
		return 1<<31 - 1
	}
	return 1<<63 - 1
}

// checkUnique checks rec against every unique index, ignoring except (the
// row being replaced), and returns the keys of rec for every index.
func (tx *Tx) checkUnique(ts *tableSchema, st *tableState, rec *rowRec, except *rowRec) ([][]byte, error) {
	var keys [][]byte
	if len(ts.indexes) > 0 {
		keys = make([][]byte, len(ts.indexes))
	}
	for i, ix := range ts.indexes {
		var k []byte
		if ix.primary {
			k = rec.key()
		} else {
			k = ix.indexKey(nil, rec.row())
		}
		if ix.unique {
			if e, ok := st.get(ix, k); ok && e != except {
				return nil, fmt.Errorf("%w: table %q: index %q already has a row with this key", ErrUniqueViolation, ts.def.Name, ix.name)
			}
		} else {
			k = append(k, rec.key()...)
		}
		keys[i] = k
	}
	return keys, nil
}

func insertRec(ts *tableSchema, st *tableState, rec *rowRec, keys [][]byte) {
	st.rows.Set(rec)
	for i, ix := range ts.indexes {
		if !ix.primary {
			st.idx[i].Set(&ixEntry{key: keys[i], rec: rec})
		}
	}
}

func deleteRec(ts *tableSchema, st *tableState, rec *rowRec) {
	st.rows.Delete(rec)
	var probe ixEntry
	for i, ix := range ts.indexes {
		if ix.primary {
			continue
		}
		probe.key = ix.indexKey(probe.key[:0], rec.row())
		if !ix.unique {
			probe.key = append(probe.key, rec.key()...)
		}
		st.idx[i].Delete(&probe)
	}
}

// Update replaces the row whose key in the unique index ix equals row's.
// Auto-increment columns are stored as given. It returns the stored row.
func (tx *Tx) Update(ix IndexID, row []byte) ([]byte, error) {
	is, err := tx.index(ix)
	if err != nil {
		return nil, err
	}
	if !is.unique {
		return nil, fmt.Errorf("%w: index %q is not unique, so it cannot identify the row to update", ErrNoSuchIndex, is.name)
	}
	ts := is.table
	if err := abi.ValidateRow(ts.types, row); err != nil {
		return nil, schemaErr(ts, err)
	}
	st, tc := tx.writable(ts.id)
	key := is.indexKey(nil, row)
	old, ok := st.get(is, key)
	if !ok {
		return nil, fmt.Errorf("%w: table %q has no row with that key in index %q", ErrNotFound, ts.def.Name, is.name)
	}
	var keep []byte
	if ts.pk < 0 {
		keep = old.key()
	}
	rec, _, err := tx.newRec(ts, st, row, keep, false)
	if err != nil {
		return nil, err
	}
	keys, err := tx.checkUnique(ts, st, rec, old)
	if err != nil {
		return nil, err
	}
	deleteRec(ts, st, old)
	tc.record(old.key(), old, nil)
	insertRec(ts, st, rec, keys)
	tc.record(rec.key(), nil, rec)
	return rec.row(), nil
}

// DeleteByKey deletes every row whose key in index ix starts with key (the
// BSATN of a prefix of the index's columns, at least one) and returns how
// many; none is not an error.
func (tx *Tx) DeleteByKey(ix IndexID, key []byte) (int, error) {
	return tx.DeleteByKeyAtMost(ix, key, -1)
}

// DeleteByKeyAtMost is DeleteByKey that deletes nothing, and returns
// ErrTxTooLarge, when more than limit rows match; a negative limit means no
// limit. It lets a caller with a write budget refuse a delete before it
// happens instead of finding the overshoot afterwards.
func (tx *Tx) DeleteByKeyAtMost(ix IndexID, key []byte, limit int) (int, error) {
	is, err := tx.index(ix)
	if err != nil {
		return 0, err
	}
	if len(key) == 0 {
		// An empty prefix matches every row; a caller that means to empty
		// the table should say so row by row, not by an empty buffer.
		return 0, fmt.Errorf("%w: empty key for index %q: give at least its first column", ErrSchemaMismatch, is.name)
	}
	p, full, err := is.encodeSearchKey(key)
	if err != nil {
		return 0, err
	}
	ts := is.table
	var victims []*rowRec
	it := scanPoint(tx.tables[ts.id], is, p, false, full)
	for {
		k, ok := it.nextRec()
		if !ok {
			break
		}
		victims = append(victims, k)
	}
	if len(victims) == 0 {
		return 0, nil
	}
	if limit >= 0 && len(victims) > limit {
		return 0, fmt.Errorf("%w: deleting %d rows of %q by %q would pass the limit of %d more rows in this transaction", ErrTxTooLarge, len(victims), ts.def.Name, is.name, limit)
	}
	st, tc := tx.writable(ts.id)
	for _, rec := range victims {
		deleteRec(ts, st, rec)
		tc.record(rec.key(), rec, nil)
	}
	return len(victims), nil
}

// dirty reports whether the transaction changed table id: its trees may
// then change under an iterator, which must work on a copy.
func (tx *Tx) dirty(id TableID) bool { return tx.changes[id] != nil }

// Scan iterates over every row of table t, in primary-key order when the
// table has one, else in insertion order.
func (tx *Tx) Scan(t TableID) (*RowIter, error) {
	if _, err := tx.table(t); err != nil {
		return nil, err
	}
	return &RowIter{it: tx.tables[t].iter(nil, tx.dirty(t))}, nil
}

// ScanPoint iterates over the rows whose key in index ix starts with key.
func (tx *Tx) ScanPoint(ix IndexID, key []byte) (*RowIter, error) {
	is, err := tx.index(ix)
	if err != nil {
		return nil, err
	}
	p, full, err := is.encodeSearchKey(key)
	if err != nil {
		return nil, err
	}
	id := is.table.id
	return scanPoint(tx.tables[id], is, p, tx.dirty(id), full), nil
}

// ScanRange iterates over the rows of index ix between lo and hi, in index
// order.
func (tx *Tx) ScanRange(ix IndexID, lo, hi Bound) (*RowIter, error) {
	is, err := tx.index(ix)
	if err != nil {
		return nil, err
	}
	id := is.table.id
	return scanRange(tx.tables[id], is, tx.dirty(id), lo, hi)
}

// Count returns the number of rows in table t that the transaction sees.
func (tx *Tx) Count(t TableID) (uint64, error) {
	if _, err := tx.table(t); err != nil {
		return 0, err
	}
	return uint64(tx.tables[t].rows.Len()), nil
}

// Rollback drops the transaction's writes and frees the writer slot. It is
// idempotent and does nothing after Commit.
func (tx *Tx) Rollback() {
	if tx.done {
		return
	}
	tx.done = true
	tx.db.release()
}

// Commit is the result of a committed transaction.
type Commit struct {
	// Offset is the database's transaction offset: it grows by one with
	// every transaction that changed something.
	Offset uint64
	Delta  *Delta
}

// Delta is what a transaction changed, per table in table-id order; tables it
// did not change are absent.
type Delta struct {
	Tables []TableDelta
}

// TableDelta lists the rows a transaction inserted into and deleted from one
// table. An update is a delete of the old row and an insert of the new one;
// a row inserted and deleted in the same transaction, or updated to itself,
// does not appear.
type TableDelta struct {
	Table   TableID
	Name    string
	Inserts [][]byte
	Deletes [][]byte
}

// Commit applies the transaction, frees the writer slot at once so the next
// transaction can run, and waits until the transaction is durable. ctx is
// not consulted once the commit is queued: the outcome then no longer
// depends on the caller. A transaction that changed nothing gets the offset
// it read, once that offset is durable.
func (tx *Tx) Commit(ctx context.Context) (Commit, error) {
	if tx.done {
		return Commit{}, ErrTxDone
	}
	db := tx.db
	delta := &Delta{}
	var writes []Write
	nbytes := 0
	for id, tc := range tx.changes {
		if tc == nil {
			continue
		}
		st := tx.tables[id]
		ts := st.schema
		var td *TableDelta
		for _, c := range tc.list {
			if c.old == c.cur || c.old != nil && c.cur != nil && bytes.Equal(c.old.row(), c.cur.row()) {
				continue
			}
			if td == nil {
				delta.Tables = append(delta.Tables, TableDelta{Table: TableID(id), Name: ts.def.Name})
				td = &delta.Tables[len(delta.Tables)-1]
			}
			k := db.rowKey(TableID(id), c.key)
			if c.old != nil {
				td.Deletes = append(td.Deletes, c.old.row())
			}
			if c.cur != nil {
				row := c.cur.row()
				td.Inserts = append(td.Inserts, row)
				writes = append(writes, Write{Key: k, Value: row})
				nbytes += len(k) + len(row)
			} else {
				writes = append(writes, Write{Key: k, Delete: true})
				nbytes += len(k)
			}
		}
		base := tx.base.tables[id]
		for j, v := range st.autoinc {
			if v != base.autoinc[j] {
				k := db.autoincKey(TableID(id), ts.autoinc[j])
				writes = append(writes, Write{Key: k, Value: binary.BigEndian.AppendUint64(nil, v)})
				nbytes += len(k) + 8
			}
		}
	}
	tx.done = true
	if len(writes) == 0 {
		// Nothing to write, but what the transaction read must be durable
		// before its caller hears back.
		off := tx.base.offset
		if db.durable.Load() == tx.base {
			db.release()
			return Commit{Offset: off, Delta: delta}, nil
		}
		req := &request{db: db, done: make(chan error, 1)}
		err := db.s.enqueue(req)
		db.release()
		if err == nil {
			err = <-req.done
		}
		if err != nil {
			return Commit{}, err
		}
		return Commit{Offset: off, Delta: delta}, nil
	}
	off := tx.base.offset + 1
	writes = append(writes, Write{Key: db.offsetKey(), Value: binary.BigEndian.AppendUint64(nil, off)})
	nbytes += 32
	if err := db.s.fitsOneTxn(len(writes), nbytes); err != nil {
		db.release()
		return Commit{}, fmt.Errorf("%w: database %q: %w", ErrTxTooLarge, db.name, err)
	}
	if err := checkKeys(writes); err != nil {
		db.release()
		return Commit{}, fmt.Errorf("%w: database %q: %w", ErrTxTooLarge, db.name, err)
	}
	v := &version{schema: tx.base.schema, tables: tx.tables, offset: off}
	c := Commit{Offset: off, Delta: delta}
	req := &request{db: db, writes: writes, bytes: nbytes, v: v, commit: c, hasCommit: true, done: make(chan error, 1)}
	if err := db.s.enqueue(req); err != nil {
		db.release()
		return Commit{}, err
	}
	db.latest = v
	db.release()
	if err := <-req.done; err != nil {
		return Commit{}, err
	}
	return c, nil
}
