package subscription

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/store"
)

// The grant tests' application: users with roles, private messages, notes
// only their owner reads, a board only admins read, and a table for
// signed-in clients.
func grantTables() []abi.TableDef {
	return []abi.TableDef{{
		Name:    "User",
		Columns: []abi.ColumnDef{{Name: "identity_id", Type: abi.TypeIdentity, PrimaryKey: true}, {Name: "role", Type: abi.TypeString}},
	}, {
		Name: "Msg",
		Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "sender", Type: abi.TypeIdentity},
			{Name: "recipient", Type: abi.TypeIdentity}, {Name: "text", Type: abi.TypeString}},
		Indexes: []abi.IndexDef{{Name: abi.IndexName("Msg", "sender"), Columns: []string{"sender"}}, {Name: abi.IndexName("Msg", "recipient"), Columns: []string{"recipient"}}},
	}, {
		Name:    "Note",
		Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "owner", Type: abi.TypeIdentity}, {Name: "body", Type: abi.TypeString}},
		Indexes: []abi.IndexDef{{Name: abi.IndexName("Note", "owner"), Columns: []string{"owner"}}},
	}, {
		Name:    "Board",
		Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "body", Type: abi.TypeString}},
	}, {
		Name:    "Pub",
		Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU64, PrimaryKey: true}, {Name: "v", Type: abi.TypeString}},
	}}
}

const isAdmin = ":caller in (select identity_id from User where role = 'admin')"

func grantDefs() []abi.GrantDef {
	return []abi.GrantDef{
		{Table: "User", Where: "identity_id = :caller"},
		{Table: "User", Where: isAdmin}, // admins see every user: a rule on the table it reads
		{Table: "Msg", Where: "sender = :caller or recipient = :caller"},
		{Table: "Msg", Where: isAdmin},
		{Table: "Note", Where: "owner = :caller"},
		{Table: "Board", Where: isAdmin},
		{Table: "Pub", To: "authenticated"},
	}
}

// grantModule is a module description that a test can swap (republish).
type grantModule struct {
	mu  sync.Mutex
	def *abi.ModuleDef
}

func newGrantModule(grants []abi.GrantDef) *grantModule {
	return &grantModule{def: &abi.ModuleDef{ABIVersion: abi.Version, Tables: grantTables(), Grants: grants}}
}

func (m *grantModule) get() *abi.ModuleDef { m.mu.Lock(); defer m.mu.Unlock(); return m.def }

func (m *grantModule) set(grants []abi.GrantDef) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.def = &abi.ModuleDef{ABIVersion: abi.Version, Tables: grantTables(), Grants: grants}
}

type grantFixture struct {
	*fixture
	mod *grantModule
	ids map[string]store.TableID
	pks map[string]store.IndexID
	// clients by connection, for the revoke handler.
	cmu     sync.Mutex
	clients map[abi.ConnectionID]*client
}

