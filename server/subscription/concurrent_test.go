package subscription

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

var queryPool = []string{
	"SELECT * FROM Post",
	"SELECT * FROM Post WHERE owner = :caller",
	"SELECT * FROM Post WHERE topic = 'go'",
	"SELECT * FROM Post WHERE n > 4 AND topic != 'go'",
	"SELECT * FROM Post WHERE owner = :caller OR n = 3",
	"SELECT * FROM Post WHERE owner = :caller AND n >= 5",
	"SELECT * FROM Post WHERE topic = 'rust' AND n = 2",
	"SELECT * FROM Post WHERE NOT (n = 3)",
	"SELECT * FROM Log WHERE a = 1",
	"SELECT * FROM Log WHERE b = 'x' OR a = 2",
	"SELECT * FROM Log",
}

// randomTx applies one to three random writes; writes that find nothing to
// change are fine.
func randomTx(t testing.TB, f *fixture, rng *rand.Rand, tx *store.Tx) {
	topics := []string{"go", "rust", "c"}
	for k := rng.IntN(3) + 1; k > 0; k-- {
		var err error
		switch rng.IntN(6) {
		case 0, 1:
			_, err = tx.Insert(f.post, postRow(t, 0, ident(rng.IntN(3)+1), topics[rng.IntN(3)], uint32(rng.IntN(10))))
		case 2:
			_, err = tx.Update(f.pk, postRow(t, uint64(rng.IntN(30)+1), ident(rng.IntN(3)+1), topics[rng.IntN(3)], uint32(rng.IntN(10))))
		case 3:
			_, err = tx.DeleteByKey(f.pk, u64Key(uint64(rng.IntN(30)+1)))
		case 4:
			_, err = tx.Insert(f.log, logRow(t, uint32(rng.IntN(3)), []string{"x", "y"}[rng.IntN(2)]))
		case 5:
			_, err = tx.DeleteByKey(f.logA, u32Key(uint32(rng.IntN(3))))
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("random write: %v", err)
		}
	}
}

// writers runs n goroutines each committing count random transactions.
func writers(t testing.TB, f *fixture, n, count int, seed uint64) (wait func()) {
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; i < count; i++ {
				tx, err := f.db.Begin(f.ctx)
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				randomTx(t, f, rng, tx)
				if _, err := tx.Commit(f.ctx); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
			}
		}()
	}
	return wg.Wait
}

// checker makes a client verify, after its SubscribeApplied and after every
// update, that its cache equals a fresh query of each set at that offset.
func (c *client) checkEach(f *fixture, caller abi.Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verify = func(set uint32, off uint64) {
		want := f.fresh(off, caller, c.queries[set]...)
		for table, rows := range want {
			var got []string
			for r, n := range c.cache[set][table] {
				for i := 0; i < n; i++ {
					got = append(got, r)
				}
			}
			sort.Strings(got)
			if !equalRows(got, rows) {
				var hist []string
				for _, m := range c.msgs {
					switch m := m.(type) {
					case *SubscribeApplied:
						hist = append(hist, fmt.Sprintf("applied(set %d @%d %v)", m.QuerySetID, m.Offset, m.Tables))
					case *TransactionUpdate:
						hist = append(hist, fmt.Sprintf("%v", normalize([]*TransactionUpdate{m})))
					}
				}
				c.errs = append(c.errs, fmt.Sprintf("set %d (%q) at offset %d: %s = %v, want %v; history %v", set, c.queries[set], off, table, got, rows, hist))
			}
		}
	}
}

// Concurrent writers: every client gets transactions in commit order, each
// once, and a client watching whole tables gets exactly the transactions
// that changed them.
func TestConcurrentWritersOrderExactlyOnce(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testConcurrentWritersOrderExactlyOnce(t, m.opts...) })
	}
}

