package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

type testSchema map[string]*abi.TableDef

func (s testSchema) Table(name string) (*abi.TableDef, bool) { t, ok := s[name]; return t, ok }

var schema = testSchema{
	"User": {Name: "User", Columns: []abi.ColumnDef{
		{Name: "identity_id", Type: abi.TypeIdentity, PrimaryKey: true},
		{Name: "username", Type: abi.TypeString},
		{Name: "role", Type: abi.TypeString},
		{Name: "age", Type: abi.TypeU8},
		{Name: "nick", Type: abi.OptionOf(abi.TypeString)},
		{Name: "active", Type: abi.TypeBool},
	}},
	"PrivateMessage": {Name: "PrivateMessage", Columns: []abi.ColumnDef{
		{Name: "id", Type: abi.TypeU64, PrimaryKey: true},
		{Name: "sender", Type: abi.TypeIdentity},
		{Name: "recipient", Type: abi.TypeIdentity},
		{Name: "text", Type: abi.TypeString},
		{Name: "sent", Type: abi.TypeTimestamp},
	}},
}

var (
	alice = abi.Identity{0: 0xa1}
	bob   = abi.Identity{0: 0xb0}
	carol = abi.Identity{0: 0xc0}
)

type rows map[string][][]abi.Value

func (r rows) ScanTable(table string, fn func([]abi.Value) bool) error {
	for _, row := range r[table] {
		if !fn(row) {
			break
		}
	}
	return nil
}

func user(id abi.Identity, name, role string, age uint8) []abi.Value {
	return []abi.Value{abi.IdentityValue(id), abi.String(name), abi.String(role), abi.U8(age), abi.None(), abi.Bool(age >= 18)}
}

func msg(id uint64, from, to abi.Identity, text string) []abi.Value {
	return []abi.Value{abi.U64(id), abi.IdentityValue(from), abi.IdentityValue(to), abi.String(text), abi.Timestamp(int64(id) * 1e6)}
}

var db = rows{
	"User": {user(alice, "alice", "admin", 30), user(bob, "bob", "member", 17), user(carol, "o'neil", "member", 44)},
	"PrivateMessage": {
		msg(1, alice, bob, "hi bob"), msg(2, bob, alice, "hi alice"), msg(3, carol, bob, "hey"), msg(4, carol, carol, "note"),
	},
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		query  string
		caller abi.Identity
		want   []int // indexes of matching rows
	}{
		{"SELECT * FROM User", alice, []int{0, 1, 2}},
		{"select * from User where age >= 18", alice, []int{0, 2}},
		{"SELECT * FROM User WHERE username = 'o''neil'", alice, []int{2}},
		{"SELECT * FROM User WHERE NOT active", alice, []int{1}},
		{"SELECT * FROM User WHERE active = FALSE OR role = 'admin'", alice, []int{0, 1}},
		{"SELECT * FROM User WHERE nick = NULL", alice, []int{0, 1, 2}},
		{"SELECT * FROM User WHERE age > 10 AND (age < 20 OR age = 44)", alice, []int{1, 2}},
		{"SELECT * FROM User WHERE identity_id = :caller", bob, []int{1}},
		{"SELECT * FROM PrivateMessage WHERE sender = :caller OR recipient = :caller", bob, []int{0, 1, 2}},
		{"SELECT * FROM PrivateMessage WHERE sender = :caller or recipient = :caller", carol, []int{2, 3}},
		{"SELECT * FROM PrivateMessage WHERE :caller IN (SELECT identity_id FROM User WHERE role = 'admin')", alice, []int{0, 1, 2, 3}},
		{"SELECT * FROM PrivateMessage WHERE :caller in (select identity_id from User where role = 'admin')", bob, nil},
		{"SELECT * FROM PrivateMessage WHERE sent >= '1970-01-01T00:00:03Z'", bob, []int{2, 3}},
		{"SELECT * FROM PrivateMessage WHERE sender = '" + strings.Repeat("c0", 1) + strings.Repeat("00", 31) + "';", bob, []int{2, 3}},
		{`SELECT * FROM "User" WHERE "age" <> 30`, alice, []int{1, 2}},
	}
	for _, tt := range tests {
		q, err := Parse(tt.query)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.query, err)
			continue
		}
		plan, err := Compile(q, schema)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.query, err)
			continue
		}
		env := &Env{Caller: tt.caller, Source: db}
		var got []int
		for i, row := range db[plan.Table.Name] {
			if plan.Match(row, env) {
				got = append(got, i)
			}
		}
		if env.Err() != nil {
			t.Errorf("%q: env error %v", tt.query, env.Err())
		}
		if !equalInts(got, tt.want) {
			t.Errorf("%q as %x: matched %v, want %v", tt.query, tt.caller[:1], got, tt.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		query   string
		pos     string
		wantMsg string
	}{
		{"", "1:1", "expected SELECT"},
		{"SELECT * User", "1:10", "expected FROM"},
		{"SELECT * FROM", "1:14", "expected a table name, found the end"},
		{"SELECT * FROM User WHERE", "1:25", "expected a column, a value or :caller"},
		{"SELECT * FROM User WHERE (age = 1", "1:34", "expected ) to close the ( at 1:26"},
		{"SELECT * FROM User WHERE name = 'abc", "1:33", "string literal is not closed"},
		{"SELECT * FROM User WHERE id = :me", "1:31", "unknown parameter :me"},
		{"SELECT * FROM User\nWHERE a ! b", "2:9", "did you mean !="},
		{"SELECT * FROM User; SELECT * FROM Post", "1:21", "one statement at a time"},
		{"SELECT * FROM User WHERE :caller IN (SELECT * FROM User)", "1:38", "exactly one column"},
		{"SELECT * FROM User WHERE a NOT IN (SELECT b FROM c)", "1:28", "NOT goes before a condition"},
		{"SELECT * FROM User WHERE a = 1 @", "1:32", "unexpected character '@'"},
		{"SELECT * FROM User WHERE " + strings.Repeat("(", 100) + "a = 1" + strings.Repeat(")", 100), "", "nested deeper"},
		{"SELECT * FROM User WHERE " + strings.Repeat("NOT ", 100) + "a", "", "nested deeper"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.query)
		var qe *Error
		if !errors.As(err, &qe) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error = %v, want a *query.Error", tt.query, err)
			continue
		}
		if !strings.Contains(qe.Msg, tt.wantMsg) || tt.pos != "" && qe.Pos.String() != tt.pos {
			t.Errorf("Parse(%q) = %v; want %q at %s", tt.query, err, tt.wantMsg, tt.pos)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		query   string
		kind    error
		wantMsg string
	}{
		{"SELECT * FROM Nope", ErrUnknownTable, `no table named "Nope"`},
		{"SELECT email FROM User", ErrUnknownColumn, `table User has no column "email" (its columns: identity_id, username, role, age, nick, active)`},
		{"SELECT * FROM User WHERE email = 'x'", ErrUnknownColumn, "no column"},
		{"SELECT * FROM User WHERE age = 'old'", ErrType, "'old' is not a u8: write a whole number"},
		{"SELECT * FROM User WHERE age = 300", ErrType, "from 0 to 255"},
		{"SELECT * FROM User WHERE age = username", ErrType, "cannot compare column age (u8) with column username (String)"},
		{"SELECT * FROM User WHERE age", ErrType, "not a condition"},
		{"SELECT * FROM User WHERE username = :caller", ErrType, "cannot compare column username (String) with :caller (IdentityId)"},
		{"SELECT * FROM User WHERE 1 = 1", ErrType, "two constants"},
		{"SELECT * FROM User WHERE age = NULL", ErrType, "only Option columns can be NULL"},
		{"SELECT * FROM User WHERE identity_id = 'zz'", ErrType, "64 hex digits"},
		{"SELECT * FROM User WHERE age IN (SELECT username FROM User)", ErrType, "cannot be IN"},
		{"SELECT * FROM User WHERE :caller IN (SELECT identity_id FROM Ghost)", ErrUnknownTable, "Ghost"},
	}
	for _, tt := range tests {
		q, err := Parse(tt.query)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.query, err)
			continue
		}
		_, err = Compile(q, schema)
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("Compile(%q) error = %v; want %v containing %q", tt.query, err, tt.kind, tt.wantMsg)
		}
	}
}

