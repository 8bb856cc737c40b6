package subscription

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// Identical queries are one evaluation: subscribers share the query and the
// row's JSON bytes; a :caller query is shared only by equal callers.
func TestSharedEvaluation(t *testing.T) {
	f := newFixture(t)
	var cs []*client
	for i := 0; i < 4; i++ {
		c := newClient(t, connID(i+1))
		f.e.Connect(c.id, ident(i%2+1), false, c.send)
		// Different spelling, same canonical query.
		q := []string{"SELECT * FROM Post WHERE topic = 'go'", "select *  from Post where (topic='go')"}[i%2]
		must[*SubscribeApplied](t)(c.subscribe(f.e, 1, q))
		must[*SubscribeApplied](t)(c.subscribe(f.e, 2, "SELECT * FROM Post WHERE owner = :caller"))
		cs = append(cs, c)
	}
	if st := f.e.Stats(); st.UniqueQueries != 3 || st.Subscriptions != 8 || st.Connections != 4 {
		t.Fatalf("stats %+v, want 3 unique queries (topic, caller 1, caller 2) for 8 subscriptions", st)
	}
	off := f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1))) })
	var first *byte
	for i, c := range cs {
		f.settle(c, off)
		ups := c.updates()
		if len(ups) != 1 {
			t.Fatalf("client %d: %d updates", i, len(ups))
		}
		wantSets := 1
		if i%2 == 0 { // owner ident(1) also sees it through :caller
			wantSets = 2
		}
		if len(ups[0].QuerySets) != wantSets {
			t.Fatalf("client %d: sets %+v, want %d", i, ups[0].QuerySets, wantSets)
		}
		p := &ups[0].QuerySets[0].Tables[0].Inserts[0][0]
		if first == nil {
			first = p
		} else if p != first {
			t.Fatalf("client %d got its own copy of the row's JSON", i)
		}
	}
}

// A table added by a republish (AddTables) and granted is readable at once.
func TestRepublishAddsTable(t *testing.T) {
	f := newFixture(t)
	var mod atomic.Pointer[abi.ModuleDef]
	mod.Store(testModule())
	f.e.def = func() *abi.ModuleDef { return mod.Load() }
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	if _, err := c.subscribe(f.e, 1, "SELECT * FROM News"); err == nil {
		t.Fatal("subscribed to a table that does not exist yet")
	}
	news := abi.TableDef{Name: "News", Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "title", Type: abi.TypeString}}}
	if err := f.db.AddTables(f.ctx, []abi.TableDef{news}); err != nil {
		t.Fatal(err)
	}
	next := testModule()
	next.Tables = append(next.Tables, news)
	next.Grants = append(next.Grants, abi.GrantDef{Table: "News", To: "public"})
	mod.Store(next)
	must[*SubscribeApplied](t)(c.subscribe(f.e, 1, "SELECT * FROM News WHERE title = 'hi'"))
	tid := must[store.TableID](t)(f.db.TableID("News"))
	off := f.tx(func(tx *store.Tx) {
		row := must[[]byte](t)(abi.EncodeRow(nil, news.ColumnTypes(), []abi.Value{abi.U64(1), abi.String("hi")}))
		must[[]byte](t)(tx.Insert(tid, row))
	})
	f.settle(c, off)
	if got := c.rows(1, "News"); len(got) != 1 || got[0] != `{"id":1,"title":"hi"}` {
		t.Fatalf("News rows %v", got)
	}
}

func TestCloseAndReconnect(t *testing.T) {
	f := newFixture(t)
	old := newClient(t, connID(1))
	f.e.Connect(old.id, ident(1), false, old.send)
	must[*SubscribeApplied](t)(old.subscribe(f.e, 1, "SELECT * FROM Post"))
	// Connecting the same id again replaces the connection and its sets.
	fresh := newClient(t, connID(1))
	f.e.Connect(fresh.id, ident(1), false, fresh.send)
	if st := f.e.Stats(); st.Connections != 1 || st.QuerySets != 0 {
		t.Fatalf("stats after reconnect %+v", st)
	}
	must[*SubscribeApplied](t)(fresh.subscribe(f.e, 1, "SELECT * FROM Post"))
	off := f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1))) })
	f.settle(fresh, off)
	if len(old.updates()) != 0 || len(fresh.updates()) != 1 {
		t.Fatalf("old got %d, new got %d updates; want 0 and 1", len(old.updates()), len(fresh.updates()))
	}
	f.e.Close()
	f.e.Close()
	if _, err := f.e.Subscribe(context.Background(), fresh.id, 2, []string{"SELECT * FROM Post"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
	if _, err := f.e.OneOffQuery(context.Background(), fresh.id, "SELECT * FROM Post"); !errors.Is(err, ErrClosed) {
		t.Fatalf("one-off after close: %v", err)
	}
	f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1))) })
	if len(fresh.updates()) != 1 {
		t.Fatalf("update after close")
	}
}

// An identity change reads the old and new views without the lock; commits
// that land meanwhile are folded into both, and the client's cache ends up
// equal to a fresh query under the new identity.
func TestSetIdentityDuringCommits(t *testing.T) {
	f := newFixture(t)
	a, b := ident(1), ident(2)
	f.tx(func(tx *store.Tx) {
		for i := 0; i < 10; i++ {
			must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, []abi.Identity{a, b}[i%2], "go", uint32(i))))
		}
	})
	waitEngine(t, f.e, 1)
	c := newClient(t, connID(1))
	f.e.Connect(c.id, a, false, c.send)
	q := "SELECT * FROM Post WHERE owner = :caller OR n = 3"
	must[*SubscribeApplied](t)(c.subscribe(f.e, 1, q))
	read := make(chan struct{})
	proceed := make(chan struct{})
	f.e.afterInitial = func() { close(read); <-proceed }
	done := make(chan struct{})
	go func() { f.e.SetIdentity(c.id, b); close(done) }()
	<-read
	var last uint64
	for _, fn := range []func(tx *store.Tx){
		func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, a, "new", 1))) },
		func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, b, "new", 1))) },
		func(tx *store.Tx) { must[[]byte](t)(tx.Update(f.pk, postRow(t, 1, b, "moved", 1))) }, // a's row becomes b's
		func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.pk, u64Key(2))) },                  // one of b's rows
	} {
		last = f.tx(fn)
	}
	waitEngine(t, f.e, last)
	close(proceed)
	<-done
	f.settle(c, last)
	want := f.fresh(last, b, q)
	if got := c.rows(1, "Post"); !equalRows(got, want["Post"]) {
		t.Fatalf("after the identity change: %v,\nwant %v", got, want["Post"])
	}
	if f.e.folds.Load() == 0 {
		t.Fatalf("no commit was folded")
	}
	ups := c.updates()
	if r := ups[len(ups)-1]; !r.Recomputed || r.Offset != last {
		t.Fatalf("last update %+v, want the recomputation at offset %d", r, last)
	}
	// Later commits follow the new identity.
	off := f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, b, "later", 9))) })
	f.settle(c, off)
	want = f.fresh(off, b, q)
	if got := c.rows(1, "Post"); !equalRows(got, want["Post"]) {
		t.Fatalf("after a later commit: %v, want %v", got, want["Post"])
	}
}
