package store

import (
	"context"
	"testing"
	"time"
)

// TestInlineCommitThenQueued: a commit that finds the committer idle writes
// on its own goroutine; commits made while it writes queue behind it and go
// to the committer together, in offset order; Close waits for all of them.
func TestInlineCommitThenQueued(t *testing.T) {
	bg := context.Background()
	dir := t.TempDir()
	bd := &blockingDurability{}
	s := openStore(t, dir, WithDurabilityWrapper(func(d Durability) Durability { bd.Durability = d; return bd }))
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	gate := make(chan struct{})
	bd.mu.Lock()
	bd.gate, bd.commits = gate, 0
	bd.mu.Unlock()

	offsets := make(chan uint64, 3)
	commit := func(id uint64, name string) {
		tx, err := db.Begin(bg)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := tx.Insert(users, userRow(t, id, name, 1, nil)); err != nil {
			t.Error(err)
			return
		}
		c, err := tx.Commit(bg)
		if err != nil {
			t.Error(err)
			return
		}
		offsets <- c.Offset
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				close(gate)
				t.Fatalf("5s without %s", what)
			}
		}
	}
	go commit(1, "ann") // claims the idle committer, stalls in the disk
	waitFor("the first commit reaching the disk", func() bool {
		bd.mu.Lock()
		defer bd.mu.Unlock()
		return bd.commits == 1
	})
	go commit(2, "bob")
	go commit(3, "cy")
	waitFor("two commits queued", func() bool {
		s.com.mu.Lock()
		defer s.com.mu.Unlock()
		return len(s.com.queue) == 2 && s.com.active
	})
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a commit was still writing", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	got := map[uint64]bool{}
	for range 3 {
		select {
		case off := <-offsets:
			got[off] = true
		case <-time.After(5 * time.Second):
			t.Fatal("a commit did not return 5s after the disk moved")
		}
	}
	if !got[1] || !got[2] || !got[3] {
		t.Fatalf("offsets %v; want 1, 2 and 3", got)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	bd.mu.Lock()
	if bd.commits != 2 {
		t.Errorf("%d durable commits; want 2 (the inline one, then the two queued as one group)", bd.commits)
	}
	bd.mu.Unlock()

	s2 := openStore(t, dir)
	defer s2.Close()
	db2, err := s2.Database("app")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db2.Snapshot().Count(users); n != 3 || db2.Snapshot().Offset() != 3 {
		t.Fatalf("after reopening: %d rows at offset %d; want 3 at 3", n, db2.Snapshot().Offset())
	}
}
