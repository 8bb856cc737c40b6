package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

func TestCompileGrants(t *testing.T) {
	pos := abi.Pos{File: "s.spacetimedb", Line: 7, Column: 1}
	g, err := CompileGrants([]abi.GrantDef{
		{Table: "User", To: "authenticated", Pos: pos},
		{Table: "User", Where: "identity_id = :caller", Pos: pos},
		{Table: "PrivateMessage", Where: "sender = :caller or recipient = :caller", Pos: pos},
		{Table: "PrivateMessage", Where: ":caller in (select identity_id from User where role = 'admin')", Pos: pos},
	}, schema)
	if err != nil {
		t.Fatal(err)
	}
	u := g.Table("User")
	if !u.Authenticated || u.Public || len(u.Rules) != 1 || !u.RulesUseCaller {
		t.Fatalf("User access = %+v", u)
	}
	pm := g.Table("PrivateMessage")
	if len(pm.Rules) != 3 || len(pm.Reads) != 1 || pm.Reads[0] != "User" {
		t.Fatalf("PrivateMessage access = %+v", pm)
	}
	if g.Table("Nope") != nil {
		t.Fatal("a table without grants has access")
	}
	visible := func(caller abi.Identity) []uint64 {
		var ids []uint64
		env := &Env{Caller: caller, Source: db}
		for _, row := range db["PrivateMessage"] {
			for _, r := range pm.Rules {
				if r.Match(row, env) {
					ids = append(ids, row[0].Bits)
					break
				}
			}
		}
		return ids
	}
	if got := visible(bob); len(got) != 3 { // 1, 2, 3
		t.Errorf("bob sees %v", got)
	}
	if got := visible(alice); len(got) != 4 { // admin
		t.Errorf("alice (admin) sees %v", got)
	}
	if got := visible(carol); len(got) != 2 { // 3, 4
		t.Errorf("carol sees %v", got)
	}
	if got := visible(abi.Identity{}); len(got) != 0 {
		t.Errorf("anonymous sees %v", got)
	}
	// Same grants in another order and spelling: same fingerprint.
	g2, _ := CompileGrants([]abi.GrantDef{
		{Table: "User", Where: "IDENTITY_ID = :caller", Pos: pos},
		{Table: "User", To: "authenticated", Pos: pos},
	}, schema)
	if g2.Table("User").Fingerprint == u.Fingerprint {
		t.Error("different column spelling gave the same fingerprint") // identifiers are case sensitive
	}
	g3, _ := CompileGrants([]abi.GrantDef{
		{Table: "User", Where: "(identity_id=:caller)", Pos: pos},
		{Table: "User", To: "authenticated", Pos: pos},
	}, schema)
	if g3.Table("User").Fingerprint != u.Fingerprint {
		t.Errorf("fingerprints differ: %q vs %q", g3.Table("User").Fingerprint, u.Fingerprint)
	}
}