func newGrantFixture(t testing.TB, s *store.Store, name string, opts ...Option) *grantFixture {
	t.Helper()
	gf := &grantFixture{mod: newGrantModule(grantDefs()), ids: map[string]store.TableID{}, pks: map[string]store.IndexID{}, clients: map[abi.ConnectionID]*client{}}
	opts = append(opts, WithRevokeHandler(func(r Revoked) {
		gf.cmu.Lock()
		c := gf.clients[r.Conn]
		gf.cmu.Unlock()
		if c != nil {
			c.revoked(r)
		}
	}))
	if s == nil {
		var err error
		s, err = store.Open(context.Background(), t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	gf.fixture = newFixtureDef(t, s, name, grantTables(), gf.mod.get, opts...)
	for _, td := range grantTables() {
		gf.ids[td.Name] = must[store.TableID](t)(gf.db.TableID(td.Name))
		gf.pks[td.Name] = must[store.IndexID](t)(gf.db.IndexID(abi.IndexName(td.Name, td.Columns[0].Name)))
	}
	return gf
}

// connect registers a client that checks, at every message, that its cache
// equals a fresh query of each set under its grants at that offset, for the
// identity *caller holds when the message arrives.
func (gf *grantFixture) connect(id int, caller *abi.Identity, owner bool) *client {
	c := newClient(gf.t, connID(id))
	gf.cmu.Lock()
	gf.clients[c.id] = c
	gf.cmu.Unlock()
	c.verify = func(set uint32, off uint64) {
		who := *caller
		if c.nextCaller != nil {
			// An identity change is under way: updates before its
			// Recomputed one are still the old identity's.
			if tu, ok := c.msgs[len(c.msgs)-1].(*TransactionUpdate); ok && tu.Recomputed {
				who = *c.nextCaller
			}
		}
		if err := gf.compare(c, set, off, who, owner); err != "" {
			c.errs = append(c.errs, err)
		}
	}
	gf.e.Connect(c.id, *caller, owner, c.send)
	return c
}

// revoked drops a set the engine dropped.
func (c *client) revoked(r Revoked) {
	c.mu.Lock()
	c.msgs = append(c.msgs, r)
	delete(c.cache, r.QuerySetID)
	delete(c.queries, r.QuerySetID)
	c.dropped[r.QuerySetID] = true
	c.mu.Unlock()
}

// compare checks a set's cache (c.mu held) against freshGrants.
func (gf *grantFixture) compare(c *client, set uint32, off uint64, caller abi.Identity, owner bool) string {
	want, err := gf.freshGrants(off, caller, owner, c.queries[set]...)
	if err != nil {
		return fmt.Sprintf("set %d (%q) at offset %d: the client holds rows of a view it may not read: %v", set, c.queries[set], off, err)
	}
	for table, rows := range want {
		var got []string
		for r, n := range c.cache[set][table] {
			for i := 0; i < n; i++ {
				got = append(got, r)
			}
		}
		sort.Strings(got)
		if !equalRows(got, rows) {
			return fmt.Sprintf("set %d (%q) as %s at offset %d: %s = %v, want %v", set, c.queries[set], caller, off, table, got, rows)
		}
	}
	return ""
}

// freshGrants evaluates queries (each row once) against the state at off
// under the grants, by brute force: a row is visible when the reader owns
// the database, or a grant opens the table in full to it, or a rule allows
// it. It fails when a table is not readable at all.
func (gf *grantFixture) freshGrants(off uint64, caller abi.Identity, owner bool, queries ...string) (map[string][]string, error) {
	snap := gf.snapshot(off)
	tabs := gf.db.Tables()
	sch := schema{}
	for i := range tabs {
		sch[tabs[i].Name] = &tabs[i]
	}
	g, err := query.CompileGrants(gf.mod.get().Grants, sch)
	if err != nil {
		return nil, err
	}
	src := grantSource{db: gf.db, snap: snap}
	byTable := map[string][]*query.Plan{}
	for _, q := range queries {
		p := must[*query.Plan](gf.t)(query.Compile(must[*query.Query](gf.t)(query.Parse(q)), sch))
		byTable[p.Table.Name] = append(byTable[p.Table.Name], p)
	}
	out := map[string][]string{}
	for table, plans := range byTable {
		a := g.Table(table)
		all := owner || a != nil && (a.Public || a.Authenticated && !caller.IsZero())
		if !all && (a == nil || len(a.Rules) == 0) {
			return nil, fmt.Errorf("table %s is not readable", table)
		}
		tid := must[store.TableID](gf.t)(gf.db.TableID(table))
		def := must[*abi.TableDef](gf.t)(gf.db.Table(tid))
		it := must[*store.RowIter](gf.t)(snap.Scan(tid))
		rows := []string{}
		for raw, ok := it.Next(); ok; raw, ok = it.Next() {
			vals := must[[]abi.Value](gf.t)(abi.DecodeRow(def.ColumnTypes(), raw))
			env := &query.Env{Caller: caller, Source: src}
			allowed := all
			if a != nil {
				for _, r := range a.Rules {
					allowed = allowed || r.Match(vals, env)
				}
			}
			if !allowed {
				continue
			}
			for _, p := range plans {
				if p.Match(vals, env) {
					rows = append(rows, string(abi.AppendRowJSON(nil, def, vals)))
					break
				}
			}
		}
		it.Close()
		sort.Strings(rows)
		out[table] = rows
	}
	return out, nil
}

func (gf *grantFixture) row(table string, vals ...abi.Value) []byte {
	for _, td := range grantTables() {
		if td.Name == table {
			return must[[]byte](gf.t)(abi.EncodeRow(nil, td.ColumnTypes(), vals))
		}
	}
	gf.t.Fatalf("no table %s", table)
	return nil
}

func (gf *grantFixture) upsert(tx *store.Tx, table string, vals ...abi.Value) {
	gf.t.Helper()
	r := gf.row(table, vals...)
	if _, err := tx.Update(gf.pks[table], r); errors.Is(err, store.ErrNotFound) {
		must[[]byte](gf.t)(tx.Insert(gf.ids[table], r))
	} else if err != nil {
		gf.t.Fatal(err)
	}
}

func (gf *grantFixture) del(tx *store.Tx, table string, key abi.Value) {
	gf.t.Helper()
	w := abi.Writer{}
	if err := w.WriteValue(abi.Type{Kind: key.Kind}, key); err != nil {
		gf.t.Fatal(err)
	}
	if _, err := tx.DeleteByKey(gf.pks[table], w.Bytes()); err != nil {
		gf.t.Fatal(err)
	}
}

func role(id abi.Identity, r string) []abi.Value {
	return []abi.Value{abi.IdentityValue(id), abi.String(r)}
}
func msgRow(id uint64, from, to abi.Identity, text string) []abi.Value {
	return []abi.Value{abi.U64(id), abi.IdentityValue(from), abi.IdentityValue(to), abi.String(text)}
}

// settleAll waits for every client to process the latest commit and checks
// the clients' own findings.
func (gf *grantFixture) settleAll(cs ...*client) uint64 {
	gf.t.Helper()
	off := gf.db.Snapshot().Offset()
	for _, c := range cs {
		gf.settle(c, off)
	}
	return off
}

// checkNow compares every live set of c with a fresh query at off.
func (gf *grantFixture) checkNow(c *client, off uint64, caller abi.Identity, owner bool) {
	gf.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for set := range c.cache {
		if err := gf.compare(c, set, off, caller, owner); err != "" {
			gf.t.Fatal(err)
		}
	}
}

func TestGrantRowRules(t *testing.T) {
	gf := newGrantFixture(t, nil, "g")
	alice, bob, carol, anon := ident(1), ident(2), ident(3), abi.Identity{}
	gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "Msg", msgRow(1, alice, bob, "hi bob")...)
		gf.upsert(tx, "Msg", msgRow(2, bob, alice, "hi alice")...)
		gf.upsert(tx, "Msg", msgRow(3, carol, carol, "note to self")...)
	})
	waitEngine(t, gf.e, 1)
	ca := gf.connect(1, &alice, false)
	cb := gf.connect(2, &bob, false)
	cc := gf.connect(3, &carol, false)
	cn := gf.connect(4, &anon, false)
	co := gf.connect(5, &anon, true)
	for _, c := range []*client{ca, cb, cc, cn, co} {
		must[*SubscribeApplied](t)(c.subscribe(gf.e, 1, "SELECT * FROM Msg"))
	}
	gf.settleAll(ca, cb, cc, cn, co)
	counts := func() []int {
		return []int{len(ca.rows(1, "Msg")), len(cb.rows(1, "Msg")), len(cc.rows(1, "Msg")), len(cn.rows(1, "Msg")), len(co.rows(1, "Msg"))}
	}
	if got := fmt.Sprint(counts()); got != "[2 2 1 0 3]" {
		t.Fatalf("initial rows per reader (alice bob carol anonymous owner) = %s, want [2 2 1 0 3]", got)
	}
	nb := len(cb.updates())
	// Message 1 is readdressed from bob to carol: bob gets a delete, carol
	// an insert, alice an update; the anonymous client nothing, not even a
	// delete (Supabase realtime#1114, #585).
	gf.tx(func(tx *store.Tx) { gf.upsert(tx, "Msg", msgRow(1, alice, carol, "hi carol")...) })
	gf.settleAll(ca, cb, cc, cn, co)
	if got := fmt.Sprint(counts()); got != "[2 1 2 0 3]" {
		t.Fatalf("after readdressing, rows = %s, want [2 1 2 0 3]", got)
	}
	ups := cb.updates()
	if len(ups) != nb+1 || len(ups[nb].QuerySets[0].Tables[0].Deletes) != 1 || len(ups[nb].QuerySets[0].Tables[0].Inserts) != 0 {
		t.Fatalf("bob's update = %v, want one delete", normalize(ups[nb:]))
	}
	if len(cn.updates()) != 0 {
		t.Fatalf("the anonymous client received %v", normalize(cn.updates()))
	}
	// A one-off query sees the same rows; its subquery sees only readable
	// rows too.
	res := must[*Result](t)(gf.e.Query(context.Background(), Reader{Caller: bob}, "SELECT COUNT(*) FROM Msg"))
	if string(res.Rows[0]) != `{"count":1}` {
		t.Fatalf("bob counts %s", res.Rows[0])
	}
	res = must[*Result](t)(gf.e.Query(context.Background(), Reader{Caller: carol}, "SELECT text FROM Msg WHERE sender IN (SELECT sender FROM Msg WHERE recipient = :caller)"))
	if len(res.Rows) != 2 { // carol's note to self, alice's message to carol
		t.Fatalf("carol's subquery query = %s", res.Rows)
	}
	res = must[*Result](t)(gf.e.Query(context.Background(), Reader{Caller: bob}, "SELECT text FROM Msg WHERE sender IN (SELECT sender FROM Msg WHERE recipient = :caller)"))
	if len(res.Rows) != 0 { // bob receives nothing now
		t.Fatalf("bob's subquery query = %s", res.Rows)
	}
	res = must[*Result](t)(gf.e.Query(context.Background(), Reader{Owner: true}, "SELECT * FROM Msg"))
	if len(res.Rows) != 3 || !res.AsOwner || len(res.Privileged) != 1 {
		t.Fatalf("owner query = %+v", res)
	}
	// A table no grant opens fails; one opened to signed-in clients fails
	// for the anonymous reader only.
	for _, tc := range []struct {
		r    Reader
		q    string
		want string
	}{
		{Reader{Caller: anon}, "SELECT * FROM Pub", `only signed-in clients may read table "Pub"`},
		{Reader{Caller: alice}, "SELECT * FROM Msg WHERE sender IN (SELECT identity_id FROM Nope)", `no table named "Nope"`},
		{Reader{Caller: alice}, "SELECT * FROM Msg WHERE nope = 1", `has no column "nope"`},
	} {
		if _, err := gf.e.Query(context.Background(), tc.r, tc.q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.q, err, tc.want)
		}
	}
	if _, err := gf.e.Query(context.Background(), Reader{Caller: alice}, "SELECT * FROM Pub"); err != nil {
		t.Errorf("a signed-in reader cannot read Pub: %v", err)
	}
	for _, c := range []*client{ca, cb, cc, cn, co} {
		c.check()
	}
}

