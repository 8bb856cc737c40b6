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
// use. Rows passed in are copied, and keys are only read during the call
// (callers may pass views of memory they reuse afterwards); rows returned
// are shared and must not be modified.
type Tx struct {
	db      *Database
	base    *version
	tables  []*tableState   // the next version's tables: next.tables
	changes []*tableChanges // by table id; nil when untouched
	next    *version        // what Commit publishes
	done    bool

	// Reused within the transaction so that the common one-row case
	// allocates little: change sets for the first tables written, the
	// changes slice for small databases, lookup probes and a key buffer.
	tcBuf   [2]tableChanges
	ntc     int
	chgBuf  [4]*tableChanges
	pr      probes
	scratch []byte
	recBuf  []byte
}

// tableChanges is the net effect of a transaction on one table, by row key.
type tableChanges struct {
	list  []change
	first [1]change // backing store of list for the usual single change
	byKey map[string]int
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
	if tx.next == nil {
		// The version this transaction publishes, with room for the tables
		// of a small database inside it.
		next := &version{schema: tx.base.schema}
		next.tables = append(next.tbuf[:0], tx.base.tables...)
		tx.next, tx.tables = next, next.tables
	}
	if tx.changes[t] == nil {
		tx.tables[t] = tx.tables[t].clone()
		var tc *tableChanges
		if tx.ntc < len(tx.tcBuf) {
			tc = &tx.tcBuf[tx.ntc]
			tx.ntc++
		} else {
			tc = new(tableChanges)
		}
		tc.list = tc.first[:0]
		tx.changes[t] = tc
	}
	return tx.tables[t], tx.changes[t]
}

func (tc *tableChanges) record(key []byte, old, cur *rowRec) {
	if tc.byKey == nil && len(tc.list) < 8 {
		for i := range tc.list {
			if bytes.Equal(tc.list[i].key, key) {
				tc.list[i].cur = cur
				return
			}
		}
		tc.list = append(tc.list, change{key: key, old: old, cur: cur})
		return
	}
	if tc.byKey == nil {
		tc.byKey = make(map[string]int, 16)
		for i := range tc.list {
			tc.byKey[string(tc.list[i].key)] = i
		}
	}
	if i, ok := tc.byKey[string(key)]; ok {
		tc.list[i].cur = cur
		return
	}
	tc.byKey[string(key)] = len(tc.list)
	tc.list = append(tc.list, change{key: key, old: old, cur: cur})
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
	var keyArr [8][]byte
	rec, keys, autoinc, err := tx.newRec(ts, st, row, nil, true, keyArr[:0])
	if err != nil {
		return nil, err
	}
	if err := tx.checkUnique(ts, st, keys, nil); err != nil {
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

// newRec copies row into a new record with its row key, and returns with it
// the record's key in every index of the table (keys is reused for them).
// When fill is set it fills auto-increment columns that are 0 and returns
// the new counters. keepKey, when non-nil, is the hidden row id to reuse
// (updates).
//
// The row, its key and its secondary index keys share one allocation: they
// live and die together (an update or delete removes every index entry of
// the row).
func (tx *Tx) newRec(ts *tableSchema, st *tableState, row []byte, keepKey []byte, fill bool, keys [][]byte) (*rowRec, [][]byte, []uint64, error) {
	n := len(row)
	// Build in the transaction's buffer, then copy into one allocation of
	// the exact size: the record keeps no spare capacity.
	buf := append(tx.recBuf[:0], row...)
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
				return nil, nil, nil, fmt.Errorf("%w: table %q column %q (%s) has issued its last value %d", ErrAutoIncOverflow, ts.def.Name, ts.def.Columns[c].Name, k, counters[j])
			}
			counters[j] = next
			for i := 0; i < size; i++ {
				buf[off+i] = byte(next >> (8 * i))
			}
		}
	}
	switch {
	case keepKey != nil:
		buf = append(buf, keepKey...)
	case ts.pk >= 0:
		buf = ts.indexes[ts.pkIndex].indexKey(buf, buf[:n:n])
	default:
		buf = appendRowID(buf, st.nextRowID)
	}
	keyEnd := len(buf)
	// Secondary keys go after the row key; offsets first, slices once the
	// buffer has stopped growing.
	var offArr [16]int
	offs := offArr[:0]
	for _, ix := range ts.indexes {
		start := len(buf)
		if !ix.primary {
			buf = ix.indexKey(buf, buf[:n:n])
			if !ix.unique {
				buf = append(buf, buf[n:keyEnd]...)
			}
		}
		offs = append(offs, start, len(buf))
	}
	tx.recBuf = buf
	buf = append([]byte(nil), buf...)
	rec := &rowRec{b: buf[:keyEnd:keyEnd], n: n}
	for i, ix := range ts.indexes {
		if ix.primary {
			keys = append(keys, rec.key())
		} else {
			keys = append(keys, buf[offs[2*i]:offs[2*i+1]:offs[2*i+1]])
		}
	}
	return rec, keys, counters, nil
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

