package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// FanoutConfig measures how long a committed transaction takes to reach
// every subscriber. Subscribers connections each subscribe to Query; one more
// connection calls Reducer with (seq, sent_us) once per transaction, one
// transaction at a time, and waits until every subscriber has the update
// (or Timeout) before the next.
type FanoutConfig struct {
	Target
	// Subscribers is the number of subscribed connections.
	Subscribers int `json:"subscribers"`
	// Txs is the number of measured transactions; Warmup more run first.
	Txs    int `json:"txs"`
	Warmup int `json:"warmup_txs"`
	// Interval is the pause between one transaction's last delivery and the
	// next call.
	Interval time.Duration `json:"interval_ns"`
	// Reducer is called with [seq, sent_us]; it must insert a row with a
	// column "seq" into a table Query reads (the module in testdata has
	// post_tick and Tick).
	Reducer string `json:"reducer"`
	Query   string `json:"query"`
	// Timeout bounds the wait for one transaction's deliveries.
	Timeout time.Duration `json:"-"`
	// DialConcurrency bounds the handshakes in progress (default 32).
	DialConcurrency int `json:"-"`
}

// FanoutResult is what RunFanout measured. Times are taken in the load
// generator; the server's commit time is not visible to it, so two figures
// bracket "commit to update":
//   - ToAll runs from sending the call to the last subscriber's receipt: it
//     includes the reducer and the durable commit;
//   - ResultToAll runs from the caller's ReducerResult (sent by the server
//     once the commit is durable, like the updates) to the last receipt.
type FanoutResult struct {
	Config FanoutConfig `json:"config"`
	// ToAll: call sent → update received by every subscriber.
	ToAll Latency `json:"to_all"`
	// ResultToAll: the caller's ReducerResult received → update received by
	// every subscriber (negative values count as 0).
	ResultToAll Latency `json:"result_to_all"`
	// Delivery: call sent → update received, for each subscriber.
	Delivery Latency `json:"delivery"`
	// Call: call sent → ReducerResult received.
	Call Latency `json:"call"`
	// Incomplete counts transactions some subscriber did not get in time.
	Incomplete int `json:"incomplete"`
}

func (r *FanoutResult) String() string {
	s := fmt.Sprintf("%d subscribers, %d transactions:\n  call → all subscribers  %s\n  result → all            %s\n  call → each subscriber  %s\n  call → ReducerResult    %s",
		r.Config.Subscribers, r.Config.Txs, r.ToAll, r.ResultToAll, r.Delivery, r.Call)
	if r.Incomplete > 0 {
		s += fmt.Sprintf("\n  %d transactions did not reach every subscriber within %s", r.Incomplete, r.Config.Timeout)
	}
	return s
}

// txState follows one transaction.
type txState struct {
	sent      atomic.Int64 // unix ns
	remaining atomic.Int32
	last      atomic.Int64 // latest receipt, unix ns
	done      chan struct{}
}

var (
	keySeq             = []byte(`"seq":`)
	prefixApplied      = []byte(`{"SubscribeApplied"`)
	prefixSubscribeErr = []byte(`{"SubscriptionError"`)
)

