package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/spacetime-go/spacetime/abi"
)

// Store is one Badger instance holding every database.
type Store struct {
	opts   config
	log    *slog.Logger
	bdb    *badger.DB
	dur    Durability
	com    committer
	failed atomic.Pointer[error]
	closed atomic.Bool

	mu     sync.Mutex // guards dbs, nextID, pending
	dbs    map[string]*Database
	nextID uint64

	stopGC chan struct{}
	wg     sync.WaitGroup
	reqs   sync.Pool // *request, reused by commits
}

// catalogEntry is the value of a database's catalog key.
type catalogEntry struct {
	ID     uint64         `json:"id"`
	Tables []abi.TableDef `json:"tables"`
}

const (
	pfxCatalog = 'C'
	pfxNextID  = 'N'
	pfxData    = 'D'
)

func catalogKey(name string) []byte { return append([]byte{pfxCatalog}, name...) }

func dataPrefix(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{pfxData}, id) }

// badgerOptions are chosen for a small idle footprint; see RATIONALE.md.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(slogBadger{log}).
		WithLoggingLevel(badger.WARNING).
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(0).
		WithIndexCacheSize(8 << 20).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
}

// Open opens (or creates) the store in dir and rebuilds every database's
// tables and indexes from it.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	bdb, err := badger.Open(badgerOptions(dir, o.logger))
	if err != nil {
		return nil, fmt.Errorf("store: open badger in %s: %w", dir, err)
	}
	s := &Store{opts: o, log: o.logger, bdb: bdb, dbs: map[string]*Database{}, nextID: 1, stopGC: make(chan struct{})}
	s.dur = badgerDurability{bdb}
	if o.durability != nil {
		s.dur = o.durability(s.dur)
	}
	start := time.Now()
	if err := s.recover(ctx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store: recover from %s: %w", dir, err)
	}
	s.log.Info("store opened", "dir", dir, "databases", len(s.dbs), "took", time.Since(start))
	s.com.cond = sync.NewCond(&s.com.mu)
	s.com.done = make(chan struct{})
	go s.runCommitter()
	if o.gcInterval > 0 {
		s.wg.Add(1)
		go s.runGC(o.gcInterval)
	}
	return s, nil
}

// runGC collects the value log now and then. Rows below Badger's value
// threshold (1 MB) live in the LSM tree, so the value log only holds large
// rows and this rarely finds work.
func (s *Store) runGC(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
			for s.bdb.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Close waits for queued commits to become durable, then closes Badger.
// Transactions still open fail to commit with ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.com.mu.Lock()
	s.com.closing = true
	s.com.cond.Broadcast()
	s.com.mu.Unlock()
	<-s.com.done
	close(s.stopGC)
	s.wg.Wait()
	// stopNotifier waits for OnCommit callbacks to return, and a callback
	// may call back into the store (Databases, Database): never wait for
	// it while holding s.mu.
	s.mu.Lock()
	dbs := make([]*Database, 0, len(s.dbs))
	for _, db := range s.dbs {
		dbs = append(dbs, db)
	}
	s.mu.Unlock()
	for _, db := range dbs {
		db.stopNotifier()
	}
	if err := s.bdb.Close(); err != nil {
		return fmt.Errorf("store: close badger: %w", err)
	}
	return nil
}