// The rules of the grants are indexed: 50 readers of an owner-only table
// are not each tested against every changed row. A role rule
// (`:caller in (...)`) beside indexed rules makes the reader conditional:
// matched against every row only in a transaction where the rule holds.
func TestGrantRulesAreIndexed(t *testing.T) {
	gf := newGrantFixture(t, nil, "g")
	alice := ident(1)
	gf.tx(func(tx *store.Tx) { gf.upsert(tx, "User", role(alice, "admin")...) })
	waitEngine(t, gf.e, 1)
	clients := map[int]*client{}
	for i := 1; i <= 50; i++ {
		id := ident(i)
		clients[i] = gf.connect(i, &id, false)
		must[*SubscribeApplied](t)(clients[i].subscribe(gf.e, 1, "SELECT * FROM Note", "SELECT * FROM Msg"))
	}
	gf.e.mu.Lock()
	for _, table := range []string{"Note", "Msg"} {
		ts := gf.e.tables[table]
		if ts == nil || len(ts.scan) != 0 {
			gf.e.mu.Unlock()
			t.Fatalf("%s: queries scanned for every row: %+v", table, ts)
		}
	}
	note, msg := gf.e.tables["Note"], gf.e.tables["Msg"]
	if len(note.eq) != 50 || len(note.cond) != 0 {
		t.Errorf("Note: %d index entries and %d conditional queries, want 50 (one per owner) and 0", len(note.eq), len(note.cond))
	}
	if len(msg.eq) != 100 || len(msg.cond) != 50 {
		t.Errorf("Msg: %d index entries and %d conditional queries, want 100 (sender and recipient per reader) and 50 (the admin rule)", len(msg.eq), len(msg.cond))
	}
	gf.e.mu.Unlock()
	// Alice (admin) gets every message; bob his own only.
	gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "Msg", msgRow(1, ident(2), ident(3), "x")...)
		gf.upsert(tx, "Msg", msgRow(2, ident(4), ident(5), "y")...)
	})
	var all []*client
	for _, c := range clients {
		all = append(all, c)
	}
	gf.settleAll(all...)
	if a, b := len(clients[1].rows(1, "Msg")), len(clients[2].rows(1, "Msg")); a != 2 || b != 1 {
		t.Fatalf("alice (admin) sees %d messages, bob %d; want 2 and 1", a, b)
	}
}

