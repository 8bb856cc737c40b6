package store

import (
	"sync"
)

// Snapshot is a consistent, read-only view of a database as of a durable
// committed transaction. It is safe for concurrent use.
type Snapshot struct{ v *version }

// Offset is the offset of the last transaction the snapshot includes (0 for
// an empty database).
func (s *Snapshot) Offset() uint64 { return s.v.offset }

// Scan iterates over every row of table t.
func (s *Snapshot) Scan(t TableID) (*RowIter, error) {
	if _, err := s.v.schema.table(t); err != nil {
		return nil, err
	}
	return &RowIter{it: s.v.tables[t].iter(nil, false)}, nil
}

// ScanPoint iterates over the rows whose key in index ix starts with key.
func (s *Snapshot) ScanPoint(ix IndexID, key []byte) (*RowIter, error) {
	is, err := s.v.schema.index(ix)
	if err != nil {
		return nil, err
	}
	p, full, err := is.encodeSearchKey(key)
	if err != nil {
		return nil, err
	}
	return scanPoint(s.v.tables[is.table.id], is, p, false, full, nil), nil
}

// ScanRange iterates over the rows of index ix between lo and hi.
func (s *Snapshot) ScanRange(ix IndexID, lo, hi Bound) (*RowIter, error) {
	is, err := s.v.schema.index(ix)
	if err != nil {
		return nil, err
	}
	return scanRange(s.v.tables[is.table.id], is, false, lo, hi)
}

// Count returns the number of rows in table t.
func (s *Snapshot) Count(t TableID) (uint64, error) {
	if _, err := s.v.schema.table(t); err != nil {
		return 0, err
	}
	return uint64(s.v.tables[t].rows.Len()), nil
}

// OnCommit registers fn to be called with every transaction that becomes
// durable from now on, with the snapshot just after it. Calls come from one
// goroutine per database, in offset order; a slow fn delays the next calls
// (not the writer, not durability). cancel unregisters fn. On a database
// that was dropped, or whose store was closed, there will be no more
// commits: fn is not registered and cancel does nothing.
func (db *Database) OnCommit(fn func(c Commit, after *Snapshot)) (cancel func()) {
	db.subsMu.Lock()
	defer db.subsMu.Unlock()
	if db.notifStopped || db.s.closed.Load() {
		return func() {}
	}
	if db.notif == nil {
		db.notif = newNotifier(db)
	}
	id := db.nextSub
	db.nextSub++
	db.subs[id] = fn
	db.nsubs.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			db.subsMu.Lock()
			delete(db.subs, id)
			db.subsMu.Unlock()
			db.nsubs.Add(-1)
		})
	}
}

type notice struct {
	c Commit
	v *version
}

// notifier delivers commits to subscribers on its own goroutine, so that a
// subscriber never stalls the committer.
type notifier struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []notice
	closed bool
	done   chan struct{}
}

func newNotifier(db *Database) *notifier {
	n := &notifier{done: make(chan struct{})}
	n.cond = sync.NewCond(&n.mu)
	go n.run(db)
	return n
}

func (n *notifier) run(db *Database) {
	defer close(n.done)
	var batch []notice
	var fns []func(Commit, *Snapshot)
	for {
		n.mu.Lock()
		for len(n.q) == 0 && !n.closed {
			n.cond.Wait()
		}
		if len(n.q) == 0 {
			n.mu.Unlock()
			return
		}
		batch, n.q = n.q, batch[:0]
		n.mu.Unlock()
		for _, x := range batch {
			db.subsMu.Lock()
			fns = fns[:0]
			for _, f := range db.subs {
				fns = append(fns, f)
			}
			db.subsMu.Unlock()
			snap := &Snapshot{v: x.v}
			for _, f := range fns {
				f(x.c, snap)
			}
		}
		clear(batch)
	}
}

// notify is called by the committer, in offset order.
func (db *Database) notify(c Commit, v *version) {
	if db.nsubs.Load() == 0 {
		return
	}
	db.subsMu.Lock()
	n := db.notif
	db.subsMu.Unlock()
	n.mu.Lock()
	if !n.closed {
		n.q = append(n.q, notice{c, v})
		if len(n.q) == 1 {
			n.cond.Signal()
		}
	}
	n.mu.Unlock()
}

// stopNotifier delivers what is queued and stops the notifier.
func (db *Database) stopNotifier() {
	db.subsMu.Lock()
	n := db.notif
	db.notifStopped = true // no notifier starts after this
	db.subsMu.Unlock()
	if n == nil {
		return
	}
	n.mu.Lock()
	n.closed = true
	n.cond.Broadcast()
	n.mu.Unlock()
	<-n.done
}
