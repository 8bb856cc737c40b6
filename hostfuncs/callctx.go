package hostfuncs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callContext is the context a guest call runs under when the runtime asks
// for [Call.Context]: the parent context, a wall-clock deadline, and the Call
// the host functions look up. It lives inside the Call and is reused from
// call to call, so starting a call allocates nothing: context.WithTimeout
// costs a timer, a lock and a few allocations per call (about 5% of a
// one-row reducer call), and context.WithValue one more.
//
// The deadline is checked where it is read: Err compares the monotonic
// clock with it, so the host functions that check it (stopIfDone) see it
// pass at once without a timer. Done is made on demand: the first caller
// that needs to block on the deadline gets a real context.WithDeadline,
// which End cancels. Nothing outside the call may keep the context (it is
// reused by the next call): code the host does not control gets a context
// of its own (jwt_verify).
type callContext struct {
	parent   context.Context
	call     *Call
	start    time.Time // with its monotonic reading
	timeout  time.Duration
	deadline time.Time

	mu   sync.Mutex
	real atomic.Pointer[realCtx] // made by Done, cancelled by End
}

type realCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// Context returns the context to call the guest with: parent, with the
// Call attached (as [WithCall] would) and a deadline timeout from now.
// Unlike context.WithTimeout it allocates nothing and starts no timer;
// its Done channel exists only if someone asks for it. The context is
// valid until [Call.End] and must not be kept past it.
func (c *Call) Context(parent context.Context, timeout time.Duration) context.Context {
	x := &c.ctx
	x.parent, x.call, x.timeout = parent, c, timeout
	x.start = time.Now()
	x.deadline = x.start.Add(timeout)
	return x
}

// endContext releases what the call's context made (a Done channel's
// timer) and lets go of the parent.
func (x *callContext) end() {
	if r := x.real.Load(); r != nil {
		r.cancel()
		x.real.Store(nil)
	}
	x.parent = nil
}

func (x *callContext) Deadline() (time.Time, bool) {
	if d, ok := x.parent.Deadline(); ok && d.Before(x.deadline) {
		return d, true
	}
	return x.deadline, true
}

func (x *callContext) Done() <-chan struct{} {
	if r := x.real.Load(); r != nil {
		return r.ctx.Done()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.real.Load()
	if r == nil {
		ctx, cancel := context.WithDeadline(x.parent, x.deadline)
		r = &realCtx{ctx, cancel}
		x.real.Store(r)
	}
	return r.ctx.Done()
}

// Err is the parent's error, else context.DeadlineExceeded once the
// deadline has passed (by the monotonic clock, as context.WithTimeout
// measures it).
func (x *callContext) Err() error {
	if r := x.real.Load(); r != nil {
		return r.ctx.Err()
	}
	if err := x.parent.Err(); err != nil {
		return err
	}
	if time.Since(x.start) >= x.timeout {
		return context.DeadlineExceeded
	}
	return nil
}

func (x *callContext) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return x.call
	}
	return x.parent.Value(key)
}

// withDeadline returns a context of its own, with the call's deadline, for
// code that may keep it or block on it (a token verifier fetching keys),
// and its cancel function.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if x, ok := ctx.(*callContext); ok {
		return context.WithDeadline(x.parent, x.deadline)
	}
	return context.WithCancel(ctx)
}
