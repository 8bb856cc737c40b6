package hostfuncs

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// memoryOnlyModule is a module that only exports one page of memory.
var memoryOnlyModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: one memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

// TestRefusedWriteIsNotCharged: a write the store refuses (here a unique
// violation) has no effect, so it must not use up the transaction's write
// budget either.
func TestRefusedWriteIsNotCharged(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, memoryOnlyModule)
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()

	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := st.CreateDatabase(ctx, "app", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU32, PrimaryKey: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	c := &Call{Tx: tx, Limits: Limits{MaxRowsWritten: 1}.WithDefaults()}
	const lenPtr, rowPtr = 0, 16
	row, _ := abi.EncodeRow(nil, []abi.Type{abi.TypeU32}, []abi.Value{abi.U32(7)})
	mem.Write(rowPtr, row)
	p := []uint64{0, rowPtr, lenPtr}
	try := func(apply func([]byte) ([]byte, error)) abi.Errno {
		mem.WriteUint32Le(lenPtr, uint32(len(row)))
		return writeRow(ctx, c, mem, p, "row_insert", false, apply)
	}
	refused := func([]byte) ([]byte, error) { return nil, store.ErrUniqueViolation }
	if e := try(refused); e != abi.ErrnoUniqueViolation {
		t.Fatalf("refused write: errno %s, want UNIQUE_VIOLATION", e)
	}
	insert := func(row []byte) ([]byte, error) { return tx.Insert(0, row) }
	if e := try(insert); e != abi.ErrnoOK {
		t.Fatalf("the one write the budget allows, after a refused one: errno %s, want OK", e)
	}
	if e := try(insert); e != abi.ErrnoLimitExceeded {
		t.Fatalf("a second write with MaxRowsWritten=1: errno %s, want LIMIT_EXCEEDED", e)
	}
}

// TestSystemTablesAreReadOnly: every write path refuses a table (and the
// indexes on it) listed in Call.ReadOnly with READ_ONLY, and changes nothing.
func TestSystemTablesAreReadOnly(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, memoryOnlyModule)
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := st.CreateDatabase(ctx, "app", []abi.TableDef{abi.IdentityTable()})
	if err != nil {
		t.Fatal(err)
	}
	table, _ := db.TableID(abi.IdentityTableName)
	pk, _ := db.IndexID(abi.IndexName(abi.IdentityTableName, "identity"))
	setup, _ := db.Begin(ctx)
	var id abi.Identity
	id[0] = 1
	var w abi.Writer
	w.WriteIdentity(id)
	w.WriteString("iss")
	w.WriteString("sub")
	w.WriteTimestamp(1)
	w.WriteTimestamp(2)
	if _, err := setup.Insert(table, w.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	c := &Call{Tx: tx, Limits: DefaultLimits, ReadOnly: ReadOnlyTables{Tables: []store.TableID{table}, Indexes: []store.IndexID{pk}}}
	const lenPtr, rowPtr, countPtr = 0, 16, 8
	row := w.Bytes()
	mem.Write(rowPtr, row)
	cases := []struct {
		name string
		fn   func() abi.Errno
	}{
		{"row_insert", func() abi.Errno {
			mem.WriteUint32Le(lenPtr, uint32(len(row)))
			return rowInsert(ctx, c, mem, []uint64{uint64(table), rowPtr, lenPtr})
		}},
		{"row_update", func() abi.Errno {
			mem.WriteUint32Le(lenPtr, uint32(len(row)))
			return rowUpdate(ctx, c, mem, []uint64{uint64(pk), rowPtr, lenPtr})
		}},
		{"row_delete_by_index_point", func() abi.Errno {
			return rowDeleteByIndexPoint(ctx, c, mem, []uint64{uint64(pk), rowPtr, abi.IdentitySize, countPtr})
		}},
	}
	for _, tc := range cases {
		if e := tc.fn(); e != abi.ErrnoReadOnly {
			t.Errorf("%s on the identity table: errno %s, want READ_ONLY", tc.name, e)
		}
	}
	if n, _ := tx.Count(table); n != 1 {
		t.Errorf("the identity table has %d rows after refused writes, want 1", n)
	}
	if c.rowsWritten != 0 || c.bytesWritten != 0 {
		t.Errorf("refused writes were charged: %d rows, %d bytes", c.rowsWritten, c.bytesWritten)
	}
}
