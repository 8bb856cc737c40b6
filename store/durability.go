package store

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
)

// Write is one key change in a durable commit.
type Write struct {
	Key, Value []byte
	Delete     bool
}

// Durability is where the committer sends each group of transactions. The
// store uses Badger; a replicated log can take its place later. Commit must
// make every write durable atomically before it returns, or none of them.
type Durability interface {
	Commit(writes []Write) error
	// DropPrefix removes every key that starts with prefix. The committer
	// never calls it concurrently with Commit.
	DropPrefix(prefix []byte) error
}

// badgerDurability commits each group as one synced Badger transaction.
type badgerDurability struct{ db *badger.DB }

func (b badgerDurability) Commit(writes []Write) error {
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	for _, w := range writes {
		var err error
		if w.Delete {
			err = txn.Delete(w.Key)
		} else {
			err = txn.Set(w.Key, w.Value)
		}
		if err != nil {
			return fmt.Errorf("badger write: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("badger commit: %w", err)
	}
	return nil
}

func (b badgerDurability) DropPrefix(prefix []byte) error { return b.db.DropPrefix(prefix) }

// slogBadger adapts Badger's logger to slog; Badger's info and debug chatter
// is dropped (the store logs at warn and above for it).
type slogBadger struct{ l *slog.Logger }

func (s slogBadger) Errorf(f string, a ...any) {
	s.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (s slogBadger) Warningf(f string, a ...any) {
	s.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (s slogBadger) Infof(string, ...any)  {}
func (s slogBadger) Debugf(string, ...any) {}

var errTooBig = errors.New("exceeds the per-commit limit")
