package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"pgregory.net/rapid"
)

// The property tests drive random transactions against the store and
// against a model that is just a list of rows per table.

func propTables() []abi.TableDef {
	return []abi.TableDef{{
		Name: "A",
		Columns: []abi.ColumnDef{
			{Name: "id", Type: abi.TypeI32, PrimaryKey: true},
			{Name: "name", Type: abi.TypeString, Unique: true},
			{Name: "grp", Type: abi.TypeU8},
			{Name: "score", Type: abi.OptionOf(abi.TypeI16)},
		},
		Indexes: []abi.IndexDef{{Name: "A_grp_score_idx", Columns: []string{"grp", "score"}}},
	}, {
		Name: "B",
		Columns: []abi.ColumnDef{
			{Name: "k", Type: abi.TypeU8},
			{Name: "v", Type: abi.VecOf(abi.TypeU8)},
			{Name: "f", Type: abi.TypeF64},
		},
		Indexes: []abi.IndexDef{{Name: "B_k_idx", Columns: []string{"k"}}, {Name: "B_f_v_idx", Columns: []string{"f", "v"}}},
	}}
}

type mrow struct {
	vals []abi.Value
	raw  []byte
}

type model struct{ a, b []mrow }

func (m model) clone() model {
	return model{a: slices.Clone(m.a), b: slices.Clone(m.b)}
}

func genA(t *rapid.T) mrow {
	id := rapid.Int32Range(-3, 6).Draw(t, "id")
	name := rapid.SampledFrom([]string{"", "a", "a\x00", "ab", "b", "zz"}).Draw(t, "name")
	grp := rapid.Uint8Range(0, 2).Draw(t, "grp")
	score := abi.None()
	if rapid.Bool().Draw(t, "some") {
		score = abi.Some(abi.I16(rapid.Int16Range(-2, 2).Draw(t, "score")))
	}
	return mkrow(propTables()[0], abi.I32(id), abi.String(name), abi.U8(grp), score)
}

func genB(t *rapid.T) mrow {
	k := rapid.Uint8Range(0, 3).Draw(t, "k")
	v := rapid.SliceOfN(rapid.Uint8Range(0, 2), 0, 3).Draw(t, "v")
	vs := make([]abi.Value, len(v))
	for i, x := range v {
		vs[i] = abi.U8(x)
	}
	f := rapid.SampledFrom([]float64{-1.5, -0.0, 0, 2, 1e300}).Draw(t, "f")
	return mkrow(propTables()[1], abi.U8(k), abi.Vec(vs...), abi.F64(f))
}

func mkrow(td abi.TableDef, vals ...abi.Value) mrow {
	raw, err := abi.EncodeRow(nil, td.ColumnTypes(), vals)
	if err != nil {
		panic(err)
	}
	return mrow{vals: vals, raw: raw}
}

func encVals(vals ...abi.Value) []byte {
	w := abi.NewWriter(nil)
	for _, v := range vals {
		var t abi.Type
		switch v.Kind {
		case abi.KindOption:
			t = abi.OptionOf(abi.TypeI16)
		case abi.KindVec:
			t = abi.VecOf(abi.TypeU8)
		default:
			t = abi.Type{Kind: v.Kind}
		}
		if err := w.WriteValue(t, v); err != nil {
			panic(err)
		}
	}
	return w.Bytes()
}