// RunFanout connects, subscribes, runs the transactions and closes.
func RunFanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if cfg.Subscribers < 1 || cfg.Txs < 1 {
		return nil, fmt.Errorf("loadgen: need at least one subscriber and one transaction (got %d and %d)", cfg.Subscribers, cfg.Txs)
	}
	if cfg.Reducer == "" {
		cfg.Reducer = "post_tick"
	}
	if cfg.Query == "" {
		cfg.Query = "SELECT * FROM Tick"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 32
	}
	total := cfg.Warmup + cfg.Txs
	txs := make([]txState, total)
	for i := range txs {
		txs[i].remaining.Store(int32(cfg.Subscribers))
		txs[i].done = make(chan struct{})
	}

	subs, err := dialAll(ctx, cfg.Target, cfg.Subscribers, cfg.DialConcurrency)
	if err != nil {
		return nil, err
	}
	defer closeAll(subs)
	caller, err := dial(ctx, cfg.Target)
	if err != nil {
		return nil, err
	}
	defer closeAll([]*websocket.Conn{caller})
	var stopping atomic.Bool
	defer stopping.Store(true) // runs before the closes: their errors are expected

	// Subscribe everyone, and wait for every SubscribeApplied before the
	// first transaction.
	sub := fmt.Appendf(nil, `{"Subscribe":{"request_id":1,"query_set_id":1,"queries":[%s]}}`, strconv.Quote(cfg.Query))
	applied := make(chan error, len(subs))
	samples := make([][]time.Duration, len(subs))
	readErrs := make([]error, len(subs))
	var readers sync.WaitGroup
	for i, ws := range subs {
		readers.Go(func() {
			first := true
			r := reader{ws: ws}
			for {
				data, err := r.next()
				if err != nil {
					if !stopping.Load() {
						readErrs[i] = fmt.Errorf("loadgen: subscriber %d: %w", i, err)
					}
					if first {
						applied <- readErrs[i]
					}
					return
				}
				now := time.Now().UnixNano()
				switch {
				case bytes.HasPrefix(data, prefixUpdate):
					// One transaction per message; scan every row anyway.
					for rest := data; ; {
						j := bytes.Index(rest, keySeq)
						if j < 0 {
							break
						}
						rest = rest[j+len(keySeq):]
						seq, ok := parseUint(rest)
						if !ok || seq >= uint64(total) {
							continue
						}
						t := &txs[seq]
						if int(seq) >= cfg.Warmup {
							samples[i] = append(samples[i], time.Duration(now-t.sent.Load()))
						}
						for {
							l := t.last.Load()
							if now <= l || t.last.CompareAndSwap(l, now) {
								break
							}
						}
						if t.remaining.Add(-1) == 0 {
							close(t.done)
						}
					}
				case first && bytes.HasPrefix(data, prefixApplied):
					first = false
					applied <- nil
				case first && bytes.HasPrefix(data, prefixSubscribeErr):
					first = false
					applied <- fmt.Errorf("%w: subscribing %q: %.300s", ErrServer, cfg.Query, data)
				}
			}
		})
	}
	for _, ws := range subs {
		if err := ws.WriteMessage(websocket.TextMessage, sub); err != nil {
			return nil, fmt.Errorf("loadgen: subscribing: %w", err)
		}
	}
	var subErrs []error
	for range subs {
		select {
		case err := <-applied:
			subErrs = append(subErrs, err)
		case <-time.After(60 * time.Second):
			subErrs = append(subErrs, errors.New("loadgen: a subscription was not applied within 60s"))
		}
		if len(subErrs) > 0 && subErrs[len(subErrs)-1] != nil {
			break
		}
	}
	if err := errors.Join(subErrs...); err != nil {
		return nil, err
	}

	// The caller's results, in order: one call at a time.
	type answer struct {
		at  int64
		err error
	}
	answers := make(chan answer, 4)
	readers.Go(func() {
		r := reader{ws: caller}
		for {
			data, err := r.next()
			if err != nil {
				if !stopping.Load() {
					answers <- answer{err: fmt.Errorf("loadgen: caller: %w", err)}
				}
				return
			}
			if isResult(data) {
				a := answer{at: time.Now().UnixNano()}
				if !committed(data) {
					a.err = fmt.Errorf("%w: %s failed: %s", ErrServer, cfg.Reducer, resultError(data))
				}
				answers <- a
			}
		}
	})

	res := &FanoutResult{Config: cfg}
	var toAll, resultToAll, call []time.Duration
	var buf []byte
	for seq := range total {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := &txs[seq]
		sent := time.Now()
		t.sent.Store(sent.UnixNano())
		args := fmt.Sprintf("[%d, %d]", seq, sent.UnixMicro())
		buf = callMessage(buf[:0], uint32(seq+1), cfg.Reducer, args, 0, uint64(seq))
		if err := caller.WriteMessage(websocket.TextMessage, buf); err != nil {
			return nil, fmt.Errorf("loadgen: caller: sending: %w", err)
		}
		var a answer
		select {
		case a = <-answers:
		case <-time.After(cfg.Timeout):
			a.err = fmt.Errorf("loadgen: no ReducerResult within %s", cfg.Timeout)
		}
		if a.err != nil {
			return nil, a.err
		}
		timer := time.NewTimer(cfg.Timeout)
		select {
		case <-t.done:
			timer.Stop()
			if seq >= cfg.Warmup {
				last := t.last.Load()
				toAll = append(toAll, time.Duration(last-sent.UnixNano()))
				resultToAll = append(resultToAll, time.Duration(max(0, last-a.at)))
				call = append(call, time.Duration(a.at-sent.UnixNano()))
			}
		case <-timer.C:
			res.Incomplete++
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if cfg.Interval > 0 {
			time.Sleep(cfg.Interval)
		}
	}
	stopping.Store(true)
	closeAll(subs)
	closeAll([]*websocket.Conn{caller})
	readers.Wait()

	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	res.ToAll, res.ResultToAll, res.Delivery, res.Call = summarize(toAll), summarize(resultToAll), summarize(all), summarize(call)
	return res, errors.Join(readErrs...)
}
