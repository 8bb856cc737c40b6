package stdb

import (
	"fmt"
	"iter"

	"github.com/spacetime-go/spacetime/abi"
)

// Errors a table operation wraps, so reducers can test for them with
// errors.Is. They are the host's errnos.
var (
	ErrUniqueViolation error = abi.ErrnoUniqueViolation
	ErrNotFound        error = abi.ErrnoNotFound
	ErrAutoIncOverflow error = abi.ErrnoAutoIncOverflow
	ErrLimitExceeded   error = abi.ErrnoLimitExceeded
)

// Table is a table as generated code sees it: its name, the unique columns
// (for error messages) and its host id, looked up once per instance.
type Table struct {
	name   string
	unique string
	id     uint32
}

// NewTable returns the handle generated code keeps for a table. unique
// lists its primary-key and unique columns, for messages such as
// "User: unique violation on identity_id".
func NewTable(name, unique string) *Table { return &Table{name: name, unique: unique} }

// Name is the table's name.
func (t *Table) Name() string { return t.name }

func (t *Table) resolve() uint32 {
	if t.id == 0 {
		id, e := sysTableID(t.name)
		if e != abi.ErrnoOK {
			panic(fmt.Errorf("table %s: the host does not know it (%w); was the module published with this schema?", t.name, e))
		}
		t.id = id + 1 // 0 means unresolved; host ids may start at 0
	}
	return t.id - 1
}

// Insert inserts a BSATN row. Auto-increment columns that are 0 get their
// value written back into row.
func (t *Table) Insert(row []byte) error {
	if e := sysInsert(t.resolve(), row); e != abi.ErrnoOK {
		return t.err("insert", e)
	}
	return nil
}

// Count returns the number of rows the transaction sees.
func (t *Table) Count() uint64 {
	n, e := sysRowCount(t.resolve())
	if e != abi.ErrnoOK {
		panic(t.err("count", e))
	}
	return n
}

// Scan opens an iterator over every row.
func (t *Table) Scan() *RowIter {
	h, e := sysTableScan(t.resolve())
	if e != abi.ErrnoOK {
		panic(t.err("scan", e))
	}
	return newRowIter(h, t.name)
}

func (t *Table) err(op string, e abi.Errno) error {
	switch e {
	case abi.ErrnoUniqueViolation:
		return fmt.Errorf("%s: unique violation on %s: %w", t.name, t.unique, e)
	case abi.ErrnoAutoIncOverflow:
		return fmt.Errorf("%s: auto-increment column has no values left: %w", t.name, e)
	case abi.ErrnoLimitExceeded:
		// The host keeps which limit (rows, bytes, row size, iterators...)
		// and puts it in the failed call's answer and the module log.
		return fmt.Errorf("%s: %s refused by a host limit (the call's answer and the module log name it): %w", t.name, op, e)
	case abi.ErrnoBadRow:
		return fmt.Errorf("%s: %s: the row does not match the table's schema (regenerate the module code): %w", t.name, op, e)
	case abi.ErrnoReadOnly:
		return fmt.Errorf("%s: %s: the host maintains this system table; modules read it but cannot write it: %w", t.name, op, e)
	}
	return fmt.Errorf("%s: %s: %w", t.name, op, e)
}

// Index is an index as generated code sees it.
type Index struct {
	name   string
	table  string
	column string // the indexed column(s), for error messages
	id     uint32
}

// NewIndex returns the handle generated code keeps for an index named by
// abi.IndexName.
func NewIndex(name, table, column string) *Index {
	return &Index{name: name, table: table, column: column}
}

func (ix *Index) resolve() uint32 {
	if ix.id == 0 {
		id, e := sysIndexID(ix.name)
		if e != abi.ErrnoOK {
			panic(fmt.Errorf("index %s: the host does not know it (%w); was the module published with this schema?", ix.name, e))
		}
		ix.id = id + 1
	}
	return ix.id - 1
}

// ScanPoint opens an iterator over the rows whose key equals key (BSATN of
// the index columns, or a prefix of them).
func (ix *Index) ScanPoint(key []byte) *RowIter {
	h, e := sysScanPoint(ix.resolve(), key)
	if e != abi.ErrnoOK {
		panic(ix.err("scan", e))
	}
	return newRowIter(h, ix.table)
}

// ScanRange opens an iterator over the rows whose key lies between lo and hi.
func (ix *Index) ScanRange(lo []byte, loKind BoundKind, hi []byte, hiKind BoundKind) *RowIter {
	h, e := sysScanRange(ix.resolve(), lo, uint32(loKind), hi, uint32(hiKind))
	if e != abi.ErrnoOK {
		panic(ix.err("range scan", e))
	}
	return newRowIter(h, ix.table)
}