// checkUnique checks a record's index keys (from newRec) against every
// unique index, ignoring except (the row being replaced).
func (tx *Tx) checkUnique(ts *tableSchema, st *tableState, keys [][]byte, except *rowRec) error {
	for i, ix := range ts.indexes {
		if !ix.unique {
			continue
		}
		if e, ok := st.get(ix, keys[i], &tx.pr); ok && e != except {
			return fmt.Errorf("%w: table %q: index %q already has a row with this key", ErrUniqueViolation, ts.def.Name, ix.name)
		}
	}
	return nil
}

// insertRec adds rec to the rows tree and its entries, keyed by keys, to the
// secondary indexes; the entries of one row share an allocation.
func insertRec(ts *tableSchema, st *tableState, rec *rowRec, keys [][]byte) {
	st.rows.Set(rec)
	var ents []ixEntry
	if k := len(ts.indexes) - min(ts.pkIndex+1, 1); k > 0 {
		ents = make([]ixEntry, 0, k)
	}
	for i, ix := range ts.indexes {
		if !ix.primary {
			ents = append(ents, ixEntry{key: keys[i], rec: rec})
			st.idx[i].Set(&ents[len(ents)-1])
		}
	}
}

// deleteRec removes rec from the rows tree and its secondary index entries.
// pr provides the probe (and its key buffer) to find the entries with.
func deleteRec(ts *tableSchema, st *tableState, rec *rowRec, pr *probes) {
	st.rows.Delete(rec)
	probe := &pr.e
	for i, ix := range ts.indexes {
		if ix.primary {
			continue
		}
		pr.buf = ix.indexKey(pr.buf[:0], rec.row())
		if !ix.unique {
			pr.buf = append(pr.buf, rec.key()...)
		}
		probe.key = pr.buf
		st.idx[i].Delete(probe)
	}
	probe.key = nil
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
	tx.scratch = is.indexKey(tx.scratch[:0], row)
	old, ok := st.get(is, tx.scratch, &tx.pr)
	if !ok {
		return nil, fmt.Errorf("%w: table %q has no row with that key in index %q", ErrNotFound, ts.def.Name, is.name)
	}
	var keep []byte
	if ts.pk < 0 {
		keep = old.key()
	}
	var keyArr [8][]byte
	rec, keys, _, err := tx.newRec(ts, st, row, keep, false, keyArr[:0])
	if err != nil {
		return nil, err
	}
	if err := tx.checkUnique(ts, st, keys, old); err != nil {
		return nil, err
	}
	deleteRec(ts, st, old, &tx.pr)
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
	it := scanPoint(tx.tables[ts.id], is, p, false, full, &tx.pr)
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
		deleteRec(ts, st, rec, &tx.pr)
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
	// Encoded in the transaction's scratch buffer: a full key of a unique
	// index is looked up at once and not kept; any other key is kept by
	// the iterator, which gets its own copy.
	p, full, err := is.appendSearchKey(tx.scratch[:0], key)
	if err != nil {
		return nil, err
	}
	tx.scratch = p
	if !is.unique || !full {
		p = bytes.Clone(p)
	}
	id := is.table.id
	return scanPoint(tx.tables[id], is, p, tx.dirty(id), full, &tx.pr), nil
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
// transaction can run, and waits until the transaction is durable. A
// transaction that changed nothing gets the offset it read, once that offset
// is durable.
//
// Once queued, the outcome no longer depends on the caller: when ctx ends
// first, Commit stops waiting and returns ErrCommitUnconfirmed (wrapping
// ctx's error), but the transaction is not undone and may still become
// durable. A transaction that finds the committer idle is not queued: it is
// written on the caller's goroutine (saving two goroutine wake-ups), and
// Commit returns when that write ends, whatever ctx does meanwhile.
func (tx *Tx) Commit(ctx context.Context) (Commit, error) {
	c, req, err := tx.submit(nil)
	if err != nil || req == nil {
		return c, err
	}
	if err := tx.db.await(ctx, req, c.Offset); err != nil {
		return Commit{}, err
	}
	return c, nil
}

// CommitFunc applies the transaction and frees the writer slot like Commit,
// but returns once the transaction is ordered instead of waiting for it to
// be durable: then is called exactly once with the outcome Commit would
// have returned, once it is known. It runs on the store's committer
// goroutine (or on the caller's, when the caller writes the group itself
// or there is nothing to wait for), in offset order across the database's
// transactions, and must not block: it holds up the commits after it.
// When CommitFunc returns an error, nothing was committed and then is not
// called.
//
// A caller that pipelines (runs its next transaction while this one
// becomes durable) saves a goroutine waiting per transaction.
func (tx *Tx) CommitFunc(then func(Commit, error)) error {
	if then == nil {
		return fmt.Errorf("store: CommitFunc needs a function to call")
	}
	_, _, err := tx.submit(then)
	return err
}

// submit orders the transaction. With then nil, it returns the request to
// await (nil when there is nothing to wait for); otherwise the committer
// calls then and recycles the request.
func (tx *Tx) submit(then func(Commit, error)) (Commit, *request, error) {
	if tx.done {
		return Commit{}, nil, ErrTxDone
	}
	db := tx.db
	// Size the writes and their keys first, so that each goes into one
	// allocation.
	nw, nkey := 1, len(db.prefix)+1+8 // the offset key and its value
	for id, tc := range tx.changes {
		if tc == nil {
			continue
		}
		for i := range tc.list {
			if c := &tc.list[i]; !c.noop() {
				nw++
				nkey += len(db.prefix) + 5 + len(c.key)
			}
		}
		st, base := tx.tables[id], tx.base.tables[id]
		for j, v := range st.autoinc {
			if v != base.autoinc[j] {
				nw++
				nkey += len(db.prefix) + 7 + 8
			}
		}
	}
	if nw == 1 {
		return tx.commitReadOnly(then)
	}
	db2 := newDelta()
	delta := &db2.d
	writes := make([]Write, 0, nw)
	kb := make([]byte, 0, nkey)
	key := func(parts ...[]byte) []byte {
		start := len(kb)
		for _, p := range parts {
			kb = append(kb, p...)
		}
		return kb[start:len(kb):len(kb)]
	}
	nbytes := 0
	for id, tc := range tx.changes {
		if tc == nil {
			continue
		}
		st := tx.tables[id]
		ts := st.schema
		var td *TableDelta
		for i := range tc.list {
			c := &tc.list[i]
			if c.noop() {
				continue
			}
			if td == nil {
				if len(delta.Tables) == 0 {
					db2.useFirst(TableID(id), ts.def.Name)
				} else {
					delta.Tables = append(delta.Tables, TableDelta{Table: TableID(id), Name: ts.def.Name})
				}
				td = &delta.Tables[len(delta.Tables)-1]
			}
			var tid [5]byte
			tid[0] = 'r'
			binary.BigEndian.PutUint32(tid[1:], uint32(id))
			k := key(db.prefix, tid[:], c.key)
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
				var ak [7]byte
				ak[0] = 'a'
				binary.BigEndian.PutUint32(ak[1:], uint32(id))
				binary.BigEndian.PutUint16(ak[5:], uint16(ts.autoinc[j]))
				k := key(db.prefix, ak[:])
				var val [8]byte
				binary.BigEndian.PutUint64(val[:], v)
				writes = append(writes, Write{Key: k, Value: key(val[:])})
				nbytes += len(k) + 8
			}
		}
	}
	tx.done = true
	next := tx.next
	tx.base, tx.next, tx.tables, tx.changes = nil, nil, nil, nil
	s := db.s
	off := db.latest.offset + 1
	var ov [8]byte
	binary.BigEndian.PutUint64(ov[:], off)
	writes = append(writes, Write{Key: key(db.prefix, []byte{'o'}), Value: key(ov[:])})
	nbytes += 32
	if err := s.fitsOneTxn(len(writes), nbytes); err != nil {
		db.release()
		return Commit{}, nil, fmt.Errorf("%w: database %q: %w", ErrTxTooLarge, db.name, err)
	}
	if err := checkKeys(writes); err != nil {
		db.release()
		return Commit{}, nil, fmt.Errorf("%w: database %q: %w", ErrTxTooLarge, db.name, err)
	}
	next.offset = off
	c := Commit{Offset: off, Delta: delta}
	req := s.newRequest(db)
	req.writes, req.bytes, req.v, req.commit, req.hasCommit = writes, nbytes, next, c, true
	req.then = then
	claimed, err := s.enqueueOrClaim(req)
	if err != nil {
		s.putRequest(req)
		db.release()
		return Commit{}, nil, err
	}
	db.latest = next
	db.release()
	if claimed {
		// The committer was idle: write here rather than wake it and wait
		// for it. The answer is then already in req.done (or given to then).
		s.commitInline(req)
	}
	if then != nil {
		return c, nil, nil // req may already be recycled
	}
	return c, req, nil
}

