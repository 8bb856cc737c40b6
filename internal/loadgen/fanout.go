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
	// Reader is how the subscribers' sockets are read: ReaderPoll (the
	// default where available) or ReaderGoroutines.
	Reader string `json:"reader"`
	// PollInterval, with ReaderPoll, makes each poller look at its sockets
	// once per interval instead of waiting for the next message (0).
	PollInterval time.Duration `json:"poll_interval_ns"`
	// ServerPID, when set, is the server's process: its CPU time during the
	// measured transactions is reported (it must run on this machine).
	ServerPID int `json:"server_pid,omitempty"`
}

// The ways of reading the subscribers' sockets.
const (
	// ReaderGoroutines reads each subscriber with gorilla/websocket on its
	// own goroutine, as a client library would.
	ReaderGoroutines = "goroutines"
	// ReaderPoll reads every subscriber from a few threads waiting on epoll
	// and parses the frames in place: each update then costs the generator
	// about one read, instead of two reads and a goroutine wake-up, so less
	// of the shared cores goes to the measuring side (Linux only).
	ReaderPoll = "poll"
)

// FanoutResult is what RunFanout measured. Times are taken in the load
// generator, which cannot see the server's commit; the updates and the
// caller's ReducerResult are all sent once the commit is durable, so the
// first of them to arrive is the earliest sign of the durable commit the
// generator has (one loopback hop after it):
//   - CommitToAll runs from that first sign to the last subscriber's receipt,
//     the figure closest to "commit → update at every subscriber";
//   - ToAll runs from sending the call to the last receipt, an upper bound
//     that includes the reducer and the durable commit (fsync);
//   - ResultToAll runs from the caller's ReducerResult to the last receipt
//     (0 when the result came last), which under-counts when the server
//     answers the caller after some of the updates.
type FanoutResult struct {
	Config FanoutConfig `json:"config"`
	// CommitToAll: the first of the ReducerResult and the subscribers'
	// receipts → update received by every subscriber.
	CommitToAll Latency `json:"commit_to_all"`
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
	// Misordered counts updates a subscriber received twice or after a
	// later transaction's (the server owes commit order, once each).
	Misordered int `json:"misordered"`
	// Window is the measured transactions' wall time (pauses included);
	// LoadgenCPU and ServerCPU are each process's CPU time (user+system)
	// in it, and the PerDelivery figures divide them by the deliveries
	// (measured transactions × subscribers). ServerCPU needs ServerPID.
	Window                time.Duration `json:"window_ns"`
	LoadgenCPU            time.Duration `json:"loadgen_cpu_ns"`
	ServerCPU             time.Duration `json:"server_cpu_ns,omitempty"`
	LoadgenCPUPerDelivery time.Duration `json:"loadgen_cpu_per_delivery_ns"`
	ServerCPUPerDelivery  time.Duration `json:"server_cpu_per_delivery_ns,omitempty"`
}

func (r *FanoutResult) String() string {
	s := fmt.Sprintf("%d subscribers, %d transactions (%s reader):\n  commit → all subscribers  %s\n  call → all subscribers    %s\n  result → all              %s\n  call → each subscriber    %s\n  call → ReducerResult      %s",
		r.Config.Subscribers, r.Config.Txs, r.Config.Reader, r.CommitToAll, r.ToAll, r.ResultToAll, r.Delivery, r.Call)
	s += fmt.Sprintf("\n  CPU per delivery: load generator %s", us(r.LoadgenCPUPerDelivery))
	if r.Config.ServerPID != 0 {
		s += fmt.Sprintf(", server %s", us(r.ServerCPUPerDelivery))
	}
	if r.Misordered > 0 {
		s += fmt.Sprintf("\n  %d updates came twice or out of commit order", r.Misordered)
	}
	if r.Incomplete > 0 {
		s += fmt.Sprintf("\n  %d transactions did not reach every subscriber within %s", r.Incomplete, r.Config.Timeout)
	}
	return s
}

func us(d time.Duration) string { return fmt.Sprintf("%.2fµs", float64(d)/1e3) }

// txState follows one transaction.
type txState struct {
	sent      atomic.Int64 // unix ns
	remaining atomic.Int32
	first     atomic.Int64 // earliest receipt, unix ns
	last      atomic.Int64 // latest receipt, unix ns
	done      chan struct{}
}

func (t *txState) received(now int64) {
	for {
		l := t.last.Load()
		if now <= l || t.last.CompareAndSwap(l, now) {
			break
		}
	}
	for {
		f := t.first.Load()
		if (f != 0 && f <= now) || t.first.CompareAndSwap(f, now) {
			break
		}
	}
	if t.remaining.Add(-1) == 0 {
		close(t.done)
	}
}

var (
	keySeq             = []byte(`"seq":`)
	prefixApplied      = []byte(`{"SubscribeApplied"`)
	prefixSubscribeErr = []byte(`{"SubscriptionError"`)
)

// subscriber is one subscriber's state; only its reader touches it.
type subscriber struct {
	applied bool
	samples []time.Duration
	// next is the seq it expects; misordered counts updates that came
	// twice or out of commit order.
	next       uint64
	misordered int
}

// fanout is one run's shared state.
type fanout struct {
	cfg     FanoutConfig
	txs     []txState
	subs    []subscriber
	applied chan error
}

