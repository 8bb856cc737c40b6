package subscription

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// Supabase realtime#585: a filtered subscription must not receive deletes
// (or updates) of rows outside its filter.
func TestFilteredDeletes(t *testing.T) {
	f := newFixture(t)
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	if _, err := c.subscribe(f.e, 1, "SELECT * FROM Post WHERE topic = 'go'"); err != nil {
		t.Fatal(err)
	}
	a := ident(1)
	goRow := func(id uint64, topic string) string {
		return `{"id":` + itoa(id) + `,"owner":"` + a.String() + `","topic":"` + topic + `","n":1}`
	}
	steps := []struct {
		name      string
		fn        func(tx *store.Tx)
		ins, dels []string
		noUpdate  bool
	}{
		{"insert outside", func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, a, "rust", 1))) }, nil, nil, true},
		{"insert inside", func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, a, "go", 1))) }, []string{goRow(2, "go")}, nil, false},
		{"delete outside", func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.pk, u64Key(1))) }, nil, nil, true},
		{"update outside to outside", func(tx *store.Tx) {
			must[[]byte](t)(tx.Insert(f.post, postRow(t, 5, a, "c", 1)))
		}, nil, nil, true},
		{"update moves out", func(tx *store.Tx) { must[[]byte](t)(tx.Update(f.pk, postRow(t, 2, a, "rust", 1))) }, nil, []string{goRow(2, "go")}, false},
		{"update moves in", func(tx *store.Tx) { must[[]byte](t)(tx.Update(f.pk, postRow(t, 5, a, "go", 1))) }, []string{goRow(5, "go")}, nil, false},
		{"update inside", func(tx *store.Tx) { must[[]byte](t)(tx.Update(f.pk, postRow(t, 5, a, "go", 2))) },
			[]string{`{"id":5,"owner":"` + a.String() + `","topic":"go","n":2}`}, []string{goRow(5, "go")}, false},
		{"delete inside", func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.pk, u64Key(5))) }, nil, []string{`{"id":5,"owner":"` + a.String() + `","topic":"go","n":2}`}, false},
	}
	for _, st := range steps {
		n := len(c.updates())
		off := f.tx(st.fn)
		f.settle(c, off)
		ups := c.updates()
		if st.noUpdate {
			if len(ups) != n {
				t.Fatalf("%s: got an update %+v, want none", st.name, ups[len(ups)-1])
			}
			continue
		}
		if len(ups) != n+1 {
			t.Fatalf("%s: %d updates, want 1", st.name, len(ups)-n)
		}
		tu := ups[n]
		if tu.Offset != off || len(tu.QuerySets) != 1 || len(tu.QuerySets[0].Tables) != 1 {
			t.Fatalf("%s: update %+v", st.name, tu)
		}
		tb := tu.QuerySets[0].Tables[0]
		if got := sortedRows(tb.Inserts); !equalRows(got, st.ins) {
			t.Fatalf("%s: inserts %v, want %v", st.name, got, st.ins)
		}
		if got := sortedRows(tb.Deletes); !equalRows(got, st.dels) {
			t.Fatalf("%s: deletes %v, want %v", st.name, got, st.dels)
		}
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestDedupeWithinSet(t *testing.T) {
	f := newFixture(t)
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	must[*SubscribeApplied](t)(c.subscribe(f.e, 1, "SELECT * FROM Post WHERE topic = 'go'", "SELECT * FROM Post WHERE n >= 0", "SELECT * FROM Post WHERE owner = :caller"))
	must[*SubscribeApplied](t)(c.subscribe(f.e, 2, "SELECT * FROM Post WHERE topic = 'go'"))
	// Log has no primary key: two equal rows are two rows.
	must[*SubscribeApplied](t)(c.subscribe(f.e, 3, "SELECT * FROM Log WHERE a = 1", "SELECT * FROM Log WHERE b = 'x'"))
	off := f.tx(func(tx *store.Tx) {
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1)))
		must[[]byte](t)(tx.Insert(f.log, logRow(t, 1, "x")))
		must[[]byte](t)(tx.Insert(f.log, logRow(t, 1, "x")))
	})
	f.settle(c, off)
	ups := c.updates()
	if len(ups) != 1 {
		t.Fatalf("%d updates, want 1", len(ups))
	}
	tu := ups[0]
	if len(tu.QuerySets) != 3 {
		t.Fatalf("query sets %+v, want 3", tu.QuerySets)
	}
	for i, want := range []int{1, 1, 2} {
		qs := tu.QuerySets[i]
		if qs.QuerySetID != uint32(i+1) || len(qs.Tables) != 1 || len(qs.Tables[0].Inserts) != want {
			t.Fatalf("set %d: %+v, want %d inserted rows", i+1, qs, want)
		}
	}
	// The JSON of a row is shared, not re-encoded per set.
	if &tu.QuerySets[0].Tables[0].Inserts[0][0] != &tu.QuerySets[1].Tables[0].Inserts[0][0] {
		t.Fatalf("row JSON encoded twice")
	}
	off = f.tx(func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.logA, u32Key(1))) })
	f.settle(c, off)
	if got := c.rows(3, "Log"); len(got) != 0 {
		t.Fatalf("Log rows after delete: %v", got)
	}
}

