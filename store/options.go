package store

import (
	"log/slog"
	"time"
)

// memTableSize is Badger's memtable size. It must never change for an
// existing directory: Badger then fails to open it ("Arena too small").
// Badger refuses a transaction over 15% of it, which bounds both a group
// commit and the largest single transaction (about 2.4 MB, 26k writes).
const memTableSize = 16 << 20

// Option configures Open.
type Option func(*config)

type config struct {
	logger       *slog.Logger
	maxGroupSize int
	gcInterval   time.Duration
	durability   func(Durability) Durability
}

func defaultOptions() config {
	return config{logger: slog.Default(), maxGroupSize: 1024, gcInterval: 10 * time.Minute}
}

// WithLogger sets the logger (Badger's own messages are logged at warn and
// above).
func WithLogger(l *slog.Logger) Option {
	return func(o *config) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMaxGroupSize bounds how many transactions one durable commit gathers
// (default 1024). 1 disables group commit: one synced write per transaction.
func WithMaxGroupSize(n int) Option {
	return func(o *config) {
		if n >= 1 {
			o.maxGroupSize = n
		}
	}
}

// WithValueLogGCInterval sets how often the value log is garbage collected
// (default 10 minutes; 0 disables).
func WithValueLogGCInterval(d time.Duration) Option {
	return func(o *config) { o.gcInterval = d }
}

// WithDurabilityWrapper wraps the durability layer, for tests that inject
// failures or measure commits.
func WithDurabilityWrapper(f func(Durability) Durability) Option {
	return func(o *config) { o.durability = f }
}