// FindRow returns the BSATN of the first row whose key in this index starts
// with key (for a unique index given its whole key: the row), or nil when
// there is none. The bytes live in a buffer the SDK reuses: decode them
// before the next table call. Generated FilterBy methods of unique indexes
// use it: unlike ScanPoint and First it allocates nothing.
func (ix *Index) FindRow(key []byte) []byte {
	h, e := sysScanPoint(ix.resolve(), key)
	if e != abi.ErrnoOK {
		panic(ix.err("scan", e))
	}
	if findBuf == nil {
		findBuf = make([]byte, iterBufSize)
	}
	for {
		n, e := sysIterAdvance(h, findBuf)
		switch e {
		case abi.ErrnoOK:
			// The host may hold more rows; only the first is wanted.
			sysIterClose(h)
			if n == 0 {
				return nil
			}
			return findBuf[:n]
		case abi.ErrnoExhausted: // the host closed the handle
			return nil
		case abi.ErrnoBufferTooSmall:
			if n <= len(findBuf) { // the host must ask for more than it got
				sysIterClose(h)
				panic(fmt.Errorf("%s: iterator asked for %d bytes with a %d-byte buffer", ix.table, n, len(findBuf)))
			}
			findBuf = make([]byte, max(n, 2*len(findBuf)))
		default:
			sysIterClose(h)
			panic(fmt.Errorf("%s: reading rows: %w", ix.table, e))
		}
	}
}

// findBuf holds the row FindRow returns; it grows to the largest row found.
var findBuf []byte

// DecodeError is the panic value of generated code when a row the host
// returned does not decode as the table's row type: the module was built
// against another schema.
func (ix *Index) DecodeError(err error) error {
	return fmt.Errorf("%s: decoding a row: %w", ix.table, err)
}

// Update replaces the row with the same key in this (unique) index.
func (ix *Index) Update(row []byte) error {
	if e := sysUpdate(ix.resolve(), row); e != abi.ErrnoOK {
		if e == abi.ErrnoNotFound {
			return fmt.Errorf("%s: update: no row with that %s: %w", ix.table, ix.column, e)
		}
		if e == abi.ErrnoUniqueViolation {
			return fmt.Errorf("%s: update by %s: another row has the same value in a unique column: %w", ix.table, ix.column, e)
		}
		return ix.err("update", e)
	}
	return nil
}

// Delete deletes the rows matching key and returns how many there were.
func (ix *Index) Delete(key []byte) (uint32, error) {
	n, e := sysDelete(ix.resolve(), key)
	if e != abi.ErrnoOK {
		return 0, ix.err("delete", e)
	}
	return n, nil
}

func (ix *Index) err(op string, e abi.Errno) error {
	return fmt.Errorf("%s: %s by %s: %w", ix.table, op, ix.column, e)
}

// BoundKind says how a range bound compares.
type BoundKind uint32

// The bound kinds of index_scan_range.
const (
	BoundInclusive = BoundKind(abi.BoundInclusive)
	BoundExclusive = BoundKind(abi.BoundExclusive)
	BoundUnbounded = BoundKind(abi.BoundUnbounded)
)

// Bound is one end of a range scan over values of type T.
type Bound[T any] struct {
	Value T
	Kind  BoundKind
}

// Inclusive, Exclusive and Unbounded make range bounds.
func Inclusive[T any](v T) Bound[T] { return Bound[T]{Value: v, Kind: BoundInclusive} }
func Exclusive[T any](v T) Bound[T] { return Bound[T]{Value: v, Kind: BoundExclusive} }
func Unbounded[T any]() Bound[T]    { return Bound[T]{Kind: BoundUnbounded} }

// Scratch returns the shared writer generated code encodes rows and keys
// into right before a host call. The host copies what it reads, so the
// writer is free again when the call returns; never keep its bytes.
func Scratch() *abi.Writer {
	scratch.Reset()
	return &scratch
}

var scratch abi.Writer

// iterBufSize is the first size of an iterator's buffer: enough for dozens
// of typical rows per host call. It grows when a row does not fit.
const iterBufSize = 4096

// Iterator buffers are pooled: a reducer usually opens a few iterators, one
// at a time, and reusing buffers keeps the garbage collector idle.
var bufPool [][]byte

func getBuf() []byte {
	if n := len(bufPool); n > 0 {
		b := bufPool[n-1]
		bufPool = bufPool[:n-1]
		return b
	}
	return make([]byte, iterBufSize)
}

func putBuf(b []byte) {
	if len(bufPool) < 8 {
		bufPool = append(bufPool, b[:cap(b)])
	}
}

// RowIter reads rows from a host iterator in batches. Rows come back to back
// with no separators; generated code decodes them one after another.
type RowIter struct {
	h     uint32
	table string
	buf   []byte
	done  bool
}

func newRowIter(h uint32, table string) *RowIter {
	return &RowIter{h: h, table: table, buf: getBuf()}
}