func testConcurrentWritersOrderExactlyOnce(t *testing.T, opts ...Option) {
	f := newFixture(t, opts...)
	var clients []*client
	for i := 0; i < 6; i++ {
		c := newClient(t, connID(i+1))
		c.checkEach(f, ident(i%3+1))
		f.e.Connect(c.id, ident(i%3+1), i == 0, c.send)
		clients = append(clients, c)
	}
	wait := writers(t, f, 4, 40, 1)
	// Subscribe while the writers run.
	all := clients[0]
	must[*SubscribeApplied](t)(all.subscribe(f.e, 1, "SELECT * FROM Post", "SELECT * FROM Log"))
	for i, c := range clients[1:] {
		must[*SubscribeApplied](t)(c.subscribe(f.e, 1, queryPool[i%len(queryPool)], queryPool[(i+4)%len(queryPool)]))
		must[*SubscribeApplied](t)(c.subscribe(f.e, 2, queryPool[(i+7)%len(queryPool)]))
	}
	wait()
	final := f.db.Snapshot().Offset()
	for _, c := range clients {
		f.settle(c, final)
	}
	applied := all.offsetApplied[1]
	var want, got []uint64
	f.snapMu.Lock()
	for off, tables := range f.commits {
		if off > applied && (slices.Contains(tables, "Post") || slices.Contains(tables, "Log")) {
			want = append(want, off)
		}
	}
	f.snapMu.Unlock()
	slices.Sort(want)
	for _, tu := range all.updates() {
		got = append(got, tu.Offset)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("whole-table client got offsets %v,\nwant %v", got, want)
	}
	if len(want) < 100 {
		t.Fatalf("only %d transactions after subscribing; the test did not overlap", len(want))
	}
}

// The property of the design: subscribing, unsubscribing and reconnecting
// during heavy commit traffic neither misses nor duplicates a transaction;
// each client's cache equals a fresh query of its subscription at every
// offset it sees, and at the end.
func TestSubscribeDuringTrafficProperty(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testSubscribeDuringTrafficProperty(t, m.opts...) })
	}
}

func testSubscribeDuringTrafficProperty(t *testing.T, opts ...Option) {
	var iter, folds atomic.Uint64
	s := newFixture(t).store
	defer func() {
		if !t.Failed() && folds.Load() == 0 {
			t.Errorf("no Subscribe overlapped a commit: the fold path was not exercised")
		}
		t.Logf("%d commits folded into initial rows", folds.Load())
	}()
	rapid.Check(t, func(rt *rapid.T) {
		f := newFixtureIn(t, s, fmt.Sprintf("p%d", iter.Load()), opts...)
		defer f.close()
		// Widen the window between reading initial rows and going live, so
		// that commits land in it and are folded.
		f.e.afterInitial = func() { time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) }
		wait := writers(t, f, 2, 25, iter.Add(1))
		type live struct {
			c      *client
			caller abi.Identity
			sets   []uint32
		}
		var conns []*live
		nops := rapid.IntRange(1, 12).Draw(rt, "ops")
		for op := 0; op < nops; op++ {
			switch kind := rapid.IntRange(0, 9).Draw(rt, "kind"); {
			case kind < 3 || len(conns) == 0:
				id := len(conns) + 1
				caller := ident(rapid.IntRange(0, 3).Draw(rt, "caller"))
				c := newClient(t, connID(id))
				c.checkEach(f, caller)
				f.e.Connect(c.id, caller, rapid.Bool().Draw(rt, "owner"), c.send)
				conns = append(conns, &live{c: c, caller: caller})
			case kind < 8:
				l := conns[rapid.IntRange(0, len(conns)-1).Draw(rt, "conn")]
				set := uint32(rapid.IntRange(1, 3).Draw(rt, "set"))
				qs := rapid.SliceOfN(rapid.SampledFrom(queryPool), 1, 3).Draw(rt, "queries")
				if _, err := l.c.subscribe(f.e, set, qs...); err != nil {
					t.Fatalf("subscribe %v: %v", qs, err)
				}
				if !slices.Contains(l.sets, set) {
					l.sets = append(l.sets, set)
				}
			case kind == 8 && rapid.Bool().Draw(rt, "identity"):
				// Identity change: the view is recomputed. The cache is then
				// checked at the end only (the per-offset check needs to know
				// which identity each update was computed for).
				l := conns[rapid.IntRange(0, len(conns)-1).Draw(rt, "conn")]
				l.c.mu.Lock()
				l.c.verify = nil
				l.c.mu.Unlock()
				l.caller = ident(rapid.IntRange(0, 3).Draw(rt, "new caller"))
				f.e.SetIdentity(l.c.id, l.caller)
			case kind == 8:
				l := conns[rapid.IntRange(0, len(conns)-1).Draw(rt, "conn")]
				if len(l.sets) > 0 {
					set := l.sets[0]
					l.sets = l.sets[1:]
					if err := f.e.Unsubscribe(l.c.id, set); err != nil {
						t.Fatal(err)
					}
					l.c.dropSet(set)
				}
			default:
				time.Sleep(time.Duration(rapid.IntRange(0, 3).Draw(rt, "ms")) * time.Millisecond)
			}
		}
		wait()
		folds.Add(f.e.folds.Load())
		final := f.db.Snapshot().Offset()
		for _, l := range conns {
			f.settle(l.c, final)
			l.c.checkEach(f, l.caller)
			l.c.mu.Lock()
			for _, set := range l.sets {
				if l.c.offset[set] > final {
					t.Fatalf("offset beyond the end")
				}
				l.c.verifyLocked(set, final)
			}
			l.c.mu.Unlock()
			l.c.check()
		}
	})
}