func TestGrantRoleChange(t *testing.T) {
	gf := newGrantFixture(t, nil, "g")
	alice, bob := ident(1), ident(2)
	gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "User", role(alice, "member")...)
		gf.upsert(tx, "User", role(bob, "member")...)
		gf.upsert(tx, "Board", abi.U64(1), abi.String("agenda"))
		gf.upsert(tx, "Msg", msgRow(1, bob, ident(3), "psst")...)
	})
	waitEngine(t, gf.e, 1)
	ca := gf.connect(1, &alice, false)
	cb := gf.connect(2, &bob, false)
	must[*SubscribeApplied](t)(ca.subscribe(gf.e, 1, "SELECT * FROM Board", "SELECT * FROM Msg", "SELECT * FROM User"))
	must[*SubscribeApplied](t)(cb.subscribe(gf.e, 1, "SELECT * FROM Board", "SELECT * FROM User"))
	gf.settleAll(ca, cb)
	if n := len(ca.rows(1, "Board")); n != 0 {
		t.Fatalf("a member sees %d board rows", n)
	}
	if n := len(ca.rows(1, "User")); n != 1 {
		t.Fatalf("a member sees %d users, want itself", n)
	}
	// Alice becomes admin in the same transaction that adds a board row:
	// one update brings her the whole board, every message and every user.
	nb := len(cb.updates())
	off := gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "User", role(alice, "admin")...)
		gf.upsert(tx, "Board", abi.U64(2), abi.String("budget"))
	})
	gf.settleAll(ca, cb)
	last := ca.updates()[len(ca.updates())-1]
	if last.Offset != off {
		t.Fatalf("alice's last update is at %d, want %d", last.Offset, off)
	}
	if got := []int{len(ca.rows(1, "Board")), len(ca.rows(1, "Msg")), len(ca.rows(1, "User"))}; fmt.Sprint(got) != "[2 1 2]" {
		t.Fatalf("admin alice sees (board, msg, user) %v, want [2 1 2]", got)
	}
	if len(cb.updates()) != nb {
		t.Fatalf("bob (not admin) received %v", normalize(cb.updates()[nb:]))
	}
	// Demoted while a board row changes: deletes of what she had only.
	gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "User", role(alice, "member")...)
		gf.upsert(tx, "Board", abi.U64(1), abi.String("agenda v2"))
	})
	gf.settleAll(ca, cb)
	if got := []int{len(ca.rows(1, "Board")), len(ca.rows(1, "Msg")), len(ca.rows(1, "User"))}; fmt.Sprint(got) != "[0 0 1]" {
		t.Fatalf("demoted alice sees (board, msg, user) %v, want [0 0 1]", got)
	}
	// A change to User that keeps the roles recomputes nothing.
	na := len(ca.updates())
	gf.tx(func(tx *store.Tx) { gf.upsert(tx, "User", role(ident(9), "member")...) })
	gf.settleAll(ca, cb)
	if len(ca.updates()) != na {
		t.Fatalf("an unrelated user row sent alice %v", normalize(ca.updates()[na:]))
	}
	ca.check()
	cb.check()
}

