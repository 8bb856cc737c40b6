package store

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

func userTables() []abi.TableDef {
	return []abi.TableDef{{
		Name: "User",
		Columns: []abi.ColumnDef{
			{Name: "id", Type: abi.TypeU64, PrimaryKey: true, AutoInc: true},
			{Name: "name", Type: abi.TypeString, Unique: true},
			{Name: "age", Type: abi.TypeU8},
			{Name: "nick", Type: abi.OptionOf(abi.TypeString)},
		},
		Indexes: []abi.IndexDef{{Name: "User_age_name_idx", Columns: []string{"age", "name"}}},
	}, {
		Name:    "Log",
		Columns: []abi.ColumnDef{{Name: "msg", Type: abi.TypeString}, {Name: "at", Type: abi.TypeTimestamp}},
		Indexes: []abi.IndexDef{{Name: "Log_at_idx", Columns: []string{"at"}}},
	}}
}

func userRow(t testing.TB, id uint64, name string, age uint8, nick *string) []byte {
	t.Helper()
	n := abi.None()
	if nick != nil {
		n = abi.Some(abi.String(*nick))
	}
	b, err := abi.EncodeRow(nil, userTables()[0].ColumnTypes(), []abi.Value{abi.U64(id), abi.String(name), abi.U8(age), n})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(t testing.TB, vals ...abi.Value) []byte {
	t.Helper()
	w := abi.NewWriter(nil)
	for _, v := range vals {
		w.WriteValue(abi.Type{Kind: v.Kind}, v)
	}
	return w.Bytes()
}

func openStore(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	s, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func collect(it *RowIter, err error) [][]byte {
	if err != nil {
		panic(err)
	}
	var out [][]byte
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		out = append(out, r)
	}
	return out
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	db, err := s.CreateDatabase(ctx, "app", userTables())
	if err != nil {
		t.Fatal(err)
	}
	users, _ := db.TableID("User")
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := tx.Insert(users, userRow(t, 0, "ann", 30, nil))
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := abi.DecodeRow(userTables()[0].ColumnTypes(), r1)
	if vals[0].AsUint() != 1 {
		t.Fatalf("autoinc id = %d, want 1", vals[0].AsUint())
	}
	if _, err := tx.Insert(users, userRow(t, 0, "ann", 31, nil)); !errors.Is(err, ErrUniqueViolation) {
		t.Fatalf("duplicate name: err = %v, want ErrUniqueViolation", err)
	}
	if _, err := tx.Insert(users, userRow(t, 0, "bob", 20, nil)); err != nil {
		t.Fatal(err)
	}
	c, err := tx.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Offset != 1 || len(c.Delta.Tables) != 1 || len(c.Delta.Tables[0].Inserts) != 2 {
		t.Fatalf("commit = %+v", c)
	}
	snap := db.Snapshot()
	if n, _ := snap.Count(users); n != 2 {
		t.Fatalf("count = %d", n)
	}
	byName, _ := db.IndexID("User_name_idx")
	rows := collect(snap.ScanPoint(byName, key(t, abi.String("bob"))))
	if len(rows) != 1 {
		t.Fatalf("point scan found %d rows", len(rows))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	db, err = s.Database("app")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Snapshot().Count(users); n != 2 || db.Snapshot().Offset() != 1 {
		t.Fatalf("after reopen: count %d offset %d", n, db.Snapshot().Offset())
	}
	tx, _ = db.Begin(ctx)
	r3, err := tx.Insert(users, userRow(t, 0, "cy", 40, nil))
	if err != nil {
		t.Fatal(err)
	}
	vals, _ = abi.DecodeRow(userTables()[0].ColumnTypes(), r3)
	if vals[0].AsUint() != 3 {
		t.Fatalf("autoinc after reopen = %d, want 3", vals[0].AsUint())
	}
	tx.Rollback()
}
