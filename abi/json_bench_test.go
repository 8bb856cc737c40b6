package abi

import "testing"

// BenchmarkAppendRowJSON compares the row renderer subscriptions use with
// the same rows rendered through encoding/json's string escaping, which it
// replaced.
func BenchmarkAppendRowJSON(b *testing.B) {
	td := &TableDef{Name: "Post", Columns: []ColumnDef{{Name: "post_id", Type: TypeU64}, {Name: "author", Type: TypeIdentity}, {Name: "content", Type: TypeString}, {Name: "created_at", Type: TypeU64}}}
	row := []Value{U64(12345), IdentityValue(Identity{0: 0xc2}), String("Hello from Alice! <b>"), U64(1700000000000000)}
	b.Run("impl=abi", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendRowJSON(buf[:0], td, row)
		}
	})
	b.Run("impl=encoding_json", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = append(buf[:0], '{')
			for i, c := range td.Columns {
				if i > 0 {
					buf = append(buf, ',')
				}
				name, _ := marshalNoEscape(c.Name)
				buf = append(append(buf, name...), ':')
				if c.Type.Kind == KindString {
					s, _ := marshalNoEscape(row[i].Str)
					buf = append(buf, s...)
				} else {
					buf = AppendJSON(buf, c.Type, row[i])
				}
			}
			buf = append(buf, '}')
		}
	})
}