func TestCanonicalAndEqualities(t *testing.T) {
	a, _ := Parse("select *   from User where role='admin' and identity_id = :caller")
	b, _ := Parse("SELECT * FROM User WHERE (role = 'admin') AND (identity_id=:caller)")
	if a.Canonical() != b.Canonical() {
		t.Fatalf("canonical forms differ:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	if want := "SELECT * FROM User WHERE (role = 'admin' AND identity_id = :caller)"; a.Canonical() != want {
		t.Fatalf("Canonical = %s, want %s", a.Canonical(), want)
	}
	p, err := Compile(a, schema)
	if err != nil {
		t.Fatal(err)
	}
	eq := p.Equalities()
	if len(eq) != 2 || eq[0].Column != 2 || eq[0].Value.Str != "admin" || eq[1].Column != 0 || !eq[1].Caller {
		t.Fatalf("Equalities = %+v", eq)
	}
	if !p.UsesCaller {
		t.Fatal("UsesCaller not set")
	}
	or, _ := Parse("SELECT * FROM User WHERE role = 'admin' OR age = 1")
	po, _ := Compile(or, schema)
	if len(po.Equalities()) != 0 {
		t.Fatalf("an OR gave equalities %+v", po.Equalities())
	}
}

func TestGrantExpr(t *testing.T) {
	e, err := ParseExpr(":caller in (select identity_id from User where role = 'admin')")
	if err != nil {
		t.Fatal(err)
	}
	p, err := CompileExpr(e, schema["PrivateMessage"], schema)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Reads) != 1 || p.Reads[0] != "User" {
		t.Fatalf("Reads = %v, want [User]", p.Reads)
	}
	row := db["PrivateMessage"][0]
	if !p.Match(row, &Env{Caller: alice, Source: db}) || p.Match(row, &Env{Caller: bob, Source: db}) {
		t.Fatal("admin grant evaluated wrongly")
	}
	if _, err := ParseExpr("sender = :caller extra"); err == nil {
		t.Fatal("ParseExpr accepted trailing tokens")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM User WHERE identity_id = :caller",
		"select a, b from t where not (x <= -1.5e3 or y = 'it''s') and z in (select q from r where s != 0xff)",
		"SELECT COUNT(*) FROM t;",
		`SELECT "a b" FROM "t" -- comment`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			return
		}
		// A query that parses must reparse from its canonical form to the same canonical form.
		again, err := Parse(q.Canonical())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", q.Canonical(), src, err)
		}
		if again.Canonical() != q.Canonical() {
			t.Fatalf("canonical form not stable: %q then %q", q.Canonical(), again.Canonical())
		}
		_, _ = Compile(q, schema)
	})
}
