package store

import (
	"fmt"
	"sync"
)

// request is one unit of work for the committer: a committed transaction,
// a barrier (no writes: wait until everything before it is durable), a
// metadata or catalog write, or a prefix drop.
type request struct {
	db        *Database // nil for catalog work
	writes    []Write
	bytes     int
	v         *version // published as the durable snapshot once written
	commit    Commit
	hasCommit bool
	drop      []byte // run DropPrefix, alone
	after     func() // run by the committer once durable
	// then, when set, is given the outcome instead of done, and the
	// request is recycled after it (Tx.CommitFunc).
	then func(Commit, error)
	done chan error
}

// newRequest returns a request for db (nil: catalog work) from the store's
// pool, with its done channel; putRequest returns it once its done value
// has been received (the committer no longer touches a request after
// sending it).
func (s *Store) newRequest(db *Database) *request {
	r, _ := s.reqs.Get().(*request)
	if r == nil {
		r = &request{done: make(chan error, 1)}
	}
	r.db = db
	return r
}

func (s *Store) putRequest(r *request) {
	done := r.done
	*r = request{done: done}
	s.reqs.Put(r)
}

// Limits for one Badger transaction: Badger refuses more than 15% of the
// memtable size in bytes, or that divided by 96 in entries. A group stays
// at half of that, so per-entry overhead we do not count cannot push it over.
const (
	txnMaxBytes   = memTableSize * 15 / 100
	txnMaxEntries = txnMaxBytes / 96
	groupBytes    = txnMaxBytes / 2
	groupEntries  = txnMaxEntries / 2
	entryOverhead = 24
)

// maxKeySize is the longest key the store hands to Badger. Badger refuses
// keys over 65,000 bytes inside the group's transaction, which would fail
// every transaction of the group and stop the store; checking each
// transaction's keys before it is queued keeps one oversized primary key
// (or metadata name) from taking the other databases down with it.
const maxKeySize = 64 << 10 * 15 / 16 // 61,440 bytes, under Badger's 65,000

// checkKeys refuses a transaction with a key Badger would refuse.
func checkKeys(writes []Write) error {
	for _, w := range writes {
		if len(w.Key) > maxKeySize {
			return fmt.Errorf("a key of %d bytes; the limit is %d bytes (a primary key or unique value that long cannot be stored): %w", len(w.Key), maxKeySize, errTooBig)
		}
	}
	return nil
}

// fitsOneTxn reports whether a single transaction fits in one group.
func (s *Store) fitsOneTxn(entries, nbytes int) error {
	if entries > groupEntries || nbytes+entries*entryOverhead > groupBytes {
		return fmt.Errorf("%d writes, %d bytes; the limit is %d writes and %d bytes: %w", entries, nbytes, groupEntries, groupBytes, errTooBig)
	}
	return nil
}

// committer orders durable writes. Requests queue for its goroutine,
// except that a transaction finding it idle (nothing queued, nothing being
// written) writes itself, on its own goroutine: handing a one-row commit to
// the committer and waiting for the answer cost two goroutine wake-ups
// through the OS (futex), a fifth of a one-row reducer call's CPU when the
// disk is fast. active marks the one writer at a time, either of them, so
// writes stay serial and in queue order.
type committer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*request
	active  bool // a group is being written (by the goroutine or inline)
	closing bool
	done    chan struct{}
}

// enqueue hands req to the committer. The caller holds the writer slot when
// the request carries a transaction, so requests of one database arrive in
// offset order.
func (s *Store) enqueue(req *request) error {
	if err := s.failure(); err != nil {
		return err
	}
	c := &s.com
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.queue = append(c.queue, req)
	if len(c.queue) == 1 {
		c.cond.Signal()
	}
	c.mu.Unlock()
	return nil
}

// enqueueOrClaim is enqueue, except that when the committer is idle it
// queues nothing and returns claimed: the caller then writes req itself with
// commitInline, after releasing its writer slot. Requests queued meanwhile
// wait for it.
func (s *Store) enqueueOrClaim(req *request) (claimed bool, err error) {
	if err := s.failure(); err != nil {
		return false, err
	}
	c := &s.com
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false, ErrClosed
	}
	if !c.active && len(c.queue) == 0 {
		c.active = true
		return true, nil
	}
	c.queue = append(c.queue, req)
	if len(c.queue) == 1 {
		c.cond.Signal()
	}
	return false, nil
}

// commitInline writes a request claimed by enqueueOrClaim on the caller's
// goroutine, answers it on its done channel, and hands whatever queued
// meanwhile to the committer goroutine.
func (s *Store) commitInline(req *request) {
	group := [1]*request{req}
	s.writeGroup(group[:], len(req.writes), nil)
	c := &s.com
	c.mu.Lock()
	c.active = false
	if len(c.queue) > 0 || c.closing {
		c.cond.Signal()
	}
	c.mu.Unlock()
}

func (s *Store) failure() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *Store) runCommitter() {
	c := &s.com
	defer close(c.done)
	var group []*request
	var writes []Write
	wrote := false
	for {
		c.mu.Lock()
		if wrote {
			c.active, wrote = false, false
		}
		for c.active || len(c.queue) == 0 && !c.closing {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return
		}
		group = group[:0]
		n, nb, ne := 0, 0, 0
		for _, r := range c.queue {
			if r.drop != nil {
				if n == 0 {
					group = append(group, r)
					n = 1
				}
				break
			}
			rb := r.bytes + len(r.writes)*entryOverhead
			if n > 0 && (n >= s.opts.maxGroupSize || nb+rb > groupBytes || ne+len(r.writes) > groupEntries) {
				break
			}
			group = append(group, r)
			n++
			nb += rb
			ne += len(r.writes)
		}
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		c.active, wrote = true, true
		c.mu.Unlock()
		writes = s.writeGroup(group, ne, writes)
	}
}

// writeGroup writes a group of requests (ne writes in all) in one durable
// commit, or runs its prefix drop, then publishes and answers each request.
// buf is reused to gather the writes of several requests; it is returned
// for the next group.
func (s *Store) writeGroup(group []*request, ne int, buf []Write) []Write {
	err := s.failure()
	if err == nil {
		if len(group) == 1 && group[0].drop != nil {
			if e := s.dur.DropPrefix(group[0].drop); e != nil {
				err = fmt.Errorf("drop prefix: %w", e)
			}
		} else if ne > 0 {
			writes := group[0].writes
			if len(group) > 1 {
				buf = buf[:0]
				for _, r := range group {
					buf = append(buf, r.writes...)
				}
				writes = buf
			}
			if e := s.dur.Commit(writes); e != nil {
				err = fmt.Errorf("%w: %w", ErrDatabaseFailed, e)
				s.log.Error("durable commit failed; the store refuses all further writes", "err", e, "transactions", len(group))
				// A variable of its own: taking err's address would move
				// err to the heap on every commit, failed or not.
				failed := err
				s.failed.CompareAndSwap(nil, &failed)
			}
			clear(buf)
		}
	}
	for i, r := range group {
		if err == nil {
			if r.v != nil {
				r.db.durable.Store(r.v)
			}
			if r.hasCommit {
				r.db.notify(r.commit, r.v)
			}
			if r.after != nil {
				r.after()
			}
		}
		group[i] = nil
		if then := r.then; then != nil {
			c := r.commit
			s.putRequest(r)
			if err != nil {
				c = Commit{}
			}
			then(c, err)
			continue
		}
		r.done <- err
	}
	return buf
}
