package store

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spacetime-go/spacetime/abi"
)

// TableID identifies a table within a database; ids are stable for the life
// of the database (AddTables only appends).
type TableID uint32

// IndexID identifies an index within a database, across all its tables.
type IndexID uint32

// tableSchema is the compiled, immutable form of a table definition.
type tableSchema struct {
	id      TableID
	def     abi.TableDef // Indexes holds ImpliedIndexes
	types   []abi.Type
	pk      int   // primary-key column, or -1 (rows keyed by a hidden row id)
	autoinc []int // auto-increment columns
	indexes []*indexSchema
	// pkIndex is the position in indexes of the index the rows tree serves
	// (the primary key's), or -1.
	pkIndex int
	// staticOff[i] is the byte offset of column i when every column before it
	// has a fixed size, else -1.
	staticOff []int
}

type indexSchema struct {
	id      IndexID
	table   *tableSchema
	pos     int // position in table.indexes and tableState.idx
	name    string
	cols    []int
	unique  bool
	primary bool // served by the table's rows tree: key == row key
}

// dbSchema is an immutable view of a database's tables; AddTables makes a
// new one.
type dbSchema struct {
	tables      []*tableSchema
	indexes     []*indexSchema
	tableByName map[string]*tableSchema
	indexByName map[string]*indexSchema
}

func (s *dbSchema) table(id TableID) (*tableSchema, error) {
	if int(id) >= len(s.tables) {
		return nil, fmt.Errorf("%w: table id %d (the database has %d tables)", ErrNoSuchTable, id, len(s.tables))
	}
	return s.tables[id], nil
}

func (s *dbSchema) index(id IndexID) (*indexSchema, error) {
	if int(id) >= len(s.indexes) {
		return nil, fmt.Errorf("%w: index id %d (the database has %d indexes)", ErrNoSuchIndex, id, len(s.indexes))
	}
	return s.indexes[id], nil
}

func (s *dbSchema) defs() []abi.TableDef {
	out := make([]abi.TableDef, len(s.tables))
	for i, t := range s.tables {
		out[i] = cloneTableDef(t.def)
	}
	return out
}

func cloneTableDef(d abi.TableDef) abi.TableDef {
	d.Columns = append([]abi.ColumnDef(nil), d.Columns...)
	ix := make([]abi.IndexDef, len(d.Indexes))
	for i, x := range d.Indexes {
		x.Columns = append([]string(nil), x.Columns...)
		ix[i] = x
	}
	d.Indexes = ix
	return d
}

// extend returns a schema with defs appended to s (s may be nil). Tables
// already in s must be given again unchanged or left out.
func extendSchema(s *dbSchema, defs []abi.TableDef) (*dbSchema, error) {
	n := &dbSchema{tableByName: map[string]*tableSchema{}, indexByName: map[string]*indexSchema{}}
	if s != nil {
		n.tables = append(n.tables, s.tables...)
		n.indexes = append(n.indexes, s.indexes...)
		for k, v := range s.tableByName {
			n.tableByName[k] = v
		}
		for k, v := range s.indexByName {
			n.indexByName[k] = v
		}
	}
	for _, d := range defs {
		if old, ok := n.tableByName[d.Name]; ok && s != nil && old.id < TableID(len(s.tables)) {
			if !sameTable(old.def, d) {
				return nil, fmt.Errorf("%w: table %q already exists with a different definition; only new tables can be added", ErrInvalidSchema, d.Name)
			}
			continue
		}
		ts, err := compileTable(TableID(len(n.tables)), d)
		if err != nil {
			return nil, err
		}
		if _, dup := n.tableByName[d.Name]; dup {
			return nil, fmt.Errorf("%w: table %q is defined twice", ErrInvalidSchema, d.Name)
		}
		for _, ix := range ts.indexes {
			if _, dup := n.indexByName[ix.name]; dup {
				return nil, fmt.Errorf("%w: table %q: index name %q is already used in this database", ErrInvalidSchema, d.Name, ix.name)
			}
			ix.id = IndexID(len(n.indexes))
			n.indexes = append(n.indexes, ix)
			n.indexByName[ix.name] = ix
		}
		n.tables = append(n.tables, ts)
		n.tableByName[d.Name] = ts
	}
	return n, nil
}