// message handles subscriber i's message data, read at now (unix ns).
func (f *fanout) message(i int, data []byte, now int64) {
	s := &f.subs[i]
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
			if !ok || seq >= uint64(len(f.txs)) {
				continue
			}
			if seq < s.next {
				s.misordered++
				continue
			}
			s.next = seq + 1
			t := &f.txs[seq]
			if int(seq) >= f.cfg.Warmup {
				s.samples = append(s.samples, time.Duration(now-t.sent.Load()))
			}
			t.received(now)
		}
	case !s.applied && bytes.HasPrefix(data, prefixApplied):
		s.applied = true
		f.applied <- nil
	case !s.applied && bytes.HasPrefix(data, prefixSubscribeErr):
		s.applied = true
		f.applied <- fmt.Errorf("%w: subscribing %q: %.300s", ErrServer, f.cfg.Query, data)
	}
}

// failed reports subscriber i's read error; before its SubscribeApplied it
// also ends the wait for it.
func (f *fanout) failed(i int, err error) error {
	err = fmt.Errorf("loadgen: subscriber %d: %w", i, err)
	if s := &f.subs[i]; !s.applied {
		s.applied = true
		f.applied <- err
	}
	return err
}

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
	switch cfg.Reader {
	case "":
		cfg.Reader = ReaderGoroutines
		if pollAvailable {
			cfg.Reader = ReaderPoll
		}
	case ReaderGoroutines:
	case ReaderPoll:
		if !pollAvailable {
			return nil, fmt.Errorf("loadgen: the %q reader needs Linux; use %q", ReaderPoll, ReaderGoroutines)
		}
	default:
		return nil, fmt.Errorf("loadgen: unknown reader %q: use %q or %q", cfg.Reader, ReaderPoll, ReaderGoroutines)
	}
	total := cfg.Warmup + cfg.Txs
	f := &fanout{cfg: cfg, txs: make([]txState, total), subs: make([]subscriber, cfg.Subscribers), applied: make(chan error, cfg.Subscribers)}
	for i := range f.txs {
		f.txs[i].remaining.Store(int32(cfg.Subscribers))
		f.txs[i].done = make(chan struct{})
	}

	conns, err := dialAll(ctx, cfg.Target, cfg.Subscribers, cfg.DialConcurrency)
	if err != nil {
		return nil, err
	}
	caller, err := dial(ctx, cfg.Target)
	if err != nil {
		closeAll(conns)
		return nil, err
	}
	defer closeAll([]*websocket.Conn{caller})
	var stopping atomic.Bool
	defer stopping.Store(true) // runs before the closes: their errors are expected

	// Subscribe everyone, and wait for every SubscribeApplied before the
	// first transaction.
	sub := fmt.Appendf(nil, `{"Subscribe":{"request_id":1,"query_set_id":1,"queries":[%s]}}`, strconv.Quote(cfg.Query))
	for _, ws := range conns {
		if err := ws.WriteMessage(websocket.TextMessage, sub); err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("loadgen: subscribing: %w", err)
		}
	}
	var stopReaders func() error
	if cfg.Reader == ReaderPoll {
		// The server sends nothing between InitialConnection (read by
		// dial) and the SubscribeApplied, so gorilla holds no buffered
		// bytes when the sockets are taken over.
		p, err := startPoller(f, conns, &stopping)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		stopReaders = p.stop
	} else {
		stopReaders = goroutineReaders(f, conns, &stopping)
	}
	readersStopped := false
	defer func() {
		if !readersStopped {
			stopping.Store(true)
			stopReaders()
		}
	}()
	var subErrs []error
	for range conns {
		select {
		case err := <-f.applied:
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
	var callerDone sync.WaitGroup
	callerDone.Go(func() {
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
	var commitToAll, toAll, resultToAll, call []time.Duration
	var buf []byte
	var start time.Time
	var cpu0, server0 time.Duration
	for seq := range total {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if seq == cfg.Warmup {
			start, cpu0 = time.Now(), processCPU()
			if cfg.ServerPID != 0 {
				server0 = PIDCPU(cfg.ServerPID)
			}
		}
		t := &f.txs[seq]
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
				commitToAll = append(commitToAll, time.Duration(last-min(a.at, t.first.Load())))
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
	res.Window, res.LoadgenCPU = time.Since(start), processCPU()-cpu0
	if cfg.ServerPID != 0 {
		res.ServerCPU = PIDCPU(cfg.ServerPID) - server0
	}
	deliveries := time.Duration(cfg.Txs * cfg.Subscribers)
	res.LoadgenCPUPerDelivery, res.ServerCPUPerDelivery = res.LoadgenCPU/deliveries, res.ServerCPU/deliveries

	stopping.Store(true)
	readersStopped = true
	readErr := stopReaders()
	closeAll([]*websocket.Conn{caller})
	callerDone.Wait()

	var all []time.Duration
	for _, s := range f.subs {
		all = append(all, s.samples...)
		res.Misordered += s.misordered
	}
	res.CommitToAll, res.ToAll, res.ResultToAll, res.Delivery, res.Call = summarize(commitToAll), summarize(toAll), summarize(resultToAll), summarize(all), summarize(call)
	return res, readErr
}

// goroutineReaders reads each connection on its own goroutine; the returned
// function closes them and returns the readers' errors.
func goroutineReaders(f *fanout, conns []*websocket.Conn, stopping *atomic.Bool) func() error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, ws := range conns {
		wg.Go(func() {
			r := reader{ws: ws}
			for {
				data, err := r.next()
				if err != nil {
					if !stopping.Load() {
						errs[i] = f.failed(i, err)
					}
					return
				}
				f.message(i, data, time.Now().UnixNano())
			}
		})
	}
	return func() error {
		closeAll(conns)
		wg.Wait()
		return errors.Join(errs...)
	}
}
