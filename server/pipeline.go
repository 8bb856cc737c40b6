package server

import "sync"

// maxPipelined bounds the calls one connection has in flight (ordered, not
// yet durable). Beyond it the reader stops reading, so a client that sends
// faster than the database commits is held back by TCP rather than by
// memory on the server.
const maxPipelined = 16

// answers keeps a connection's reducer answers in request order while its
// calls are in flight: a call's transaction is ordered on the reader's
// goroutine, which then reads the next message; the answer is filled in
// once the transaction is durable (from the store's committer), or at once
// when the call failed, and goes to the writer when every answer before it
// has. One write then often carries several answers, and one read several
// requests.
type answers struct {
	mu   sync.Mutex
	cond sync.Cond
	ring [maxPipelined]answer
	head int // the oldest answer
	n    int // answers reserved and not yet queued for the writer
	// waiting says the reader waits in reserve or drain.
	waiting bool
}

type answer struct {
	data  []byte
	ready bool
}

// reserve takes the next answer's place, waiting while maxPipelined are in
// flight. Only the reader calls it.
func (a *answers) reserve() int {
	a.mu.Lock()
	for a.n == len(a.ring) {
		a.wait()
	}
	i := (a.head + a.n) % len(a.ring)
	a.n++
	a.mu.Unlock()
	return i
}

// drain waits until every answer reserved has gone to the writer, so that
// what the reader sends next comes after them. Only the reader calls it.
func (a *answers) drain() {
	a.mu.Lock()
	for a.n > 0 {
		a.wait()
	}
	a.mu.Unlock()
}

// wait waits for fill to queue an answer. a.mu is held.
func (a *answers) wait() {
	if a.cond.L == nil {
		a.cond.L = &a.mu
	}
	a.waiting = true
	a.cond.Wait()
}

// fill sets answer i and hands every answer that is now first in line to
// send, in order, under the lock (send must not block; enqueue does not).
func (a *answers) fill(i int, data []byte, send func([]byte)) {
	a.mu.Lock()
	a.ring[i] = answer{data: data, ready: true}
	sent := false
	for a.n > 0 && a.ring[a.head].ready {
		send(a.ring[a.head].data)
		a.ring[a.head] = answer{}
		a.head = (a.head + 1) % len(a.ring)
		a.n--
		sent = true
	}
	if sent && a.waiting {
		a.waiting = false
		a.cond.Broadcast()
	}
	a.mu.Unlock()
}
