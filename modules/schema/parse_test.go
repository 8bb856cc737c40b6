package schema

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// TestTutorialSchema parses the tutorial's schema exactly as the tutorial
// prints it (no indentation, comments, trailing commas).
func TestTutorialSchema(t *testing.T) {
	m, err := ParseFile(filepath.Join("testdata", "tutorial.spacetimedb"))
	if err != nil {
		t.Fatal(err)
	}
	want := &abi.ModuleDef{
		ABIVersion: abi.Version,
		Tables: []abi.TableDef{
			{
				Name: "User",
				Columns: []abi.ColumnDef{
					{Name: "identity_id", Type: abi.TypeIdentity, PrimaryKey: true, Identity: true},
					{Name: "username", Type: abi.TypeString},
					{Name: "email", Type: abi.TypeString},
					{Name: "created_at", Type: abi.TypeU64},
				},
				Indexes: []abi.IndexDef{{Name: "User_identity_id_idx", Columns: []string{"identity_id"}, Unique: true}},
			},
			{
				Name: "Post",
				Columns: []abi.ColumnDef{
					{Name: "post_id", Type: abi.TypeU64, PrimaryKey: true},
					{Name: "author_identity_id", Type: abi.TypeIdentity},
					{Name: "content", Type: abi.TypeString},
					{Name: "created_at", Type: abi.TypeU64},
				},
				Indexes: []abi.IndexDef{{Name: "Post_post_id_idx", Columns: []string{"post_id"}, Unique: true}},
			},
		},
		Reducers: []abi.ReducerDef{},
	}
	assertJSONEqual(t, m, want)
}

func assertJSONEqual(t *testing.T, got, want any) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
}