// CreateDatabase creates a database with the given tables. The name may be
// any 1-255 printable characters.
func (s *Store) CreateDatabase(ctx context.Context, name string, tables []abi.TableDef) (*Database, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, fmt.Errorf("%w: database name %q must be 1-255 printable characters", ErrInvalidSchema, name)
	}
	sch, err := extendSchema(nil, tables)
	if err != nil {
		return nil, fmt.Errorf("database %q: %w", name, err)
	}
	s.mu.Lock()
	if _, ok := s.dbs[name]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrDatabaseExists, name)
	}
	id := s.nextID
	s.nextID++
	db := newDatabase(s, name, id, sch)
	db.creating = true
	s.dbs[name] = db // reserve the name
	s.mu.Unlock()

	val, err := json.Marshal(catalogEntry{ID: id, Tables: sch.defs()})
	if err == nil {
		req := &request{writes: []Write{
			{Key: catalogKey(name), Value: val},
			{Key: []byte{pfxNextID}, Value: binary.BigEndian.AppendUint64(nil, id+1)},
		}, done: make(chan error, 1)}
		req.bytes = len(val) + len(name) + 16
		if err = s.enqueue(req); err == nil {
			err = <-req.done
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.dbs, name)
		return nil, fmt.Errorf("store: create database %q: %w", name, err)
	}
	db.creating = false
	return db, nil
}

// Database returns the database called name.
func (s *Store) Database(name string) (*Database, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	db, ok := s.dbs[name]
	if !ok || db.creating {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchDatabase, name)
	}
	return db, nil
}