func cmpTuple(a, b []abi.Value) int {
	for i := range min(len(a), len(b)) {
		if c := abi.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func project(r mrow, cols []int) []abi.Value {
	out := make([]abi.Value, len(cols))
	for i, c := range cols {
		out[i] = r.vals[c]
	}
	return out
}

func rawSet(rows []mrow) [][]byte {
	out := make([][]byte, len(rows))
	for i, r := range rows {
		out[i] = r.raw
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

func sortedRaw(rows [][]byte) [][]byte {
	out := slices.Clone(rows)
	slices.SortFunc(out, bytes.Compare)
	return out
}

func eqRows(t *rapid.T, what string, got [][]byte, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: row %d is %x, want %x", what, i, got[i], want[i])
		}
	}
}

// reader is what Tx and Snapshot have in common.
type reader interface {
	Scan(TableID) (*RowIter, error)
	ScanPoint(IndexID, []byte) (*RowIter, error)
	ScanRange(IndexID, Bound, Bound) (*RowIter, error)
	Count(TableID) (uint64, error)
}

type ids struct {
	a, b                      TableID
	aPK, aName, aGrp, bK, bFV IndexID
	aCols, aGrpCols, bFVCols  []int
}

func lookupIDs(db *Database) ids {
	var x ids
	x.a, _ = db.TableID("A")
	x.b, _ = db.TableID("B")
	x.aPK, _ = db.IndexID("A_id_idx")
	x.aName, _ = db.IndexID("A_name_idx")
	x.aGrp, _ = db.IndexID("A_grp_score_idx")
	x.bK, _ = db.IndexID("B_k_idx")
	x.bFV, _ = db.IndexID("B_f_v_idx")
	x.aGrpCols = []int{2, 3}
	x.bFVCols = []int{2, 1}
	return x
}

// checkReader compares everything r shows with m, including random index
// scans against filtered full scans.
func checkReader(t *rapid.T, r reader, x ids, m model) {
	// Full scan of A is in primary-key order.
	want := slices.Clone(m.a)
	slices.SortFunc(want, func(p, q mrow) int { return abi.Compare(p.vals[0], q.vals[0]) })
	wantRaw := make([][]byte, len(want))
	for i, w := range want {
		wantRaw[i] = w.raw
	}
	eqRows(t, "scan A", collect(r.Scan(x.a)), wantRaw)
	eqRows(t, "scan B", sortedRaw(collect(r.Scan(x.b))), rawSet(m.b))
	if n, _ := r.Count(x.a); n != uint64(len(m.a)) {
		t.Fatalf("count A = %d, want %d", n, len(m.a))
	}
	if n, _ := r.Count(x.b); n != uint64(len(m.b)) {
		t.Fatalf("count B = %d, want %d", n, len(m.b))
	}
	// Range scans on A(grp, score) and B(f, v), with bounds on prefixes.
	checkRange(t, r, x.aGrp, x.aGrpCols, m.a, func(p, q mrow) int { return abi.Compare(p.vals[0], q.vals[0]) }, func() []abi.Value {
		n := rapid.IntRange(0, 2).Draw(t, "prefix")
		g := genA(t)
		return project(g, x.aGrpCols)[:n]
	})
	checkRange(t, r, x.bFV, x.bFVCols, m.b, nil, func() []abi.Value {
		n := rapid.IntRange(0, 2).Draw(t, "prefix")
		g := genB(t)
		return project(g, x.bFVCols)[:n]
	})
	// Point scan on B(k).
	k := rapid.Uint8Range(0, 3).Draw(t, "pointk")
	var pw [][]byte
	for _, row := range m.b {
		if row.vals[0].AsUint() == uint64(k) {
			pw = append(pw, row.raw)
		}
	}
	eqRows(t, "point B.k", sortedRaw(collect(r.ScanPoint(x.bK, encVals(abi.U8(k))))), sortedRaw(pw))
}

func checkRange(t *rapid.T, r reader, ix IndexID, cols []int, rows []mrow, tie func(p, q mrow) int, genKey func() []abi.Value) {
	kinds := []BoundKind{Inclusive, Exclusive, Unbounded}
	lk := rapid.SampledFrom(kinds).Draw(t, "lokind")
	hk := rapid.SampledFrom(kinds).Draw(t, "hikind")
	lo, hi := genKey(), genKey()
	var want []mrow
	for _, row := range rows {
		p := project(row, cols)
		ok := true
		switch lk {
		case Inclusive:
			ok = cmpTuple(p, lo) >= 0
		case Exclusive:
			ok = cmpTuple(p, lo) > 0
		}
		switch hk {
		case Inclusive:
			ok = ok && cmpTuple(p, hi) <= 0
		case Exclusive:
			ok = ok && cmpTuple(p, hi) < 0
		}
		if ok {
			want = append(want, row)
		}
	}
	got := collect(r.ScanRange(ix, Bound{Key: encVals(lo...), Kind: lk}, Bound{Key: encVals(hi...), Kind: hk}))
	if tie == nil {
		// Rows with equal index keys come in insertion order; compare index
		// order first, then as sets.
		eqRows(t, fmt.Sprintf("range %v %v..%v %v", lk, lo, hk, hi), sortedRaw(got), rawSet(want))
		return
	}
	slices.SortStableFunc(want, func(p, q mrow) int {
		if c := cmpTuple(project(p, cols), project(q, cols)); c != 0 {
			return c
		}
		return tie(p, q)
	})
	wr := make([][]byte, len(want))
	for i, w := range want {
		wr[i] = w.raw
	}
	eqRows(t, fmt.Sprintf("range %v %v..%v %v", lk, lo, hk, hi), got, wr)
}

func TestPropertyModel(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	defer func() { s.Close() }()
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		n++
		name := fmt.Sprintf("db%d", n)
		db, err := s.CreateDatabase(ctx, name, propTables())
		if err != nil {
			t.Fatal(err)
		}
		x := lookupIDs(db)
		var committed model
		var snaps []*Snapshot
		var snapModels []model
		steps := rapid.IntRange(1, 12).Draw(t, "txs")
		for range steps {
			tx, err := db.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			before := db.Snapshot()
			cur := committed.clone()
			ops := rapid.IntRange(0, 10).Draw(t, "ops")
			for range ops {
				applyOp(t, tx, x, &cur)
			}
			checkReader(t, tx, x, cur)
			if rapid.Bool().Draw(t, "commit") {
				c, err := tx.Commit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				checkDelta(t, c, x, committed, cur)
				after := db.Snapshot()
				if c.Offset != after.Offset() && len(c.Delta.Tables) > 0 {
					t.Fatalf("commit offset %d, snapshot offset %d", c.Offset, after.Offset())
				}
				committed = cur
				_ = before
			} else {
				tx.Rollback()
				tx.Rollback()
				if _, err := tx.Insert(x.a, genA(t).raw); !errors.Is(err, ErrTxDone) {
					t.Fatalf("insert after rollback: %v", err)
				}
			}
			checkReader(t, db.Snapshot(), x, committed)
			snaps = append(snaps, db.Snapshot())
			snapModels = append(snapModels, committed)
		}
		// Old snapshots never change.
		for i, sn := range snaps {
			checkReader(t, sn, x, snapModels[i])
		}
		if rapid.IntRange(0, 9).Draw(t, "reopen") == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler))); err != nil {
				t.Fatal(err)
			}
			if db, err = s.Database(name); err != nil {
				t.Fatal(err)
			}
			checkReader(t, db.Snapshot(), x, committed)
		}
		if err := s.DropDatabase(ctx, name); err != nil {
			t.Fatal(err)
		}
	})
}