func TestFullLanguage(t *testing.T) {
	src := `
/* block comment */
#[spacetimedb(index(btree, columns = [sender, sent_at]))]
table PrivateMessage {
    #[spacetimedb(primarykey)] #[spacetimedb(autoinc)]
    id: u64,
    #[spacetimedb(index(btree))]
    sender: IdentityId,
    #[spacetimedb(unique)]
    nonce: i64,
    recipient: IdentityId,
    sent_at: Timestamp,
    body: Option<String>,
    attachments: Vec<Bytes>,
    flags: Vec<Option<u8>>,
    ratio: f64
}
table AdminDashboard { identity_id: IdentityId, role: String, } table User { identity_id: IdentityId, role: String }
reducer init();
reducer client_connected();
reducer client_disconnected();
reducer send(to: IdentityId, body: String, attachments: Vec<Bytes>,);
reducer auth(token: String) -> IdentityId;
reducer count() -> u64;
grant_access PrivateMessage to authenticated;
grant_access PrivateMessage where sender = :caller or recipient = :caller;
grant_access AdminDashboard where :caller in (select identity_id from User where role = 'admin');
`
	m, err := Parse("s.spacetimedb", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pm, ok := m.Table("PrivateMessage")
	if !ok {
		t.Fatal("no PrivateMessage")
	}
	wantIdx := []abi.IndexDef{
		{Name: "PrivateMessage_id_idx", Columns: []string{"id"}, Unique: true},
		{Name: "PrivateMessage_nonce_idx", Columns: []string{"nonce"}, Unique: true},
		{Name: "PrivateMessage_sender_idx", Columns: []string{"sender"}},
		{Name: "PrivateMessage_sender_sent_at_idx", Columns: []string{"sender", "sent_at"}},
	}
	assertJSONEqual(t, pm.Indexes, wantIdx)
	if c := pm.Columns[0]; !c.PrimaryKey || !c.AutoInc {
		t.Errorf("id column = %+v, want primary key and autoinc", c)
	}
	if got := pm.Columns[7].Type.String(); got != "Vec<Option<u8>>" {
		t.Errorf("flags type = %s", got)
	}
	var lifecycles []string
	for _, r := range m.Reducers {
		lifecycles = append(lifecycles, r.Name+":"+r.Lifecycle)
	}
	if got := strings.Join(lifecycles, " "); got != "init:init client_connected:client_connected client_disconnected:client_disconnected send: auth: count:" {
		t.Errorf("reducers = %s", got)
	}
	auth, _, _ := m.Reducer("auth")
	if auth.Return == nil || auth.Return.Kind != abi.KindIdentity {
		t.Errorf("auth return = %v", auth.Return)
	}
	wantGrants := []abi.GrantDef{
		{Table: "PrivateMessage", To: "authenticated", Pos: abi.Pos{File: "s.spacetimedb", Line: 25, Column: 1}},
		{Table: "PrivateMessage", Where: "sender = :caller or recipient = :caller", Pos: abi.Pos{File: "s.spacetimedb", Line: 26, Column: 1}},
		{Table: "AdminDashboard", Where: ":caller in (select identity_id from User where role = 'admin')", Pos: abi.Pos{File: "s.spacetimedb", Line: 27, Column: 1}},
	}
	assertJSONEqual(t, m.Grants, wantGrants)
	// The ModuleDef must survive the JSON trip the guest makes.
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := abi.UnmarshalModuleDef(b)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, back, m)
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "line:col: substring", in order
	}{
		{"unknown type", "table T {\n  a: Strin,\n}", []string{`2:6: unknown type "Strin"`}},
		{"missing colon", "table T {\n  a String,\n}", []string{`2:5: expected ":" after column name a, found "String"`}},
		{"missing comma", "table T {\n  a: u8\n  b: u8,\n}", []string{`3:3: expected ',' or '}' after column a`}},
		{"several errors reported", "table T {\n  a: Foo,\n  b: Bar,\n}\nreducer r(x: Baz);", []string{
			`2:6: unknown type "Foo"`, `3:6: unknown type "Bar"`, `5:14: unknown type "Baz"`}},
		{"duplicate table", "table T { a: u8 }\ntable T { a: u8 }", []string{"2:7: table T is declared twice (first at 1:7)"}},
		{"duplicate column", "table T { a: u8, a: u16 }", []string{"1:18: table T has two columns named a"}},
		{"duplicate reducer", "reducer r();\nreducer r();", []string{"2:9: reducer r is declared twice"}},
		{"two primary keys", "table T {\n#[spacetimedb(primarykey)]\na: u8,\n#[spacetimedb(primarykey)]\nb: u8,\n}", []string{"4:1: table T has a second primary key b"}},
		{"autoinc on string", "table T {\n#[spacetimedb(autoinc)]\na: String,\n}", []string{"2:1: autoinc needs an integer column; a is String"}},
		{"id on u64", "table T {\n#[spacetimedb(id)]\na: u64,\n}", []string{"2:1: #[spacetimedb(id)] marks an IdentityId column; a is u64"}},
		{"unknown attribute", "table T {\n#[spacetimedb(primary)]\na: u64,\n}", []string{`2:15: unknown attribute "primary"`}},
		{"lifecycle with params", "reducer init(x: u8);", []string{"1:14: lifecycle reducer init takes no parameters"}},
		{"lifecycle with return", "reducer client_connected() -> u8;", []string{"1:31: lifecycle reducer client_connected returns nothing"}},
		{"auth returns wrong type", "reducer auth(t: String) -> String;", []string{"1:28: reducer auth must return IdentityId"}},
		{"grant unknown table", "table Post { a: u8 }\ngrant_access Posts to public;", []string{"2:1: grant_access names table Posts, which is not declared; did you mean Post?"}},
		{"grant bad audience", "table P { a: u8 }\ngrant_access P to everyone;", []string{`2:19: expected "public" or "authenticated" after "to", found "everyone"`}},
		{"grant empty where", "table P { a: u8 }\ngrant_access P where ;", []string{`2:22: expected a row filter after "where"`}},
		{"grant unknown column", "table P { a: u8 }\ngrant_access P where b = 1;", []string{`2:22: in the rule of grant_access P: table P has no column "b" (its columns: a)`}},
		{"grant rule syntax", "table P { a: u8 }\ngrant_access P where a = = 1;", []string{`2:26: in the rule of grant_access P: expected a column, a value or :caller, found "="`}},
		{"grant rule type", "table P { a: u8 }\ngrant_access P where a = 'x';", []string{`2:26: in the rule of grant_access P: 'x' is not a u8`}},
		{"grant rule on a later line after a comment", "table P { a: u8, o: IdentityId }\ngrant_access P where o = :caller // mine\n  or a = :caller;", []string{`3:8: in the rule of grant_access P: cannot compare column a (u8) with :caller (IdentityId)`}},
		{"grant subquery unknown table", "table P { a: u8, o: IdentityId }\ngrant_access P where :caller in (select o from Admin);", []string{`2:48: in the rule of grant_access P: no table named "Admin"`}},
		{"grant subquery unknown column", "table P { a: u8, o: IdentityId }\ngrant_access P where :caller in (select who from P);", []string{`2:41: in the rule of grant_access P: table P has no column "who"`}},
		{"missing semicolon", "reducer r()\ntable T { a: u8 }", []string{`2:1: expected ";" after the reducer declaration, found "table"`}},
		{"unclosed table", "table T {\n a: u8,\nreducer r();", []string{`3:1: expected '}' to close table T`}},
		{"reserved name", "reducer __call__();", []string{"1:9: reducer name __call__ is reserved"}},
		{"system table name", "table identity { a: u8 }", []string{"1:7: table name identity is reserved"}},
		{"system table name in another case", "table Identity { a: u8 }", []string{"1:7: table name Identity is reserved"}},
		{"grant on a system table column that does not exist", "table T { a: u8 }\ngrant_access identity where email = 'x';", []string{"2:29: in the rule of grant_access identity"}},
		{"reducer name not an identifier", "reducer 9lives();", []string{`1:9: expected a reducer name after "reducer", found number 9lives`}},
		{"index on unknown column", "#[spacetimedb(index(btree, columns = [a, c]))]\ntable T { a: u8, b: u8 }", []string{"1:42: index names column c, which table T does not have"}},
		{"index on vec", "table T {\n#[spacetimedb(index(btree))]\na: Vec<u8>,\n}", []string{"2:1: index cannot be put on column a of type Vec<u8>"}},
		{"column attr on table", "#[spacetimedb(primarykey)]\ntable T { a: u8 }", []string{"1:1: only #[spacetimedb(index(btree, columns = [...]))] can be put on a table"}},
		{"garbage", "tabel T {}", []string{`1:1: expected "table", "reducer" or "grant_access", found "tabel"`}},
		{"illegal character", "table T { a: u8 } @", []string{`1:19: expected "table", "reducer" or "grant_access", found "@"`}},
		{"empty table", "table T {}", []string{"1:7: table T has no columns"}},
		{"unclosed generic", "table T { a: Option<u8 }", []string{`1:24: expected ">" to close Option<u8`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.spacetimedb", []byte(tt.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrSchema) {
				t.Errorf("error does not wrap ErrSchema: %v", err)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			if len(list) < len(tt.want) {
				t.Fatalf("got %d errors, want at least %d:\n%v", len(list), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := list[i].Error(); !strings.Contains(got, "f.spacetimedb:"+w) {
					t.Errorf("error %d = %q, want it to contain %q\nall errors:\n%v", i, got, "f.spacetimedb:"+w, err)
				}
			}
		})
	}
}

