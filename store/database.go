package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spacetime-go/spacetime/abi"
)

// Database is one database: its tables, a single writer, and snapshots.
type Database struct {
	s      *Store
	name   string
	id     uint64
	prefix []byte // "D" id

	writer chan struct{} // the writer slot: holds a token when free
	// latest is the newest committed state, possibly not yet durable; only
	// the holder of the writer slot reads or writes it.
	latest   *version
	durable  atomic.Pointer[version]
	dropped  atomic.Bool
	creating bool // guarded by s.mu

	metaMu sync.RWMutex
	meta   map[string][]byte

	subsMu       sync.Mutex
	subs         map[uint64]func(Commit, *Snapshot)
	nextSub      uint64
	nsubs        atomic.Int32
	notif        *notifier
	notifStopped bool // guarded by subsMu: the database was dropped or its store closed
}

func newDatabase(s *Store, name string, id uint64, sch *dbSchema) *Database {
	db := &Database{s: s, name: name, id: id, prefix: dataPrefix(id), writer: make(chan struct{}, 1), meta: map[string][]byte{}, subs: map[uint64]func(Commit, *Snapshot){}}
	db.writer <- struct{}{}
	v := &version{schema: sch, tables: make([]*tableState, len(sch.tables))}
	for i, ts := range sch.tables {
		v.tables[i] = newTableState(ts)
	}
	db.latest = v
	db.durable.Store(v)
	return db
}

func (db *Database) metaKey(key string) []byte {
	return append(append(append([]byte(nil), db.prefix...), 'm'), key...)
}

// Name returns the database's name.
func (db *Database) Name() string { return db.name }

func (db *Database) schema() *dbSchema { return db.durable.Load().schema }

// Tables returns the table definitions, with Indexes holding the implied
// indexes too; TableID(i) is the i-th.
func (db *Database) Tables() []abi.TableDef { return db.schema().defs() }

// TableID returns the id of the table called name.
func (db *Database) TableID(name string) (TableID, error) {
	if ts, ok := db.schema().tableByName[name]; ok {
		return ts.id, nil
	}
	return 0, fmt.Errorf("%w: %q in database %q", ErrNoSuchTable, name, db.name)
}

// IndexID returns the id of the index called name (see abi.IndexName).
func (db *Database) IndexID(name string) (IndexID, error) {
	if ix, ok := db.schema().indexByName[name]; ok {
		return ix.id, nil
	}
	return 0, fmt.Errorf("%w: %q in database %q", ErrNoSuchIndex, name, db.name)
}

// Table returns the definition of table id.
func (db *Database) Table(id TableID) (*abi.TableDef, error) {
	ts, err := db.schema().table(id)
	if err != nil {
		return nil, err
	}
	d := cloneTableDef(ts.def)
	return &d, nil
}

func (db *Database) acquire(ctx context.Context) error {
	if err := db.usable(); err != nil {
		return err
	}
	select {
	case <-db.writer:
	case <-ctx.Done():
		return fmt.Errorf("database %q: waiting for the writer: %w", db.name, ctx.Err())
	}
	if err := db.usable(); err != nil {
		db.release()
		return err
	}
	return nil
}

func (db *Database) usable() error {
	if db.s.closed.Load() {
		return ErrClosed
	}
	if err := db.s.failure(); err != nil {
		return err
	}
	if db.dropped.Load() {
		return fmt.Errorf("%w: %q was dropped", ErrNoSuchDatabase, db.name)
	}
	return nil
}

func (db *Database) release() { db.writer <- struct{}{} }

// Begin starts a transaction once the writer slot is free (or ctx is done).
func (db *Database) Begin(ctx context.Context) (*Tx, error) {
	if err := db.acquire(ctx); err != nil {
		return nil, err
	}
	v := db.latest
	// Until its first write the transaction reads the base version's
	// tables; writable makes the version it will publish.
	tx := &Tx{db: db, base: v, tables: v.tables}
	if len(v.tables) <= len(tx.chgBuf) {
		tx.changes = tx.chgBuf[:len(v.tables)]
	} else {
		tx.changes = make([]*tableChanges, len(v.tables))
	}
	return tx, nil
}

// SetMeta durably stores a metadata value (module bytes, owner, ...).
func (db *Database) SetMeta(ctx context.Context, key string, value []byte) error {
	if err := db.acquire(ctx); err != nil {
		return err
	}
	v := append([]byte(nil), value...)
	req := &request{db: db, writes: []Write{{Key: db.metaKey(key), Value: v}}, bytes: len(key) + len(v) + 16, done: make(chan error, 1),
		after: func() {
			db.metaMu.Lock()
			db.meta[key] = v
			db.metaMu.Unlock()
		}}
	if err := db.s.fitsOneTxn(1, req.bytes); err != nil {
		db.release()
		return fmt.Errorf("%w: metadata %q: %w", ErrTxTooLarge, key, err)
	}
	if err := checkKeys(req.writes); err != nil {
		db.release()
		return fmt.Errorf("%w: metadata %.40q...: %w", ErrTxTooLarge, key, err)
	}
	err := db.s.enqueue(req)
	db.release()
	if err != nil {
		return err
	}
	return <-req.done
}

// Meta returns a metadata value set by SetMeta. The slice must not be
// modified.
func (db *Database) Meta(key string) ([]byte, bool) {
	db.metaMu.RLock()
	defer db.metaMu.RUnlock()
	v, ok := db.meta[key]
	return v, ok
}

// AddTables adds new tables (republishing a module). Tables that already
// exist must be given unchanged or omitted; changing one is ErrInvalidSchema.
func (db *Database) AddTables(ctx context.Context, tables []abi.TableDef) error {
	if err := db.acquire(ctx); err != nil {
		return err
	}
	defer db.release()
	old := db.latest
	sch, err := extendSchema(old.schema, tables)
	if err != nil {
		return fmt.Errorf("database %q: %w", db.name, err)
	}
	if len(sch.tables) == len(old.schema.tables) {
		return nil
	}
	val, err := json.Marshal(catalogEntry{ID: db.id, Tables: sch.defs()})
	if err != nil {
		return err
	}
	v := &version{schema: sch, tables: append([]*tableState(nil), old.tables...), offset: old.offset}
	for _, ts := range sch.tables[len(old.tables):] {
		v.tables = append(v.tables, newTableState(ts))
	}
	req := &request{db: db, writes: []Write{{Key: catalogKey(db.name), Value: val}}, bytes: len(val) + len(db.name) + 1, v: v, done: make(chan error, 1)}
	if err := db.s.enqueue(req); err != nil {
		return err
	}
	if err := <-req.done; err != nil {
		return err
	}
	db.latest = v
	return nil
}

// Snapshot returns the database as of its latest durable transaction. It
// never blocks the writer and stays valid (and unchanged) for as long as it
// is held.
func (db *Database) Snapshot() *Snapshot { return &Snapshot{v: db.durable.Load()} }