func TestUnsubscribeDisconnectReplace(t *testing.T) {
	f := newFixture(t)
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	ctx := context.Background()
	must[*SubscribeApplied](t)(c.subscribe(f.e, 1, "SELECT * FROM Post WHERE topic = 'go'"))
	must[*SubscribeApplied](t)(c.subscribe(f.e, 2, "SELECT * FROM Post WHERE topic = 'rust'"))
	ins := func(topic string) uint64 {
		return f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), topic, 1))) })
	}
	f.settle(c, ins("go"))
	if err := f.e.Unsubscribe(c.id, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Unsubscribe(c.id, 1); !errors.Is(err, ErrNoSuchQuerySet) {
		t.Fatalf("second unsubscribe: %v", err)
	}
	n := len(c.updates())
	f.settle(c, ins("go"))
	if len(c.updates()) != n {
		t.Fatalf("update after unsubscribe")
	}
	// Replacing set 2 with another query: the new rows come in the new
	// SubscribeApplied, and only the new query's updates follow.
	a := must[*SubscribeApplied](t)(c.subscribe(f.e, 2, "SELECT * FROM Post WHERE topic = 'go'"))
	if len(a.Tables) != 1 || len(a.Tables[0].Rows) != 2 {
		t.Fatalf("replaced set applied %+v, want the 2 go rows", a)
	}
	n = len(c.updates())
	f.settle(c, ins("rust"))
	if len(c.updates()) != n {
		t.Fatalf("replaced query still delivers")
	}
	f.settle(c, ins("go"))
	if len(c.updates()) != n+1 {
		t.Fatalf("replacement does not deliver")
	}
	if st := f.e.Stats(); st.QuerySets != 1 || st.UniqueQueries != 1 {
		t.Fatalf("stats %+v", st)
	}
	f.e.Disconnect(c.id)
	if st := f.e.Stats(); st.Connections != 0 || st.QuerySets != 0 || st.UniqueQueries != 0 || st.Subscriptions != 0 {
		t.Fatalf("stats after disconnect %+v", st)
	}
	if _, err := f.e.Subscribe(ctx, c.id, 1, []string{"SELECT * FROM Post"}); !errors.Is(err, ErrUnknownConnection) {
		t.Fatalf("subscribe after disconnect: %v", err)
	}
	n = len(c.updates())
	off := ins("go")
	waitEngine(t, f.e, off)
	time.Sleep(5 * time.Millisecond)
	if len(c.updates()) != n {
		t.Fatalf("update after disconnect")
	}
}

// A client whose send blocks or refuses must not delay the others.
func TestSlowClient(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testSlowClient(t, m.opts...) })
	}
}

