package subscription

import (
	"sync"
	"sync/atomic"
)

// outbox is one connection's queue in front of its send function. The
// engine appends to it under its lock (never blocking). Then either the
// connection's own goroutine calls send (run), so a slow client holds up
// nobody else, or, when send never blocks (direct), whoever pushed flushes
// the queue outside the engine's lock.
type outbox struct {
	mu   sync.Mutex
	cond *sync.Cond
	// items[head:] are queued; the array is reused once they are all
	// taken (an allocation per update otherwise).
	items  []item
	head   int
	paused int
	// inflight: an item was taken and is being delivered.
	inflight bool
	// direct: no run goroutine; flush delivers, one flusher at a time
	// (flushing), so the items keep their order whoever flushes.
	direct   bool
	flushing bool
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

func newOutbox(send func(*TransactionUpdate) bool, max int, direct bool, onDead func(bool)) *outbox {
	b := &outbox{send: send, max: max, direct: direct, onDead: onDead}
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
	if b.max > 0 && len(b.items)-b.head >= b.max {
		b.dead = true
		b.gone.Store(true)
		b.items, b.head = nil, 0
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

// pushAndFlush queues an item that was not queued under the engine's lock
// with the commit fan-out's (a revoke, a recomputed view) and, in direct
// mode, has it delivered by a goroutine of its own: the caller holds the
// engine's lock, under which send must not run.
func (b *outbox) pushAndFlush(it item) bool {
	if !b.push(it) {
		return false
	}
	if b.direct {
		go b.flush()
	}
	return true
}

// flush delivers the queued items on the calling goroutine (direct mode),
// until the queue is empty or paused. If another goroutine is flushing, it
// delivers them instead: it re-reads the queue after each item.
func (b *outbox) flush() {
	b.mu.Lock()
	if b.flushing {
		b.mu.Unlock()
		return
	}
	b.flushing = true
	for !b.closed && !b.dead && len(b.items) > 0 && b.paused == 0 {
		it := b.pop()
		b.inflight = true
		b.mu.Unlock()
		ok := b.deliver(it)
		b.mu.Lock()
		b.inflight = false
		if !ok {
			b.dead = true
			b.gone.Store(true)
			b.items, b.head = nil, 0
			b.flushing = false
			b.mu.Unlock()
			b.onDead(false)
			return
		}
	}
	b.flushing = false
	b.mu.Unlock()
}

// pop takes the first item; b.mu is held and the queue is not empty.
func (b *outbox) pop() item {
	it := b.items[b.head]
	b.items[b.head] = item{}
	b.head++
	if b.head == len(b.items) {
		b.items, b.head = b.items[:0], 0
	}
	return it
}

// deliver hands one item to its receiver; false means the connection can no
// longer be delivered to.
func (b *outbox) deliver(it item) bool {
	switch {
	case it.hook != nil:
		it.hook(it.applied)
	case it.onRevoke != nil:
		it.onRevoke(*it.revoked)
	default:
		return b.send(it.tu)
	}
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
	if b.direct {
		b.flush()
	}
}

func (b *outbox) close() {
	b.mu.Lock()
	b.closed = true
	b.gone.Store(true)
	b.items, b.head = nil, 0
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
		it := b.pop()
		b.inflight = true
		b.mu.Unlock()
		ok := b.deliver(it)
		b.mu.Lock()
		b.inflight = false
		b.mu.Unlock()
		if !ok {
			b.mu.Lock()
			b.dead = true
			b.gone.Store(true)
			b.items, b.head = nil, 0
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
	return len(b.items) == 0 && !b.inflight && !b.flushing
}