// Databases returns the names of all databases, sorted.
func (s *Store) Databases() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.dbs))
	for n, db := range s.dbs {
		if !db.creating {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// DropDatabase waits for the database's writer, then deletes its catalog
// entry and every one of its keys. Open transactions on it fail to commit.
func (s *Store) DropDatabase(ctx context.Context, name string) error {
	db, err := s.Database(name)
	if err != nil {
		return err
	}
	if err := db.acquire(ctx); err != nil {
		return err
	}
	if !db.dropped.CompareAndSwap(false, true) {
		db.release()
		return fmt.Errorf("%w: %q", ErrNoSuchDatabase, name)
	}
	defer db.release()
	req := &request{writes: []Write{{Key: catalogKey(name), Delete: true}}, bytes: len(name) + 1, done: make(chan error, 1)}
	if err := s.enqueue(req); err != nil {
		db.dropped.Store(false)
		return err
	}
	if err := <-req.done; err != nil {
		db.dropped.Store(false)
		return fmt.Errorf("store: drop database %q: %w", name, err)
	}
	s.mu.Lock()
	delete(s.dbs, name)
	s.mu.Unlock()
	db.stopNotifier()
	// The catalog entry is gone, so a crash from here on leaves only
	// orphaned data, which Open removes.
	drop := &request{drop: db.prefix, done: make(chan error, 1)}
	if err := s.enqueue(drop); err != nil {
		return err
	}
	if err := <-drop.done; err != nil {
		return fmt.Errorf("store: drop database %q: remove its data: %w", name, err)
	}
	return nil
}

// recover rebuilds every database from Badger.
func (s *Store) recover(ctx context.Context) error {
	byID := map[uint64]*Database{}
	err := s.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{pfxCatalog}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			name := string(item.Key()[1:])
			var ce catalogEntry
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &ce) }); err != nil {
				return fmt.Errorf("catalog entry of database %q: %w", name, err)
			}
			sch, err := extendSchema(nil, ce.Tables)
			if err != nil {
				return fmt.Errorf("catalog entry of database %q: %w", name, err)
			}
			db := newDatabase(s, name, ce.ID, sch)
			s.dbs[name] = db
			byID[ce.ID] = db
			if ce.ID >= s.nextID {
				s.nextID = ce.ID + 1
			}
		}
		if item, err := txn.Get([]byte{pfxNextID}); err == nil {
			if err := item.Value(func(v []byte) error {
				if n := binary.BigEndian.Uint64(v); n > s.nextID {
					s.nextID = n
				}
				return nil
			}); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	var orphans [][]byte
	for id, db := range byID {
		_ = id
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.loadDatabase(db); err != nil {
			return fmt.Errorf("database %q: %w", db.name, err)
		}
	}
	// Data whose catalog entry is gone belongs to a database dropped just
	// before a crash.
	err = s.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{pfxData}})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()
			if len(k) < 9 {
				it.Next()
				continue
			}
			id := binary.BigEndian.Uint64(k[1:9])
			if _, ok := byID[id]; !ok {
				orphans = append(orphans, dataPrefix(id))
			}
			it.Seek(dataPrefix(id + 1))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range orphans {
		s.log.Warn("removing data of a dropped database", "id", binary.BigEndian.Uint64(p[1:]))
		if err := s.bdb.DropPrefix(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) loadDatabase(db *Database) error {
	sch := db.latest.schema
	tables := db.latest.tables
	// Index entries are gathered as values and sorted before they are
	// bulk-loaded: sorting values is much faster than sorting pointers.
	pending := make([][][]ixEntry, len(tables)) // per table, per index position
	for i, st := range tables {
		pending[i] = make([][]ixEntry, len(st.idx))
	}
	err := s.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: db.prefix})
		defer it.Close()
		pl := len(db.prefix)
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) <= pl {
				continue
			}
			switch k[pl] {
			case 'o':
				if err := item.Value(func(v []byte) error { db.latest.offset = binary.BigEndian.Uint64(v); return nil }); err != nil {
					return err
				}
			case 'm':
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				db.meta[string(k[pl+1:])] = v
			case 'a':
				if len(k) != pl+1+4+2 {
					return fmt.Errorf("bad auto-increment key %x", k)
				}
				tid := binary.BigEndian.Uint32(k[pl+1:])
				col := int(binary.BigEndian.Uint16(k[pl+5:]))
				if int(tid) >= len(tables) {
					return fmt.Errorf("auto-increment counter for unknown table %d", tid)
				}
				ts := tables[tid].schema
				j := slices.Index(ts.autoinc, col)
				if j < 0 {
					return fmt.Errorf("auto-increment counter for table %q column %d, which is not autoinc", ts.def.Name, col)
				}
				if err := item.Value(func(v []byte) error { tables[tid].autoinc[j] = binary.BigEndian.Uint64(v); return nil }); err != nil {
					return err
				}
			case 'r':
				if len(k) < pl+5 {
					return fmt.Errorf("bad row key %x", k)
				}
				tid := binary.BigEndian.Uint32(k[pl+1:])
				if int(tid) >= len(tables) {
					return fmt.Errorf("row of unknown table %d", tid)
				}
				st := tables[tid]
				ts := st.schema
				rk := k[pl+5:]
				vl := int(item.ValueSize())
				buf := make([]byte, vl+len(rk))
				if err := item.Value(func(v []byte) error { copy(buf, v); return nil }); err != nil {
					return err
				}
				copy(buf[vl:], rk)
				rec := &rowRec{b: buf, n: vl}
				if err := abi.ValidateRow(ts.types, rec.row()); err != nil {
					return fmt.Errorf("stored row of table %q: %w", ts.def.Name, err)
				}
				st.rows.Load(rec)
				if ts.pk < 0 && len(rk) == 8 {
					if id := binary.BigEndian.Uint64(rk); id >= st.nextRowID {
						st.nextRowID = id + 1
					}
				}
				for i, ix := range ts.indexes {
					if ix.primary {
						continue
					}
					ik := ix.indexKey(nil, rec.row())
					if !ix.unique {
						ik = append(ik, rec.key()...)
					}
					pending[tid][i] = append(pending[tid][i], ixEntry{key: ik, rec: rec})
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for tid, per := range pending {
		for i, es := range per {
			if len(es) == 0 {
				continue
			}
			slices.SortFunc(es, func(a, b ixEntry) int { return bytes.Compare(a.key, b.key) })
			t := tables[tid].idx[i]
			for _, e := range es {
				p := new(ixEntry)
				*p = e
				t.Load(p)
			}
			if t.Len() != len(es) {
				return fmt.Errorf("table %q index %q: stored rows have duplicate keys", tables[tid].schema.def.Name, tables[tid].schema.indexes[i].name)
			}
			per[i] = nil
		}
	}
	_ = sch
	db.durable.Store(db.latest)
	return nil
}