func TestGrantErrors(t *testing.T) {
	pos := abi.Pos{File: "schema.spacetimedb", Line: 12, Column: 1}
	for _, tc := range []struct {
		name string
		g    abi.GrantDef
		kind error
		want string
	}{
		{"unknown table", abi.GrantDef{Table: "Usr", To: "public"}, nil, `schema.spacetimedb:12:1: grant_access Usr to public: no table named "Usr"`},
		{"unknown column", abi.GrantDef{Table: "User", Where: "identity = :caller"}, ErrUnknownColumn, `schema.spacetimedb:12:1: grant_access User where identity = :caller (column 1 of the rule): table User has no column "identity"`},
		{"syntax", abi.GrantDef{Table: "User", Where: "identity_id = = :caller"}, ErrSyntax, "(column 15 of the rule): expected a column"},
		{"second line", abi.GrantDef{Table: "User", Where: "identity_id = :caller\n or age = 'x'"}, ErrType, "(line 2, column 11 of the rule): 'x' is not a u8"},
		{"unknown subquery table", abi.GrantDef{Table: "User", Where: ":caller in (select identity_id from Admins)"}, ErrUnknownTable, `no table named "Admins"`},
		{"subquery column type", abi.GrantDef{Table: "User", Where: ":caller in (select username from User)"}, ErrType, "cannot be IN a set of User.username"},
		{"not a condition", abi.GrantDef{Table: "User", Where: "username"}, ErrType, "not a condition"},
		{"bad audience", abi.GrantDef{Table: "User", To: "everyone"}, nil, `unknown audience "everyone"`},
		{"empty rule", abi.GrantDef{Table: "User", Where: "  "}, nil, "the rule is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.g.Pos = pos
			g, err := CompileGrants([]abi.GrantDef{tc.g, {Table: "PrivateMessage", To: "public", Pos: pos}}, schema)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrGrant) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
				t.Errorf("error %v is not %v/%v", err, ErrGrant, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "schema.spacetimedb:12:1: ") {
				t.Errorf("error %q does not start with the statement's position", err)
			}
			if g.Table("PrivateMessage") == nil || len(g.Broken) != 1 {
				t.Errorf("the good grant was lost or Broken = %v", g.Broken)
			}
		})
	}
}

func TestSameSubqueries(t *testing.T) {
	e := mustExpr(t, ":caller in (select identity_id from User where role = 'admin')")
	p, err := CompileExpr(e, schema["PrivateMessage"], schema)
	if err != nil {
		t.Fatal(err)
	}
	before := rows{"User": {user(alice, "alice", "admin", 30), user(bob, "bob", "member", 17)}}
	after := rows{"User": {user(alice, "alice", "admin", 30), user(bob, "bob", "admin", 17)}}
	envs := func(c abi.Identity) (*Env, *Env) {
		return &Env{Caller: c, Source: before}, &Env{Caller: c, Source: after}
	}
	if a, b := envs(alice); !p.SameSubqueries(a, b) {
		t.Error("alice's membership did not change, yet SameSubqueries is false")
	}
	if a, b := envs(bob); p.SameSubqueries(a, b) {
		t.Error("bob became admin, yet SameSubqueries is true")
	}
	// A row-dependent IN compares whole sets.
	q := mustExpr(t, "sender in (select identity_id from User where role = 'admin')")
	pq, err := CompileExpr(q, schema["PrivateMessage"], schema)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := envs(alice); pq.SameSubqueries(a, b) {
		t.Error("the admin set changed, yet SameSubqueries is true for a row-dependent IN")
	}
	// A shared cache computes a caller-free subquery once per state.
	counting := &countingSource{rows: before}
	c := NewCache()
	for _, who := range []abi.Identity{alice, bob, carol} {
		p.Match(db["PrivateMessage"][0], &Env{Caller: who, Source: counting, Cache: c})
	}
	if counting.scans != 1 {
		t.Errorf("%d scans with a shared cache, want 1", counting.scans)
	}
	c2 := NewCache()
	c2.Keep(c, func(string) bool { return false })
	p.Match(db["PrivateMessage"][0], &Env{Caller: bob, Source: counting, Cache: c2})
	if counting.scans != 1 {
		t.Errorf("Keep did not carry the result over (%d scans)", counting.scans)
	}
	c3 := NewCache()
	c3.Keep(c, func(t string) bool { return t == "User" })
	p.Match(db["PrivateMessage"][0], &Env{Caller: bob, Source: counting, Cache: c3})
	if counting.scans != 2 {
		t.Errorf("Keep carried over a result of a changed table (%d scans)", counting.scans)
	}
}

type countingSource struct {
	rows  rows
	scans int
}

func (c *countingSource) ScanTable(table string, fn func([]abi.Value) bool) error {
	c.scans++
	return c.rows.ScanTable(table, fn)
}

func mustExpr(t *testing.T, src string) Expr {
	t.Helper()
	e, err := ParseExpr(src)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
