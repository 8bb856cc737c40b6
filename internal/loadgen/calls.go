package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// CallConfig is a closed-loop load of reducer calls: each connection keeps
// InFlight calls outstanding and sends the next as soon as one is answered.
type CallConfig struct {
	Target
	// Connections is the number of WebSockets.
	Connections int `json:"connections"`
	// InFlight is the number of calls outstanding per connection. The server
	// runs a connection's next call while the previous one becomes durable
	// (at most 16 in flight per connection; more wait in the socket), and
	// answers in request order.
	InFlight int `json:"in_flight"`
	// Reducer is the reducer to call.
	Reducer string `json:"reducer"`
	// Args is the JSON array of arguments; {conn} is replaced by the
	// connection's number and {seq} by the call's.
	Args string `json:"args"`
	// Warmup runs before the measurement and is not counted.
	Warmup time.Duration `json:"warmup_ns"`
	// Duration is how long to measure. Ignored when Calls is set.
	Duration time.Duration `json:"duration_ns"`
	// Calls, when positive, sends exactly this many calls in all (no
	// warmup) and measures them all.
	Calls int `json:"calls,omitempty"`
	// DialConcurrency bounds the handshakes in progress (default 32).
	DialConcurrency int `json:"-"`
}

// CallResult is what RunCalls measured.
type CallResult struct {
	Config CallConfig `json:"config"`
	// Committed and Failed count the answers in the measured window.
	Committed int64 `json:"committed"`
	Failed    int64 `json:"failed"`
	// FirstError is the first failed call's message.
	FirstError string `json:"first_error,omitempty"`
	// Elapsed is the measured window.
	Elapsed time.Duration `json:"elapsed_ns"`
	// PerSecond is Committed / Elapsed.
	PerSecond float64 `json:"calls_per_second"`
	// Latency runs from sending a CallReducer to reading its ReducerResult
	// (committed calls only: the answer comes once the commit is durable).
	Latency Latency `json:"latency"`
}

func (r *CallResult) String() string {
	s := fmt.Sprintf("%d connections x %d in flight, %s: %.0f calls/s (%d committed, %d failed in %.2fs); latency %s",
		r.Config.Connections, r.Config.InFlight, r.Config.Reducer, r.PerSecond, r.Committed, r.Failed, r.Elapsed.Seconds(), r.Latency)
	if r.FirstError != "" {
		s += "\n  first error: " + r.FirstError
	}
	return s
}

// callConn is one connection of a call load, run by one goroutine that
// reads the answers and sends the calls that replace them.
type callConn struct {
	ws      *websocket.Conn
	raw     *rawConn
	n       int
	sent    []int64 // send time (unix ns) by request_id & mask
	mask    uint32
	pending atomic.Int64
	samples []time.Duration
	id      uint32 // the last request_id sent
	buf     []byte
	err     error       // the connection's, read after it ends
	broken  atomic.Bool // it failed
}

