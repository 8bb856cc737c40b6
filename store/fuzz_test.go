package store

import (
	"bytes"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

// fuzzTable has a column of every kind and an index over all of them, so
// that the key encoder walks every shape of value.
func fuzzTable() abi.TableDef {
	cols := []abi.ColumnDef{
		{Name: "s", Type: abi.TypeString},
		{Name: "o", Type: abi.OptionOf(abi.VecOf(abi.TypeI16))},
		{Name: "f", Type: abi.TypeF64},
		{Name: "b", Type: abi.TypeBytes},
		{Name: "v", Type: abi.VecOf(abi.OptionOf(abi.TypeString))},
		{Name: "id", Type: abi.TypeIdentity},
		{Name: "t", Type: abi.TypeTimestamp},
		{Name: "x", Type: abi.TypeBool},
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return abi.TableDef{Name: "F", Columns: cols, Indexes: []abi.IndexDef{{Name: "F_all", Columns: names}}}
}

// FuzzRowKeys feeds arbitrary bytes as rows and as search keys: validation
// must reject what the encoders cannot handle, the encoders must never
// panic, and a row's index key must start with the key encoding of any
// prefix of its columns.
func FuzzRowKeys(f *testing.F) {
	td := fuzzTable()
	row, _ := abi.EncodeRow(nil, td.ColumnTypes(), []abi.Value{
		abi.String("a\x00b"), abi.Some(abi.Vec(abi.I16(-1))), abi.F64(-0.5), abi.Bytes([]byte{0}),
		abi.Vec(abi.None(), abi.Some(abi.String("z"))), abi.IdentityValue(abi.Identity{9}), abi.Timestamp(42), abi.Bool(true),
	})
	f.Add(row, 3)
	f.Add(row[:10], 1)
	f.Add([]byte{}, 0)
	ts, err := compileTable(0, td)
	if err != nil {
		f.Fatal(err)
	}
	ix := ts.indexes[0]
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		_, _, _ = ix.encodeSearchKey(data) // must not panic
		if abi.ValidateRow(ts.types, data) != nil {
			return
		}
		key := ix.indexKey(nil, data)
		// The BSATN of the first n columns is a valid search key whose
		// encoding prefixes the row's full key.
		n := 0
		if len(ts.types) > 0 {
			n = (cut%len(ts.types) + len(ts.types)) % len(ts.types)
		}
		end := ts.colOffset(data, n)
		p, full, err := ix.encodeSearchKey(data[:end])
		if err != nil {
			t.Fatalf("prefix of %d columns rejected: %v", n, err)
		}
		if !bytes.HasPrefix(key, p) || full != (n == len(ts.types)) {
			t.Fatalf("key %x does not start with prefix key %x (full %v)", key, p, full)
		}
	})
}