func checkDelta(t *rapid.T, c Commit, x ids, before, after model) {
	diff := func(p, q []mrow) [][]byte { // multiset p - q
		out := rawSet(p)
		for _, r := range rawSet(q) {
			if i, ok := slices.BinarySearchFunc(out, r, bytes.Compare); ok {
				out = slices.Delete(out, i, i+1)
			}
		}
		return out
	}
	var gotInsA, gotDelA, gotInsB, gotDelB [][]byte
	for _, td := range c.Delta.Tables {
		switch td.Table {
		case x.a:
			gotInsA, gotDelA = td.Inserts, td.Deletes
		case x.b:
			gotInsB, gotDelB = td.Inserts, td.Deletes
		}
	}
	// A has a primary key, so its delta is exactly the difference of states
	// (as sets; an update that changes nothing is not in it).
	eqRows(t, "delta A inserts", sortedRaw(gotInsA), diff(after.a, before.a))
	eqRows(t, "delta A deletes", sortedRaw(gotDelA), diff(before.a, after.a))
	// B has no key: a row deleted and an equal row inserted both show up,
	// so check the net effect.
	net := func(ins, del [][]byte) [][]byte {
		out := sortedRaw(ins)
		for _, r := range del {
			if i, ok := slices.BinarySearchFunc(out, r, bytes.Compare); ok {
				out = slices.Delete(out, i, i+1)
			}
		}
		return out
	}
	eqRows(t, "delta B net inserts", net(gotInsB, gotDelB), diff(after.b, before.b))
	eqRows(t, "delta B net deletes", net(gotDelB, gotInsB), diff(before.b, after.b))
}