// await waits for a queued request's outcome, or for ctx to end. The
// request goes back to the pool only once the committer has answered: on
// ctx's end it still holds it.
func (db *Database) await(ctx context.Context, req *request, off uint64) error {
	var err error
	select {
	case err = <-req.done:
	case <-ctx.Done():
		select {
		case err = <-req.done: // answered meanwhile: report the outcome
		default:
			return fmt.Errorf("%w: database %q: stopped waiting for offset %d to become durable, which it may still do: %w", ErrCommitUnconfirmed, db.name, off, ctx.Err())
		}
	}
	db.s.putRequest(req)
	return err
}

// commitReadOnly finishes a transaction that changed nothing. Nothing is
// written, but what it read must be durable before its caller hears back.
func (tx *Tx) commitReadOnly(then func(Commit, error)) (Commit, *request, error) {
	db, s := tx.db, tx.db.s
	tx.done = true
	tx.base, tx.next, tx.tables, tx.changes = nil, nil, nil, nil
	off := db.latest.offset
	c := Commit{Offset: off, Delta: &Delta{}}
	if db.durable.Load() == db.latest {
		db.release()
		if then != nil {
			then(c, nil)
		}
		return c, nil, nil
	}
	req := s.newRequest(db)
	req.commit = c // given to then; a barrier publishes nothing
	req.then = then
	if err := s.enqueue(req); err != nil {
		db.release()
		s.putRequest(req)
		return Commit{}, nil, err
	}
	db.release()
	if then != nil {
		return c, nil, nil
	}
	return c, req, nil
}

// noop reports whether a change has no net effect (inserted then deleted,
// or updated to the same bytes).
func (c *change) noop() bool {
	return c.old == c.cur || c.old != nil && c.cur != nil && bytes.Equal(c.old.row(), c.cur.row())
}

// deltaBuf lets the delta of a one-table transaction with a row or two be
// one allocation.
type deltaBuf struct {
	d    Delta
	td   [1]TableDelta
	rows [2][]byte
}

func newDelta() *deltaBuf { return new(deltaBuf) }

func (b *deltaBuf) useFirst(t TableID, name string) {
	b.td[0] = TableDelta{Table: t, Name: name, Inserts: b.rows[0:0:1], Deletes: b.rows[1:1:2]}
	b.d.Tables = b.td[:1:1]
}
