package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestCommitFunc: CommitFunc returns once the transaction is ordered (or,
// finding the committer idle, once it has written it itself), and
// its function hears the outcome exactly once, only after the transaction
// (or, read-only, what it read) is durable, or the durability failure.
func TestCommitFunc(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pending: a first transaction is stalled on the disk when the one
		// under test commits.
		pending, write bool
		fail           error // the disk's answer once the gate opens
		wantErr        error
	}{
		{name: "write, disk idle", write: true},
		{name: "write behind a stalled one", pending: true, write: true},
		{name: "read-only, nothing pending"},
		{name: "read-only behind a stalled write", pending: true},
		{name: "write, the disk fails", pending: true, write: true, fail: errors.New("disk on fire"), wantErr: ErrDatabaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bg := context.Background()
			bd := &blockingDurability{}
			s := openStore(t, t.TempDir(), WithDurabilityWrapper(func(d Durability) Durability { bd.Durability = d; return bd }))
			defer s.Close()
			db := mustDB(t, s, "app", userTables())
			users, _ := db.TableID("User")
			gate := make(chan struct{})
			opened := false
			open := func() {
				if !opened {
					opened = true
					close(gate)
				}
			}
			defer open()
			first := make(chan error, 1)
			if tc.pending {
				bd.mu.Lock()
				bd.gate, bd.fail = gate, tc.fail
				n0 := bd.commits
				bd.mu.Unlock()
				// The committer is idle, so this commit is written on its
				// caller's goroutine, which the gate holds.
				go func() {
					tx, _ := db.Begin(bg)
					tx.Insert(users, userRow(t, 1, "ann", 1, nil))
					if err := tx.CommitFunc(func(_ Commit, err error) { first <- err }); err != nil {
						first <- err
					}
				}()
				for {
					bd.mu.Lock()
					n := bd.commits
					bd.mu.Unlock()
					if n > n0 {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			tx, err := db.Begin(bg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.write {
				if _, err := tx.Insert(users, userRow(t, 2, "bob", 2, nil)); err != nil {
					t.Fatal(err)
				}
			}
			type outcome struct {
				c          Commit
				err        error
				durableOff uint64
			}
			got := make(chan outcome, 2)
			if err := tx.CommitFunc(func(c Commit, err error) {
				got <- outcome{c, err, db.Snapshot().Offset()}
			}); err != nil {
				t.Fatalf("CommitFunc: %v", err)
			}
			if tc.pending {
				select {
				case o := <-got:
					t.Fatalf("called before the disk moved: %+v", o)
				case <-time.After(20 * time.Millisecond):
				}
				open()
				if err := <-first; !errors.Is(err, tc.wantErr) {
					t.Fatalf("the stalled transaction: %v, want %v", err, tc.wantErr)
				}
			}
			o := <-got
			if !errors.Is(o.err, tc.wantErr) {
				t.Fatalf("outcome %v, want %v", o.err, tc.wantErr)
			}
			if tc.wantErr == nil && o.durableOff < o.c.Offset {
				t.Fatalf("called with offset %d while the durable snapshot is at %d", o.c.Offset, o.durableOff)
			}
			select {
			case o := <-got:
				t.Fatalf("called twice: %+v", o)
			case <-time.After(10 * time.Millisecond):
			}
			if tx.CommitFunc(func(Commit, error) {}) == nil {
				t.Fatal("a second CommitFunc on the same transaction succeeded")
			}
		})
	}
}

// TestCommitFuncOrder: from concurrent writers, the functions are called in
// offset order, each once.
func TestCommitFuncOrder(t *testing.T) {
	bg := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	const writers, each = 4, 50
	var mu sync.Mutex
	var offsets []uint64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				tx, err := db.Begin(bg)
				if err != nil {
					t.Error(err)
					return
				}
				id := uint64(w*each + i + 1)
				if _, err := tx.Insert(users, userRow(t, id, fmt.Sprint("u", id), 1, nil)); err != nil {
					t.Error(err)
					tx.Rollback()
					return
				}
				wg.Add(1)
				if err := tx.CommitFunc(func(c Commit, err error) {
					defer wg.Done()
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					offsets = append(offsets, c.Offset)
					mu.Unlock()
				}); err != nil {
					wg.Done()
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if len(offsets) != writers*each {
		t.Fatalf("%d calls, want %d", len(offsets), writers*each)
	}
	for i := 1; i < len(offsets); i++ {
		if offsets[i] <= offsets[i-1] {
			t.Fatalf("offsets out of order at %d: %v", i, offsets[max(0, i-3):i+1])
		}
	}
}