func TestGrantIdentityChange(t *testing.T) {
	for _, m := range sendModes {
		t.Run(m.name, func(t *testing.T) { testGrantIdentityChange(t, m.opts...) })
	}
}

func testGrantIdentityChange(t *testing.T, opts ...Option) {
	gf := newGrantFixture(t, nil, "g", opts...)
	alice, bob, anon := ident(1), ident(2), abi.Identity{}
	gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "Msg", msgRow(1, alice, bob, "hi")...)
		gf.upsert(tx, "Note", abi.U64(1), abi.IdentityValue(alice), abi.String("alice's"))
		gf.upsert(tx, "Pub", abi.U64(1), abi.String("for members"))
	})
	waitEngine(t, gf.e, 1)
	who := anon
	c := gf.connect(1, &who, false)
	must[*SubscribeApplied](t)(c.subscribe(gf.e, 1, "SELECT * FROM Msg", "SELECT * FROM Note"))
	if _, err := c.subscribe(gf.e, 2, "SELECT * FROM Pub"); !errors.Is(err, ErrPrivateTable) {
		t.Fatalf("anonymous subscribe to Pub: %v", err)
	}
	gf.settleAll(c)
	who = alice
	gf.e.SetIdentity(c.id, alice)
	gf.settleAll(c)
	if got := []int{len(c.rows(1, "Msg")), len(c.rows(1, "Note"))}; fmt.Sprint(got) != "[1 1]" {
		t.Fatalf("signed in as alice: (msg, note) %v", got)
	}
	last := c.updates()[len(c.updates())-1]
	if !last.Recomputed {
		t.Fatal("the identity change's update is not marked Recomputed")
	}
	must[*SubscribeApplied](t)(c.subscribe(gf.e, 2, "SELECT * FROM Pub"))
	who = bob
	gf.e.SetIdentity(c.id, bob)
	gf.settleAll(c)
	if got := []int{len(c.rows(1, "Msg")), len(c.rows(1, "Note")), len(c.rows(2, "Pub"))}; fmt.Sprint(got) != "[1 0 1]" {
		t.Fatalf("as bob: (msg, note, pub) %v", got)
	}
	// The session lapses: the set on Pub is dropped with a reason; the
	// message set is emptied.
	who = anon
	revoked := gf.e.SetIdentity(c.id, anon)
	gf.settleAll(c)
	if len(revoked) != 1 || revoked[0].QuerySetID != 2 || !errors.Is(revoked[0].Err, ErrPrivateTable) {
		t.Fatalf("revoked = %+v", revoked)
	}
	c.mu.Lock()
	_, still := c.cache[2]
	c.mu.Unlock()
	if still {
		t.Fatal("the client was not told its Pub set was dropped")
	}
	if n := len(c.rows(1, "Msg")); n != 0 {
		t.Fatalf("anonymous again, the client still has %d messages", n)
	}
	c.check()
}