func sameTable(old abi.TableDef, d abi.TableDef) bool {
	if old.Name != d.Name || len(old.Columns) != len(d.Columns) {
		return false
	}
	for i, c := range d.Columns {
		o := old.Columns[i]
		if o.Name != c.Name || !o.Type.Equal(c.Type) || o.PrimaryKey != c.PrimaryKey || o.Unique != c.Unique || o.AutoInc != c.AutoInc || o.Identity != c.Identity {
			return false
		}
	}
	ni := d.ImpliedIndexes()
	if len(ni) != len(old.Indexes) {
		return false
	}
	for i, x := range ni {
		o := old.Indexes[i]
		if o.Name != x.Name || o.Unique != x.Unique || strings.Join(o.Columns, "\x00") != strings.Join(x.Columns, "\x00") {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func compileTable(id TableID, d abi.TableDef) (*tableSchema, error) {
	if !validName(d.Name) {
		return nil, fmt.Errorf("%w: table name %q must be 1-255 printable characters", ErrInvalidSchema, d.Name)
	}
	if len(d.Columns) == 0 {
		return nil, fmt.Errorf("%w: table %q has no columns", ErrInvalidSchema, d.Name)
	}
	ts := &tableSchema{id: id, pk: -1, pkIndex: -1}
	seen := map[string]bool{}
	for i, c := range d.Columns {
		if !validName(c.Name) {
			return nil, fmt.Errorf("%w: table %q: column %d has an invalid name %q", ErrInvalidSchema, d.Name, i, c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("%w: table %q: column %q is defined twice", ErrInvalidSchema, d.Name, c.Name)
		}
		seen[c.Name] = true
		if !c.Type.Valid() || typeDepth(c.Type) > 8 {
			return nil, fmt.Errorf("%w: table %q: column %q has invalid type %s", ErrInvalidSchema, d.Name, c.Name, c.Type)
		}
		if c.PrimaryKey {
			if ts.pk >= 0 {
				return nil, fmt.Errorf("%w: table %q: columns %q and %q are both marked primary key; a table has at most one", ErrInvalidSchema, d.Name, d.Columns[ts.pk].Name, c.Name)
			}
			ts.pk = i
		}
		if c.AutoInc {
			if !c.Type.Kind.IsInteger() {
				return nil, fmt.Errorf("%w: table %q: column %q is autoinc but has type %s; autoinc needs an integer type", ErrInvalidSchema, d.Name, c.Name, c.Type)
			}
			ts.autoinc = append(ts.autoinc, i)
		}
		if c.Identity && c.Type.Kind != abi.KindIdentity {
			return nil, fmt.Errorf("%w: table %q: column %q is marked id but has type %s, not IdentityId", ErrInvalidSchema, d.Name, c.Name, c.Type)
		}
	}
	// A declared index may not reuse an implied index's name with another meaning.
	implied := d.ImpliedIndexes()
	for _, x := range d.Indexes {
		for _, y := range implied {
			if x.Name == y.Name && (x.Unique != y.Unique || strings.Join(x.Columns, "\x00") != strings.Join(y.Columns, "\x00")) {
				return nil, fmt.Errorf("%w: table %q: index %q is declared with columns %v but that name is the implied index on %v", ErrInvalidSchema, d.Name, x.Name, x.Columns, y.Columns)
			}
		}
	}
	ts.def = abi.TableDef{Name: d.Name, Columns: append([]abi.ColumnDef(nil), d.Columns...), Indexes: implied}
	ts.types = ts.def.ColumnTypes()
	for pos, x := range implied {
		if !validName(x.Name) {
			return nil, fmt.Errorf("%w: table %q: index name %q is invalid", ErrInvalidSchema, d.Name, x.Name)
		}
		if len(x.Columns) == 0 {
			return nil, fmt.Errorf("%w: table %q: index %q has no columns", ErrInvalidSchema, d.Name, x.Name)
		}
		ix := &indexSchema{table: ts, pos: pos, name: x.Name, unique: x.Unique}
		used := map[int]bool{}
		for _, cn := range x.Columns {
			ci := ts.def.Column(cn)
			if ci < 0 {
				return nil, fmt.Errorf("%w: table %q: index %q names column %q, which does not exist", ErrInvalidSchema, d.Name, x.Name, cn)
			}
			if used[ci] {
				return nil, fmt.Errorf("%w: table %q: index %q lists column %q twice", ErrInvalidSchema, d.Name, x.Name, cn)
			}
			used[ci] = true
			ix.cols = append(ix.cols, ci)
		}
		if ts.pk >= 0 && ts.pkIndex < 0 && x.Unique && len(ix.cols) == 1 && ix.cols[0] == ts.pk {
			ix.primary = true
			ts.pkIndex = pos
		}
		ts.indexes = append(ts.indexes, ix)
	}
	ts.staticOff = make([]int, len(ts.types)+1)
	off := 0
	for i, t := range ts.types {
		ts.staticOff[i] = off
		if off >= 0 {
			if n := t.Kind.FixedSize(); n > 0 {
				off += n
			} else {
				off = -1
			}
		}
	}
	ts.staticOff[len(ts.types)] = off
	return ts, nil
}

func typeDepth(t abi.Type) int {
	if t.Elem == nil {
		return 1
	}
	return 1 + typeDepth(*t.Elem)
}

// valueLen is the BSATN length of the validated value of type t at b.
func valueLen(t *abi.Type, b []byte) int {
	if n := t.Kind.FixedSize(); n > 0 {
		return n
	}
	switch t.Kind {
	case abi.KindString, abi.KindBytes:
		return 4 + int(binary.LittleEndian.Uint32(b))
	case abi.KindOption:
		if b[0] == 1 {
			return 1
		}
		return 1 + valueLen(t.Elem, b[1:])
	case abi.KindVec:
		cnt := int(binary.LittleEndian.Uint32(b))
		off := 4
		if n := t.Elem.Kind.FixedSize(); n > 0 {
			return off + cnt*n
		}
		for i := 0; i < cnt; i++ {
			off += valueLen(t.Elem, b[off:])
		}
		return off
	}
	panic(fmt.Sprintf("store: valueLen of invalid type %s", t))
}

// colOffset returns the offset of column c in the validated row.
func (ts *tableSchema) colOffset(row []byte, c int) int {
	if o := ts.staticOff[c]; o >= 0 {
		return o
	}
	// Start from the last statically known column.
	i := c
	for ts.staticOff[i] < 0 {
		i--
	}
	off := ts.staticOff[i]
	for ; i < c; i++ {
		off += valueLen(&ts.types[i], row[off:])
	}
	return off
}

// indexKey appends the index key of row (without the row-id suffix of a
// non-unique index) to dst.
func (ix *indexSchema) indexKey(dst, row []byte) []byte {
	ts := ix.table
	for _, c := range ix.cols {
		off := ts.colOffset(row, c)
		dst, _ = encodeKey(dst, &ts.types[c], row[off:])
	}
	return dst
}

// encodeSearchKey validates key as the BSATN of a prefix of the index's
// columns and returns its key encoding, and whether it has every column.
func (ix *indexSchema) encodeSearchKey(key []byte) (enc []byte, full bool, err error) {
	return ix.appendSearchKey(make([]byte, 0, len(key)+8), key)
}

// appendSearchKey is encodeSearchKey appending to out.
func (ix *indexSchema) appendSearchKey(out, key []byte) (enc []byte, full bool, err error) {
	ts := ix.table
	r := abi.NewReader(key)
	i := 0
	for ; r.Remaining() > 0; i++ {
		if i >= len(ix.cols) {
			return nil, false, fmt.Errorf("%w: key for index %q has %d bytes after its %d columns", ErrSchemaMismatch, ix.name, r.Remaining(), len(ix.cols))
		}
		t := &ts.types[ix.cols[i]]
		start := r.Offset()
		r.Skip(*t)
		if err := r.Err(); err != nil {
			return nil, false, fmt.Errorf("%w: key for index %q, column %q (%s): %w", ErrSchemaMismatch, ix.name, ts.def.Columns[ix.cols[i]].Name, t, err)
		}
		out, _ = encodeKey(out, t, key[start:r.Offset()])
	}
	return out, i == len(ix.cols), nil
}