func applyOp(t *rapid.T, tx *Tx, x ids, m *model) {
	switch rapid.IntRange(0, 6).Draw(t, "op") {
	case 0, 1: // insert A
		r := genA(t)
		_, err := tx.Insert(x.a, r.raw)
		clash := slices.ContainsFunc(m.a, func(o mrow) bool {
			return abi.Compare(o.vals[0], r.vals[0]) == 0 || abi.Compare(o.vals[1], r.vals[1]) == 0
		})
		if clash != errors.Is(err, ErrUniqueViolation) || !clash && err != nil {
			t.Fatalf("insert A %v: err %v, clash %v", r.vals, err, clash)
		}
		if !clash {
			m.a = append(m.a, r)
		}
	case 2: // update A by id or by name
		r := genA(t)
		byName := rapid.Bool().Draw(t, "byName")
		col, ix := 0, x.aPK
		if byName {
			col, ix = 1, x.aName
		}
		_, err := tx.Update(ix, r.raw)
		i := slices.IndexFunc(m.a, func(o mrow) bool { return abi.Compare(o.vals[col], r.vals[col]) == 0 })
		if i < 0 {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("update missing row: err %v", err)
			}
			return
		}
		other := 1 - col
		clash := slices.ContainsFunc(m.a, func(o mrow) bool {
			return abi.Compare(o.vals[col], r.vals[col]) != 0 && abi.Compare(o.vals[other], r.vals[other]) == 0
		})
		if clash != errors.Is(err, ErrUniqueViolation) || !clash && err != nil {
			t.Fatalf("update A %v: err %v, clash %v", r.vals, err, clash)
		}
		if !clash {
			m.a[i] = r
		}
	case 3: // delete A by a prefix of (grp, score), or by id
		g := genA(t)
		var k []abi.Value
		ix, cols := x.aGrp, x.aGrpCols
		if rapid.Bool().Draw(t, "byID") {
			ix, cols = x.aPK, []int{0}
		}
		k = project(g, cols)[:rapid.IntRange(1, len(cols)).Draw(t, "n")]
		n, err := tx.DeleteByKey(ix, encVals(k...))
		if err != nil {
			t.Fatal(err)
		}
		kept := m.a[:0:0]
		for _, o := range m.a {
			if cmpTuple(project(o, cols), k) != 0 {
				kept = append(kept, o)
			}
		}
		if n != len(m.a)-len(kept) {
			t.Fatalf("delete A %v deleted %d, want %d", k, n, len(m.a)-len(kept))
		}
		m.a = kept
	case 4, 5: // insert B
		r := genB(t)
		if _, err := tx.Insert(x.b, r.raw); err != nil {
			t.Fatal(err)
		}
		m.b = append(m.b, r)
	case 6: // delete B by k
		k := rapid.Uint8Range(0, 3).Draw(t, "k")
		n, err := tx.DeleteByKey(x.bK, encVals(abi.U8(k)))
		if err != nil {
			t.Fatal(err)
		}
		kept := m.b[:0:0]
		for _, o := range m.b {
			if o.vals[0].AsUint() != uint64(k) {
				kept = append(kept, o)
			}
		}
		if n != len(m.b)-len(kept) {
			t.Fatalf("delete B k=%d deleted %d, want %d", k, n, len(m.b)-len(kept))
		}
		m.b = kept
	}
}

var _ = cmp.Compare[int]