func TestGrantModuleChanged(t *testing.T) {
	gf := newGrantFixture(t, nil, "g")
	alice, bob := ident(1), ident(2)
	gf.tx(func(tx *store.Tx) {
		gf.upsert(tx, "Note", abi.U64(1), abi.IdentityValue(alice), abi.String("a"))
		gf.upsert(tx, "Note", abi.U64(2), abi.IdentityValue(bob), abi.String("b"))
	})
	waitEngine(t, gf.e, 1)
	c := gf.connect(1, &alice, false)
	must[*SubscribeApplied](t)(c.subscribe(gf.e, 1, "SELECT * FROM Note"))
	must[*SubscribeApplied](t)(c.subscribe(gf.e, 2, "SELECT * FROM Pub"))
	gf.settleAll(c)
	// Same grants, republished: nothing happens.
	gf.mod.set(grantDefs())
	if r := gf.e.ModuleChanged(); len(r) != 0 {
		t.Fatalf("an identical republish revoked %v", r)
	}
	n := len(c.updates())
	// Notes become public; Pub loses its grant.
	var grants []abi.GrantDef
	for _, g := range grantDefs() {
		if g.Table != "Note" && g.Table != "Pub" {
			grants = append(grants, g)
		}
	}
	gf.mod.set(append(grants, abi.GrantDef{Table: "Note", To: "public"}))
	r := gf.e.ModuleChanged()
	gf.settleAll(c)
	if len(r) != 1 || r[0].QuerySetID != 2 || !strings.Contains(r[0].Err.Error(), "the database's module was updated") {
		t.Fatalf("revoked = %+v", r)
	}
	if ups := c.updates(); len(ups) != n+1 || !ups[n].Recomputed || len(c.rows(1, "Note")) != 2 {
		t.Fatalf("after the republish: updates %v, notes %v", normalize(ups[n:]), c.rows(1, "Note"))
	}
	c.check()
}