func testSlowClient(t *testing.T, opts ...Option) {
	var overflowed atomic.Int32
	f := newFixture(t, append(opts, WithMaxQueuedUpdates(3), WithOverflowHandler(func(abi.ConnectionID) { overflowed.Add(1) }))...)
	stuck := newClient(t, connID(1))
	stuck.block = make(chan struct{})
	direct := len(opts) > 0
	if direct {
		// A send that blocks breaks WithNonBlockingSend's contract: the
		// stuck client is one whose updates pile up while a Subscribe
		// holds its outbox paused.
		stuck.block = nil
	}
	refusing := newClient(t, connID(2))
	refusing.refuse = true
	fast := newClient(t, connID(3))
	for _, c := range []*client{stuck, refusing, fast} {
		f.e.Connect(c.id, ident(1), false, c.send)
		must[*SubscribeApplied](t)(c.subscribe(f.e, 1, "SELECT * FROM Post"))
	}
	if direct {
		f.e.mu.Lock()
		f.e.conns[stuck.id].box.pause()
		f.e.mu.Unlock()
	}
	start := time.Now()
	for i := 0; i < 10; i++ {
		off := f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1))) })
		f.settle(fast, off)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("10 transactions took %v with a stuck client", d)
	}
	if got := len(fast.updates()); got != 10 {
		t.Fatalf("fast client got %d updates, want 10", got)
	}
	if got := len(refusing.updates()); got != 0 {
		t.Fatalf("refusing client recorded %d updates", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for overflowed.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("overflow handler called %d times, want 1", overflowed.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if !direct {
		close(stuck.block)
	} else if got := len(stuck.updates()); got != 0 {
		t.Fatalf("paused client got %d updates", got)
	}
	f.e.Disconnect(stuck.id)
	f.e.Disconnect(refusing.id)
}

func TestSetIdentity(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testSetIdentity(t, m.opts...) })
	}
}

func testSetIdentity(t *testing.T, opts ...Option) {
	f := newFixture(t, opts...)
	a, b := ident(1), ident(2)
	f.tx(func(tx *store.Tx) {
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, a, "go", 1)))
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, b, "go", 2)))
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, b, "rust", 3)))
	})
	waitEngine(t, f.e, 1)
	c := newClient(t, connID(1))
	other := newClient(t, connID(2))
	f.e.Connect(c.id, abi.Identity{}, false, c.send)
	f.e.Connect(other.id, abi.Identity{}, false, other.send)
	must[*SubscribeApplied](t)(c.subscribe(f.e, 1, "SELECT * FROM Post WHERE owner = :caller"))
	must[*SubscribeApplied](t)(c.subscribe(f.e, 2, "SELECT * FROM Post WHERE topic = 'go'"))
	must[*SubscribeApplied](t)(other.subscribe(f.e, 1, "SELECT * FROM Post WHERE owner = :caller"))
	check := func(id abi.Identity) {
		t.Helper()
		off := f.e.Stats().Offset
		f.settle(c, off)
		want := f.fresh(off, id, "SELECT * FROM Post WHERE owner = :caller")
		if got := c.rows(1, "Post"); !equalRows(got, want["Post"]) {
			t.Fatalf("as %s: rows %v, want %v", id, got, want["Post"])
		}
	}
	check(abi.Identity{})
	f.e.SetIdentity(c.id, a)
	check(a)
	f.e.SetIdentity(c.id, b)
	check(b)
	ups := c.updates()
	last := ups[len(ups)-1]
	if len(last.QuerySets) != 1 || last.QuerySets[0].QuerySetID != 1 {
		t.Fatalf("identity change touched sets %+v, want only set 1", last.QuerySets)
	}
	off := f.tx(func(tx *store.Tx) {
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, a, "x", 1)))
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, b, "x", 1)))
	})
	f.settle(c, off)
	check(b)
	// The other connection shared the anonymous query; it is unaffected.
	f.settle(other, off)
	if got := other.rows(1, "Post"); len(got) != 0 {
		t.Fatalf("anonymous connection sees %v", got)
	}
	if st := f.e.Stats(); st.UniqueQueries != 3 {
		t.Fatalf("unique queries %d, want 3 (caller b, topic go, anonymous)", st.UniqueQueries)
	}
}
