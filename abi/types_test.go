package abi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "u64", want: "u64"},
		{in: "IdentityId", want: "IdentityId"},
		{in: "Identity", want: "IdentityId"},
		{in: "string", want: "String"},
		{in: "Option<String>", want: "Option<String>"},
		{in: " Vec < Option<i32> > ", want: "Vec<Option<i32>>"},
		{in: "Timestamp", want: "Timestamp"},
		{in: "u128", wantErr: `unknown type "u128"`},
		{in: "Option", wantErr: "needs an element type"},
		{in: "Vec<u8", wantErr: "expected '>'"},
		{in: "Vec<u8>>", wantErr: "unexpected"},
		{in: "", wantErr: "expected a type name"},
		{in: strings.Repeat("Vec<", 40) + "u8" + strings.Repeat(">", 40), wantErr: "nested deeper"},
	}
	for _, tt := range tests {
		got, err := ParseType(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseType(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseType(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParseType(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if !got.Valid() {
			t.Errorf("ParseType(%q) = %s is not Valid", tt.in, got)
		}
	}
}

func TestTypeJSONRoundTrip(t *testing.T) {
	in := ColumnDef{Name: "tags", Type: VecOf(OptionOf(TypeString))}
	b, err := marshalNoEscape(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"tags","type":"Vec<Option<String>>"}`; string(b) != want {
		t.Fatalf("marshal = %s, want %s", b, want)
	}
	var out ColumnDef
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Type.Equal(in.Type) {
		t.Fatalf("round trip gave %s, want %s", out.Type, in.Type)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","type":"Vec<>"}`), &out); err == nil {
		t.Fatal("unmarshal of a bad type succeeded")
	}
}

func TestIdentityWordsAndHex(t *testing.T) {
	var id Identity
	for i := range id {
		id[i] = byte(i * 7)
	}
	if got := IdentityFromWords(id.Words()); got != id {
		t.Fatalf("IdentityFromWords(Words()) = %s, want %s", got, id)
	}
	parsed, err := ParseIdentity("0x" + id.String())
	if err != nil || parsed != id {
		t.Fatalf("ParseIdentity(hex) = %s, %v", parsed, err)
	}
	if _, err := ParseIdentity("abc"); err == nil {
		t.Fatal("ParseIdentity accepted 3 digits")
	}
	if !(Identity{}).IsZero() || id.IsZero() {
		t.Fatal("IsZero wrong")
	}
	c := ConnectionID{1, 2, 3, 15: 9}
	if got := ConnectionIDFromWords(c.Words()); got != c {
		t.Fatalf("ConnectionIDFromWords(Words()) = %s, want %s", got, c)
	}
}

func TestImpliedIndexes(t *testing.T) {
	td := TableDef{
		Name: "User",
		Columns: []ColumnDef{
			{Name: "id", Type: TypeU64, PrimaryKey: true},
			{Name: "email", Type: TypeString, Unique: true},
			{Name: "age", Type: TypeU8},
		},
		Indexes: []IndexDef{{Name: IndexName("User", "age"), Columns: []string{"age"}}, {Name: "User_id_idx", Columns: []string{"id"}, Unique: true}},
	}
	got := td.ImpliedIndexes()
	names := make([]string, len(got))
	for i, ix := range got {
		names[i] = ix.Name
	}
	if want := "User_id_idx User_email_idx User_age_idx"; strings.Join(names, " ") != want {
		t.Fatalf("ImpliedIndexes = %v, want %s", names, want)
	}
	if !got[0].Unique || !got[1].Unique || got[2].Unique {
		t.Fatalf("uniqueness wrong: %+v", got)
	}
}