// The owner reads everything, and says so: in the result and in the log.
func TestGrantOwnerReadsAreLogged(t *testing.T) {
	var buf syncBuffer
	gf := newGrantFixture(t, nil, "g", WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	gf.tx(func(tx *store.Tx) { gf.upsert(tx, "Note", abi.U64(1), abi.IdentityValue(ident(1)), abi.String("n")) })
	waitEngine(t, gf.e, 1)
	res := must[*Result](t)(gf.e.Query(context.Background(), Reader{Owner: true}, "SELECT * FROM Note"))
	if !res.AsOwner || len(res.Rows) != 1 || len(res.Privileged) != 1 {
		t.Fatalf("owner query = %+v", res)
	}
	anon := abi.Identity{}
	c := gf.connect(1, &anon, true)
	must[*SubscribeApplied](t)(c.subscribe(gf.e, 1, "SELECT * FROM Note", "SELECT * FROM Pub"))
	log := buf.String()
	for _, want := range []string{`msg="query: the database owner read rows clients may not read`, `tables=[Note]`, `msg="subscription: the database owner subscribed to rows clients may not read`, `tables="[Note Pub]"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	// A client's reads are not logged as privileged.
	buf.Reset()
	bob := ident(2)
	cb := gf.connect(2, &bob, false)
	must[*SubscribeApplied](t)(cb.subscribe(gf.e, 1, "SELECT * FROM Note"))
	if strings.Contains(buf.String(), "owner") {
		t.Errorf("a client's read was logged as the owner's: %s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Reset()         { s.mu.Lock(); defer s.mu.Unlock(); s.b.Reset() }