// No client sees a transaction before it is durable.
func TestNoDeliveryBeforeDurability(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testNoDeliveryBeforeDurability(t, m.opts...) })
	}
}

func testNoDeliveryBeforeDurability(t *testing.T, opts ...Option) {
	gate := &gatedDurability{release: make(chan struct{}), entered: make(chan struct{}, 16)}
	f := newFixtureStore(t, []store.Option{store.WithDurabilityWrapper(func(d store.Durability) store.Durability {
		gate.Durability = d
		return gate
	})}, opts...)
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	must[*SubscribeApplied](t)(c.subscribe(f.e, 1, "SELECT * FROM Post"))
	gate.hold.Store(true)
	done := make(chan uint64)
	go func() {
		done <- f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1))) })
	}()
	<-gate.entered // the group is being made durable
	time.Sleep(50 * time.Millisecond)
	if n := len(c.updates()); n != 0 {
		t.Fatalf("%d updates before the commit was durable", n)
	}
	if st := f.e.Stats(); st.Offset != 0 {
		t.Fatalf("engine at offset %d before durability", st.Offset)
	}
	gate.hold.Store(false)
	close(gate.release)
	off := <-done
	f.settle(c, off)
	if n := len(c.updates()); n != 1 {
		t.Fatalf("%d updates after durability, want 1", n)
	}
}

type gatedDurability struct {
	store.Durability
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedDurability) Commit(w []store.Write) error {
	if g.hold.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Durability.Commit(w)
}

// The equality index must change nothing but speed: an indexed engine and a
// brute-force engine on the same database deliver the same updates.
func TestEqualityIndexMatchesBruteForce(t *testing.T) {
	var iter int
	s := newFixture(t).store
	rapid.Check(t, func(rt *rapid.T) {
		iter++
		f := newFixtureIn(t, s, fmt.Sprintf("b%d", iter))
		defer f.close()
		brute := New(f.db, testModule, WithEqualityIndex(false))
		defer brute.Close()
		type pair struct{ a, b *client }
		var pairs []pair
		for i := 0; i < rapid.IntRange(1, 6).Draw(rt, "clients"); i++ {
			caller := ident(rapid.IntRange(0, 3).Draw(rt, "caller"))
			qs := rapid.SliceOfN(rapid.SampledFrom(append(queryPool,
				"SELECT * FROM Post WHERE n = 3",
				"SELECT * FROM Post WHERE n = 3 AND topic = 'go' AND owner = :caller",
				"SELECT * FROM Post WHERE 'go' = topic",
				"SELECT * FROM Log WHERE a = 0 AND b = 'y'",
			)), 1, 4).Draw(rt, "queries")
			p := pair{newClient(t, connID(i+1)), newClient(t, connID(i+1))}
			f.e.Connect(p.a.id, caller, true, p.a.send)
			brute.Connect(p.b.id, caller, true, p.b.send)
			must[*SubscribeApplied](t)(p.a.subscribe(f.e, 1, qs...))
			must[*SubscribeApplied](t)(p.b.subscribe(brute, 1, qs...))
			pairs = append(pairs, p)
		}
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 0))
		var last uint64
		for i := 0; i < 20; i++ {
			last = f.tx(func(tx *store.Tx) { randomTx(t, f, rng, tx) })
		}
		for _, p := range pairs {
			f.settle(p.a, last)
			waitEngine(t, brute, last)
			for !brute.idle(p.b.id) {
				time.Sleep(100 * time.Microsecond)
			}
			p.b.check()
			ua, ub := normalize(p.a.updates()), normalize(p.b.updates())
			if !slices.Equal(ua, ub) {
				t.Fatalf("indexed engine sent\n%v\nbrute force sent\n%v", ua, ub)
			}
		}
	})
}

