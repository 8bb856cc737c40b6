package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCommitStopsWaitingWhenContextEnds: with the disk stalled, a commit
// whose context ends returns ErrCommitUnconfirmed (and the context's error)
// without undoing anything; once the disk moves, the transaction is durable
// and later commits work as usual.
func TestCommitStopsWaitingWhenContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		// write says whether the transaction writes (a read-only one waits
		// for what it read to be durable instead).
		write bool
	}{{"write", true}, {"read-only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			bg := context.Background()
			bd := &blockingDurability{}
			s := openStore(t, t.TempDir(), WithDurabilityWrapper(func(d Durability) Durability { bd.Durability = d; return bd }))
			defer s.Close()
			db := mustDB(t, s, "app", userTables())
			users, _ := db.TableID("User")
			gate := make(chan struct{})
			bd.mu.Lock()
			bd.gate = gate
			bd.mu.Unlock()

			// A first commit, stalled on the disk.
			first := make(chan error, 1)
			go func() {
				tx, _ := db.Begin(bg)
				tx.Insert(users, userRow(t, 1, "ann", 1, nil))
				_, err := tx.Commit(bg)
				first <- err
			}()
			tx, err := db.Begin(bg)
			if err != nil {
				t.Fatal(err)
			}
			for n, _ := tx.Count(users); n == 0; n, _ = tx.Count(users) {
				tx.Rollback()
				time.Sleep(time.Millisecond)
				tx, _ = db.Begin(bg)
			}
			if tc.write {
				if _, err := tx.Insert(users, userRow(t, 2, "bob", 2, nil)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
			defer cancel()
			res := make(chan error, 1)
			go func() {
				_, err := tx.Commit(ctx)
				res <- err
			}()
			select {
			case err = <-res:
			case <-time.After(5 * time.Second):
				close(gate)
				t.Fatal("Commit still waits for the disk 5s after its context ended")
			}
			if !errors.Is(err, ErrCommitUnconfirmed) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Commit with a context that ends: %v; want ErrCommitUnconfirmed and DeadlineExceeded", err)
			}
			// Not undone: the next transaction sees the row.
			next, _ := db.Begin(bg)
			if n, _ := next.Count(users); tc.write && n != 2 || !tc.write && n != 1 {
				t.Fatalf("the next transaction sees %d rows", n)
			}
			next.Rollback()

			close(gate)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			// Everything queued becomes durable, and commits go on.
			tx, _ = db.Begin(bg)
			tx.Insert(users, userRow(t, 3, "cy", 3, nil))
			c, err := tx.Commit(bg)
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(2)
			if tc.write {
				want = 3
			}
			if c.Offset != want || db.Snapshot().Offset() != want {
				t.Fatalf("offset %d, snapshot at %d; want %d", c.Offset, db.Snapshot().Offset(), want)
			}
		})
	}
}

// TestOnCommitAfterDropOrClose: there are no more commits, so nothing is
// registered and no notifier goroutine starts (it would never stop).
func TestOnCommitAfterDropOrClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*Store, *Database) error
	}{
		{"drop", func(s *Store, db *Database) error { return s.DropDatabase(context.Background(), db.Name()) }},
		{"close", func(s *Store, db *Database) error { return s.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			db := mustDB(t, s, "app", userTables())
			if err := tc.end(s, db); err != nil {
				t.Fatal(err)
			}
			cancel := db.OnCommit(func(Commit, *Snapshot) { t.Error("called after " + tc.name) })
			cancel()
			db.subsMu.Lock()
			defer db.subsMu.Unlock()
			if db.notif != nil || len(db.subs) != 0 {
				t.Fatalf("after %s, OnCommit started a notifier (%v) or registered (%d)", tc.name, db.notif != nil, len(db.subs))
			}
		})
	}
}