func TestTooManyErrorsStops(t *testing.T) {
	src := strings.Repeat("table T { a: Nope, }\n", 50)
	_, err := Parse("f", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	if len(list) != MaxErrors+1 || !strings.Contains(list[len(list)-1].Msg, "too many errors") {
		t.Errorf("got %d errors, want %d ending with 'too many errors':\n%v", len(list), MaxErrors+1, err)
	}
}

func TestParseDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := ParseDir(dir); err == nil || errors.Is(err, ErrSchema) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want a not-exist error that is not ErrSchema", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("table T { a: u8 }"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseDir(dir)
	if err != nil || len(m.Tables) != 1 {
		t.Fatalf("ParseDir = %v, %v", m, err)
	}
}

// FuzzParse checks that no input makes the parser panic or hang, and that
// every accepted schema yields a ModuleDef that round-trips through JSON.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"tutorial.spacetimedb"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("#[spacetimedb(index(btree, columns = [a, b]))]\ntable T { a: Option<Vec<u8>>, b: u8, }\nreducer r(x: u8) -> u8;\ngrant_access T where a = 'x''y';"))
	f.Add([]byte("table T { a: Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<Option<u8"))
	f.Add([]byte("/* unterminated"))
	f.Add([]byte("grant_access T where 'unterminated"))
	f.Fuzz(func(t *testing.T, src []byte) {
		start := time.Now()
		m, err := Parse("fuzz", src)
		if d := time.Since(start); d > 5*time.Second && len(src) < 1<<16 { // generous: fuzz workers share 2 busy cores
			t.Fatalf("Parse took %v on %d bytes", d, len(src))
		}
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > MaxErrors+1 {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted schema does not marshal: %v", err)
		}
		if _, err := abi.UnmarshalModuleDef(b); err != nil {
			t.Fatalf("accepted schema does not round-trip: %v", err)
		}
	})
}

func BenchmarkParseTutorial(b *testing.B) {
	src, err := os.ReadFile(filepath.Join("testdata", "tutorial.spacetimedb"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Parse("tutorial.spacetimedb", src); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGrantOnSystemTable: a module may open the host's identity system table
// to clients, with a rule over its columns, though it does not declare it.
func TestGrantOnSystemTable(t *testing.T) {
	def, err := Parse("schema.spacetimedb", []byte("table T { a: u8 }\ngrant_access identity where identity = :caller;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Grants) != 1 || def.Grants[0].Table != abi.IdentityTableName {
		t.Fatalf("grants = %+v", def.Grants)
	}
	for _, tb := range def.Tables {
		if tb.Name == abi.IdentityTableName {
			t.Fatal("the parsed schema declares the system table itself; the host adds it")
		}
	}
}