// normalize renders updates with rows sorted, for comparison.
func normalize(tus []*TransactionUpdate) []string {
	var out []string
	for _, tu := range tus {
		s := fmt.Sprintf("@%d", tu.Offset)
		for _, qs := range tu.QuerySets {
			s += fmt.Sprintf(" set%d", qs.QuerySetID)
			for _, tb := range qs.Tables {
				s += fmt.Sprintf(" %s+%v-%v", tb.Table, sortedRows(tb.Inserts), sortedRows(tb.Deletes))
			}
		}
		out = append(out, s)
	}
	return out
}

var _ = context.Background

// Reading a big subscription's initial rows holds no lock: other clients
// keep receiving updates meanwhile, and the big subscription then receives
// exactly the transactions after its rows.
func TestInitialRowsDoNotStallOthers(t *testing.T) {
	f := newFixture(t)
	const rows = 20000
	for done := 0; done < rows; done += 5000 {
		f.tx(func(tx *store.Tx) {
			for i := 0; i < 5000; i++ {
				must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(i%5+1), "bulk", uint32(i%10))))
			}
		})
	}
	small := newClient(t, connID(1))
	f.e.Connect(small.id, ident(1), false, small.send)
	must[*SubscribeApplied](t)(small.subscribe(f.e, 1, "SELECT * FROM Post WHERE topic = 'x'"))
	big := newClient(t, connID(2)) // checked once at the end: 20,000-row checks per message are slow under -race
	f.e.Connect(big.id, ident(2), false, big.send)

	read := make(chan struct{})
	proceed := make(chan struct{})
	f.e.afterInitial = func() { close(read); <-proceed }
	type result struct {
		a   *SubscribeApplied
		err error
	}
	res := make(chan result, 1)
	go func() {
		a, err := big.subscribe(f.e, 1, "SELECT * FROM Post")
		res <- result{a, err}
	}()
	<-read
	// The big Subscribe is between reading and going live: commits still
	// reach the small client.
	var last uint64
	for i := 0; i < 3; i++ {
		last = f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "x", 1))) })
	}
	del := f.tx(func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.pk, u64Key(7))) })
	f.settle(small, del) // the engine has processed every commit so far
	if n := len(small.updates()); n != 3 {
		t.Fatalf("small client got %d updates while a big Subscribe ran, want 3", n)
	}
	close(proceed)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.a.Tables[0].Rows) != rows+3-1 || r.a.Offset != del {
		t.Fatalf("big subscription: %d rows at offset %d, want %d at %d", len(r.a.Tables[0].Rows), r.a.Offset, rows+2, del)
	}
	last = f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "y", 1))) })
	f.settle(big, last)
	if ups := big.updates(); len(ups) != 1 || ups[0].Offset != last {
		t.Fatalf("big client updates %v, want exactly offset %d", normalize(ups), last)
	}
	want := f.fresh(last, ident(2), "SELECT * FROM Post")
	if got := big.rows(1, "Post"); !equalRows(got, want["Post"]) {
		t.Fatalf("big client has %d rows, a fresh query %d", len(got), len(want["Post"]))
	}
}