// Next returns the next batch of whole rows, or false when there are no more.
// The batch is valid until the next call.
func (it *RowIter) Next() ([]byte, bool) {
	for !it.done {
		n, e := sysIterAdvance(it.h, it.buf)
		switch e {
		case abi.ErrnoOK:
			if n == 0 { // no rows yet not exhausted: treat as the end rather than spin
				it.Close()
				return nil, false
			}
			return it.buf[:n], true
		case abi.ErrnoExhausted:
			it.done = true // the host closed the handle
		case abi.ErrnoBufferTooSmall:
			if n <= len(it.buf) { // the host must ask for more than it got
				panic(fmt.Errorf("%s: iterator asked for %d bytes with a %d-byte buffer", it.table, n, len(it.buf)))
			}
			it.buf = make([]byte, max(n, 2*len(it.buf)))
		default:
			it.done = true
			panic(fmt.Errorf("%s: reading rows: %w", it.table, e))
		}
	}
	return nil, false
}

// Close releases the iterator. It is safe to call more than once.
func (it *RowIter) Close() {
	if !it.done {
		it.done = true
		sysIterClose(it.h)
	}
	if it.buf != nil {
		putBuf(it.buf)
		it.buf = nil
	}
}

// Seq returns a sequence of the rows an iterator yields, decoding each with
// decode. open runs each time the sequence is ranged over. A host failure or
// a row that does not decode panics, which fails the reducer cleanly.
//
// The row and the reader are declared once per range, not per row: decode
// is a function value, so the compiler cannot keep what it is handed on the
// stack, and a per-row variable would be a heap allocation per row. Each row
// is decoded into a zeroed value and yielded by copy, so reuse is invisible.
func Seq[T any](open func() *RowIter, decode func(*abi.Reader, *T)) iter.Seq[T] {
	return func(yield func(T) bool) {
		it := open()
		defer it.Close()
		var v, zero T
		var r abi.Reader
		for {
			batch, ok := it.Next()
			if !ok {
				return
			}
			r = *abi.NewReader(batch)
			for r.Remaining() > 0 {
				v = zero
				decode(&r, &v)
				if err := r.Err(); err != nil {
					panic(fmt.Errorf("%s: decoding a row: %w", it.table, err))
				}
				if !yield(v) {
					return
				}
			}
		}
	}
}

// First returns the first row an iterator yields, and closes it.
func First[T any](it *RowIter, decode func(*abi.Reader, *T)) (T, bool) {
	defer it.Close()
	var v T
	batch, ok := it.Next()
	if !ok {
		return v, false
	}
	r := abi.NewReader(batch)
	decode(r, &v)
	if err := r.Err(); err != nil {
		panic(fmt.Errorf("%s: decoding a row: %w", it.table, err))
	}
	return v, true
}

// DecodeInto decodes one row from b, as generated Insert does after the host
// filled in auto-increment values.
func DecodeInto[T any](b []byte, decode func(*abi.Reader, *T), v *T) error {
	r := abi.NewReader(b)
	decode(r, v)
	return r.Err()
}

// TokenError is a token the host refused. Its message is "invalid token: "
// and the host's reason, fit to show a caller; errors.Is(err,
// abi.ErrnoTokenInvalid) holds.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

// Unwrap returns abi.ErrnoTokenInvalid.
func (e *TokenError) Unwrap() error { return abi.ErrnoTokenInvalid }

// VerifyJWT asks the host to verify a token with the issuers it trusts for
// this database. It returns the token's claims as JSON, or a *TokenError
// that says why the token was refused.
func VerifyJWT(token string) ([]byte, error) {
	src, e := sysJWTVerify(token)
	switch e {
	case abi.ErrnoOK:
		return ReadSource(src)
	case abi.ErrnoTokenInvalid:
		reason, _ := ReadSource(src)
		return nil, &TokenError{Reason: string(reason)}
	}
	return nil, fmt.Errorf("verifying a token: %w", e)
}

// IdentityFromClaims derives the IdentityId of issuer and subject, as
// SpacetimeDB does, so identities are portable.
func IdentityFromClaims(issuer, subject string) (Identity, error) {
	id, e := sysIdentityFromClaims(issuer, subject)
	if e != abi.ErrnoOK {
		return Identity{}, fmt.Errorf("deriving an identity: %w", e)
	}
	return id, nil
}

// CallerClaims returns the claims (JSON) of the token behind the caller, and
// false when the caller did not authenticate with one.
func CallerClaims() ([]byte, bool, error) {
	src, e := sysCallerClaims()
	switch e {
	case abi.ErrnoOK:
		b, err := ReadSource(src)
		return b, err == nil, err
	case abi.ErrnoNoClaims:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("reading the caller's claims: %w", e)
}
