package subscription

import (
	"sync"
	"sync/atomic"
)

// outbox is one connection's queue in front of its send function. The
// engine appends to it under its lock (never blocking); the connection's own
// goroutine calls send, so a slow client holds up nobody else.
type outbox struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []item
	paused int
	// inflight: an item was taken and is being delivered.
	inflight bool
	closed   bool
	dead     bool
	// gone mirrors closed || dead for the fan-out, which skips such
	// connections without taking mu.
	gone   atomic.Bool
	max    int
	send   func(*TransactionUpdate) bool
	onDead func(overflow bool)
}

type item struct {
	tu       *TransactionUpdate
	applied  *SubscribeApplied
	hook     func(*SubscribeApplied)
	revoked  *Revoked
	onRevoke func(Revoked)
}

func newOutbox(send func(*TransactionUpdate) bool, max int, onDead func(bool)) *outbox {
	b := &outbox{send: send, max: max, onDead: onDead}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// push queues an item; it reports false when the connection is no longer
// delivered to.
func (b *outbox) push(it item) bool {
	b.mu.Lock()
	if b.closed || b.dead {
		b.mu.Unlock()
		return false
	}
	if b.max > 0 && len(b.items) >= b.max {
		b.dead = true
		b.gone.Store(true)
		b.items = nil
		b.cond.Signal()
		b.mu.Unlock()
		go b.onDead(true)
		return false
	}
	b.items = append(b.items, it)
	b.cond.Signal()
	b.mu.Unlock()
	return true
}

func (b *outbox) pause() {
	b.mu.Lock()
	b.paused++
	b.mu.Unlock()
}

func (b *outbox) resume() {
	b.mu.Lock()
	b.paused--
	b.cond.Signal()
	b.mu.Unlock()
}

func (b *outbox) close() {
	b.mu.Lock()
	b.closed = true
	b.gone.Store(true)
	b.items = nil
	b.cond.Signal()
	b.mu.Unlock()
}

func (b *outbox) run() {
	for {
		b.mu.Lock()
		for !b.closed && !b.dead && (len(b.items) == 0 || b.paused > 0) {
			b.cond.Wait()
		}
		if b.closed || b.dead {
			b.mu.Unlock()
			return
		}
		it := b.items[0]
		b.items[0] = item{}
		b.items = b.items[1:]
		if len(b.items) == 0 {
			b.items = nil
		}
		b.inflight = true
		b.mu.Unlock()
		ok := true
		switch {
		case it.hook != nil:
			it.hook(it.applied)
		case it.onRevoke != nil:
			it.onRevoke(*it.revoked)
		default:
			ok = b.send(it.tu)
		}
		b.mu.Lock()
		b.inflight = false
		b.mu.Unlock()
		if !ok {
			b.mu.Lock()
			b.dead = true
			b.gone.Store(true)
			b.items = nil
			b.mu.Unlock()
			b.onDead(false)
			return
		}
	}
}

// idle reports whether nothing is queued or being sent.
func (b *outbox) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items) == 0 && !b.inflight
}
