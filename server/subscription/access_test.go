package subscription

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

func TestAccess(t *testing.T) {
	f := newFixture(t)
	f.tx(func(tx *store.Tx) {
		must[[]byte](t)(tx.Insert(f.sec, postSecret(t, 1)))
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1)))
	})
	user := newClient(t, connID(1))
	f.e.Connect(user.id, ident(1), false, user.send)
	owner := newClient(t, connID(2))
	f.e.Connect(owner.id, ident(2), true, owner.send)
	anon := newClient(t, connID(3))
	f.e.Connect(anon.id, ident(0), false, anon.send)
	ctx := context.Background()

	privateMsg := `table is private: no grant_access opens table "Secret" to clients (the schema can add "grant_access Secret to public;"`
	cases := []struct {
		name    string
		c       *client
		sub     []string // subscription queries
		oneOff  string
		wantErr error
		wantMsg string
	}{
		{name: "private subscription", c: user, sub: []string{"SELECT * FROM Secret"}, wantErr: ErrPrivateTable, wantMsg: privateMsg},
		{name: "private among public", c: user, sub: []string{"SELECT * FROM Post", "SELECT * FROM Secret WHERE id = 1"}, wantErr: ErrPrivateTable, wantMsg: privateMsg},
		{name: "private one-off", c: user, oneOff: "SELECT COUNT(*) FROM Secret", wantErr: ErrPrivateTable, wantMsg: privateMsg},
		{name: "private table in a subquery", c: user, oneOff: "SELECT * FROM Post WHERE n IN (SELECT a FROM Log)"},
		{name: "private table in a subquery refused", c: user, oneOff: "SELECT * FROM Post WHERE id IN (SELECT id FROM Secret)", wantErr: ErrPrivateTable, wantMsg: privateMsg},
		{name: "authenticated grant", c: user, sub: []string{"SELECT * FROM Profile"}},
		{name: "authenticated grant refuses anonymous", c: anon, sub: []string{"SELECT * FROM Profile"}, wantErr: ErrPrivateTable, wantMsg: `only signed-in clients may read table "Profile" (grant_access Profile to authenticated); sign in first`},
		{name: "authenticated grant refuses anonymous one-off", c: anon, oneOff: "SELECT COUNT(*) FROM Profile", wantErr: ErrPrivateTable, wantMsg: `only signed-in clients may read table "Profile"`},
		{name: "owner subscribes to private", c: owner, sub: []string{"SELECT * FROM Secret"}},
		{name: "owner one-off on private", c: owner, oneOff: "SELECT * FROM Secret"},
		{name: "public", c: user, sub: []string{"SELECT * FROM Post"}},
		{name: "projection refused", c: user, sub: []string{"SELECT id FROM Post"}, wantErr: ErrUnsupported, wantMsg: "must be SELECT * FROM Post"},
		{name: "count refused", c: user, sub: []string{"SELECT COUNT(*) FROM Post"}, wantErr: ErrUnsupported, wantMsg: "COUNT(*) work in one-off queries"},
		{name: "subquery refused", c: owner, sub: []string{"SELECT * FROM Post WHERE owner IN (SELECT owner FROM Post WHERE n = 1)"}, wantErr: ErrUnsupported, wantMsg: "IN (SELECT ...)"},
		{name: "syntax", c: user, sub: []string{"SELEC * FROM Post"}, wantErr: query.ErrSyntax},
		{name: "unknown table", c: user, sub: []string{"SELECT * FROM Nope"}, wantErr: query.ErrUnknownTable},
		{name: "unknown column", c: user, oneOff: "SELECT * FROM Post WHERE nope = 1", wantErr: query.ErrUnknownColumn},
		{name: "empty set", c: user, sub: []string{}, wantErr: ErrUnsupported},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.oneOff != "" {
				_, err = f.e.OneOffQuery(ctx, tc.c.id, tc.oneOff)
			} else {
				_, err = f.e.Subscribe(ctx, tc.c.id, uint32(100+i), tc.sub)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
	// A refused Subscribe leaves nothing behind.
	st := f.e.Stats()
	if st.QuerySets != 3 || st.PendingSubscribes != 0 {
		t.Fatalf("stats after the cases = %+v, want 3 query sets and nothing pending", st)
	}
}

func TestOneOffQuery(t *testing.T) {
	f := newFixture(t)
	f.tx(func(tx *store.Tx) {
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1)))
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(2), "go", 2)))
		must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "rust", 3)))
		must[[]byte](t)(tx.Insert(f.log, logRow(t, 2, "x")))
	})
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	waitEngine(t, f.e, 1)
	cases := []struct {
		q    string
		want []string
	}{
		{"SELECT * FROM Post WHERE owner = :caller AND topic = 'go'", []string{`{"id":1,"owner":"` + ident(1).String() + `","topic":"go","n":1}`}},
		{"SELECT topic, n FROM Post WHERE n >= 2", []string{`{"topic":"go","n":2}`, `{"topic":"rust","n":3}`}},
		{"SELECT COUNT(*) FROM Post WHERE topic = 'go'", []string{`{"count":2}`}},
		{"SELECT COUNT(*) FROM Post WHERE topic = 'none'", []string{`{"count":0}`}},
		{"SELECT n FROM Post WHERE n IN (SELECT a FROM Log)", []string{`{"n":2}`}},
		{"SELECT * FROM Post WHERE n > 100", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.q, func(t *testing.T) {
			res, err := f.e.OneOffQuery(context.Background(), c.id, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tables) != 1 || res.Tables[0].Table != "Post" {
				t.Fatalf("tables = %+v", res.Tables)
			}
			if got := sortedRows(res.Tables[0].Rows); !equalRows(got, tc.want) {
				t.Fatalf("rows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, WithMaxQueriesPerSet(2), WithMaxSubscriptionsPerConn(3), WithMaxInitialRows(2))
	f.tx(func(tx *store.Tx) {
		for i := 0; i < 3; i++ {
			must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", uint32(i))))
		}
	})
	waitEngine(t, f.e, 1)
	c := newClient(t, connID(1))
	f.e.Connect(c.id, ident(1), false, c.send)
	ctx := context.Background()
	q := "SELECT * FROM Post WHERE n = 0"
	if _, err := f.e.Subscribe(ctx, c.id, 1, []string{q, q, q}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "WithMaxQueriesPerSet") {
		t.Fatalf("3 queries in a set: err = %v", err)
	}
	if _, err := f.e.Subscribe(ctx, c.id, 1, []string{"SELECT * FROM Post"}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "WithMaxInitialRows") {
		t.Fatalf("3 initial rows: err = %v", err)
	}
	if _, err := f.e.OneOffQuery(ctx, c.id, "SELECT * FROM Post"); !errors.Is(err, ErrLimit) {
		t.Fatalf("3 one-off rows: err = %v", err)
	}
	if _, err := f.e.Subscribe(ctx, c.id, 1, []string{q, q}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Subscribe(ctx, c.id, 2, []string{q, q}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "WithMaxSubscriptionsPerConn") {
		t.Fatalf("4 subscriptions: err = %v", err)
	}
	// Replacing set 1 frees its share.
	if _, err := f.e.Subscribe(ctx, c.id, 1, []string{q, q}); err != nil {
		t.Fatalf("replacing a set within the limit: %v", err)
	}
	if st := f.e.Stats(); st.Subscriptions != 2 || st.UniqueQueries != 1 || st.QuerySets != 1 {
		t.Fatalf("stats = %+v, want 2 subscriptions of 1 unique query in 1 set", st)
	}
}

func TestModuleChangedRevokes(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testModuleChangedRevokes(t, m.opts...) })
	}
}

func testModuleChangedRevokes(t *testing.T, opts ...Option) {
	f := newFixture(t, opts...)
	mod := testModule()
	var cur atomic.Pointer[abi.ModuleDef]
	cur.Store(mod)
	f.e.def = func() *abi.ModuleDef { return cur.Load() }
	user := newClient(t, connID(1))
	owner := newClient(t, connID(2))
	f.e.Connect(user.id, ident(1), false, user.send)
	f.e.Connect(owner.id, ident(2), true, owner.send)
	must[*SubscribeApplied](t)(user.subscribe(f.e, 1, "SELECT * FROM Post"))
	must[*SubscribeApplied](t)(user.subscribe(f.e, 2, "SELECT * FROM Log"))
	must[*SubscribeApplied](t)(owner.subscribe(f.e, 1, "SELECT * FROM Post"))
	if r := f.e.ModuleChanged(); len(r) != 0 {
		t.Fatalf("unchanged module revoked %+v", r)
	}
	// Republish without the Post grant.
	next := testModule()
	next.Grants = next.Grants[1:]
	cur.Store(next)
	r := f.e.ModuleChanged()
	if len(r) != 1 || r[0].Conn != user.id || r[0].QuerySetID != 1 || !errors.Is(r[0].Err, ErrPrivateTable) {
		t.Fatalf("revoked %+v, want the user's set 1", r)
	}
	if st := f.e.Stats(); st.QuerySets != 2 {
		t.Fatalf("stats %+v, want 2 sets left", st)
	}
	off := f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, ident(1), "go", 1))) })
	f.settle(user, off)
	f.settle(owner, off)
	if len(user.updates()) != 0 || len(owner.updates()) != 1 {
		t.Fatalf("after revocation: user %d updates, owner %d; want 0 and 1", len(user.updates()), len(owner.updates()))
	}
}