// RunCalls opens the connections, runs the load and closes them.
func RunCalls(ctx context.Context, cfg CallConfig) (*CallResult, error) {
	if cfg.Connections < 1 || cfg.InFlight < 1 {
		return nil, fmt.Errorf("loadgen: need at least one connection and one call in flight (got %d and %d)", cfg.Connections, cfg.InFlight)
	}
	if cfg.Reducer == "" {
		return nil, errors.New("loadgen: no reducer to call")
	}
	if cfg.Args == "" {
		cfg.Args = "[]"
	}
	if cfg.Calls <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("loadgen: give a duration or a number of calls")
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 32
	}
	wss, err := dialAll(ctx, cfg.Target, cfg.Connections, cfg.DialConcurrency)
	if err != nil {
		return nil, err
	}
	defer closeAll(wss)

	ring := uint32(1)
	for ring < uint32(cfg.InFlight)*2 {
		ring <<= 1
	}
	conns := make([]*callConn, len(wss))
	for i, ws := range wss {
		// Nothing is buffered in ws: the server sends nothing after
		// InitialConnection until it is called.
		conns[i] = &callConn{ws: ws, raw: newRawConn(ws.NetConn()), n: i, sent: make([]int64, ring), mask: ring - 1}
	}

	var (
		windowStart, windowEnd atomic.Int64 // unix ns; answers in [start, end) count
		nCommitted, nFailed    atomic.Int64
		budget                 atomic.Int64 // calls left to send (Calls mode)
		stopped                atomic.Bool
		firstErr               struct {
			sync.Mutex
			s string
		}
	)
	windowEnd.Store(1<<63 - 1)
	if cfg.Calls > 0 {
		budget.Store(int64(cfg.Calls))
		windowStart.Store(time.Now().UnixNano())
	} else {
		windowStart.Store(time.Now().Add(cfg.Warmup).UnixNano())
	}

	// Each connection's goroutine reads every answer already received,
	// then sends as many new calls in one write: with several calls in
	// flight, one syscall each way serves several calls, on both sides.
	var answered atomic.Int64
	queue := func(c *callConn, now int64) {
		if stopped.Load() || (cfg.Calls > 0 && budget.Add(-1) < 0) {
			return
		}
		c.id++
		c.buf = callMessage(c.buf[:0], c.id, cfg.Reducer, cfg.Args, c.n, uint64(c.id))
		c.sent[c.id&c.mask] = now
		c.pending.Add(1)
		c.raw.queue(c.buf)
	}
	run := func(c *callConn) error {
		now := time.Now().UnixNano()
		for range cfg.InFlight {
			queue(c, now)
		}
		if err := c.raw.flush(); err != nil {
			return fmt.Errorf("sending: %w", err)
		}
		for {
			data, err := c.raw.next()
			if err != nil {
				if stopped.Load() {
					return nil
				}
				return err
			}
			if !isResult(data) {
				continue
			}
			now := time.Now().UnixNano()
			id, ok := uintAfter(data, keyRequestID)
			if !ok {
				return fmt.Errorf("a ReducerResult without request_id: %.200s", data)
			}
			sent := c.sent[uint32(id)&c.mask]
			if now >= windowStart.Load() && now < windowEnd.Load() {
				if committed(data) {
					nCommitted.Add(1)
					c.samples = append(c.samples, time.Duration(now-sent))
				} else if nFailed.Add(1) == 1 {
					firstErr.Lock()
					firstErr.s = resultError(data)
					firstErr.Unlock()
				}
			}
			c.pending.Add(-1)
			answered.Add(1)
			queue(c, now)
			if !c.raw.buffered() {
				if err := c.raw.flush(); err != nil {
					if stopped.Load() {
						return nil
					}
					return fmt.Errorf("sending: %w", err)
				}
			}
		}
	}
	var workers sync.WaitGroup
	for _, c := range conns {
		workers.Go(func() {
			if err := run(c); err != nil {
				c.err = fmt.Errorf("loadgen: connection %d: %w", c.n, err)
				c.broken.Store(true)
			}
		})
	}

	// Wait for the end of the window (or for every call of the budget to
	// be answered), then for the calls still outstanding.
	if cfg.Calls > 0 {
		deadline := time.Now().Add(60 * time.Second)
		for answered.Load() < int64(cfg.Calls) && !anyBroken(conns) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		windowEnd.Store(time.Now().UnixNano())
	} else {
		select {
		case <-time.After(time.Until(time.Unix(0, windowStart.Load()).Add(cfg.Duration))):
		case <-ctx.Done():
		}
		windowEnd.Store(time.Now().UnixNano())
	}
	stopped.Store(true)
	waitPending(conns, 10*time.Second)
	// The goroutines end when the connections close.
	closeAll(wss)
	workers.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &CallResult{Config: cfg, Committed: nCommitted.Load(), Failed: nFailed.Load(), FirstError: firstErr.s}
	res.Elapsed = time.Duration(windowEnd.Load() - windowStart.Load())
	if res.Elapsed > 0 {
		res.PerSecond = float64(res.Committed) / res.Elapsed.Seconds()
	}
	var all []time.Duration
	var errs []error
	for _, c := range conns {
		all = append(all, c.samples...)
		errs = append(errs, c.err)
	}
	res.Latency = summarize(all)
	return res, errors.Join(errs...)
}

func isResult(data []byte) bool { return bytes.HasPrefix(data, prefixResult) }

func anyBroken(conns []*callConn) bool {
	for _, c := range conns {
		if c.broken.Load() {
			return true
		}
	}
	return false
}

// waitPending waits until every connection's calls are answered, or d.
func waitPending(conns []*callConn, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, c := range conns {
		for c.pending.Load() > 0 && !c.broken.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
}
