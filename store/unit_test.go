package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/spacetime-go/spacetime/abi"
)

func mustDB(t *testing.T, s *Store, name string, tables []abi.TableDef) *Database {
	t.Helper()
	db, err := s.CreateDatabase(context.Background(), name, tables)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func mustID[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	small := []abi.TableDef{{Name: "S", Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU8, PrimaryKey: true, AutoInc: true}}},
		{Name: "N", Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeI8, AutoInc: true}}}}
	db := mustDB(t, s, "app", append(userTables(), small...))
	users := mustID[TableID](t)(db.TableID("User"))
	byID := mustID[IndexID](t)(db.IndexID("User_id_idx"))
	byName := mustID[IndexID](t)(db.IndexID("User_name_idx"))
	byAge := mustID[IndexID](t)(db.IndexID("User_age_name_idx"))
	sTab := mustID[TableID](t)(db.TableID("S"))
	nTab := mustID[TableID](t)(db.TableID("N"))
	seed := func(tx *Tx) {
		for i, n := range []string{"ann", "bob"} {
			if _, err := tx.Insert(users, userRow(t, uint64(i+1), n, 20, nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill := func(tx *Tx, tab TableID, n int) error {
		for range n {
			if _, err := tx.Insert(tab, []byte{0}); err != nil {
				return err
			}
		}
		return nil
	}
	cases := []struct {
		name string
		op   func(tx *Tx) error
		want []error
	}{
		{"duplicate primary key", func(tx *Tx) error { _, err := tx.Insert(users, userRow(t, 1, "cy", 1, nil)); return err }, []error{ErrUniqueViolation}},
		{"duplicate unique column", func(tx *Tx) error { _, err := tx.Insert(users, userRow(t, 9, "bob", 1, nil)); return err }, []error{ErrUniqueViolation}},
		{"update onto another row's unique column", func(tx *Tx) error { _, err := tx.Update(byID, userRow(t, 1, "bob", 1, nil)); return err }, []error{ErrUniqueViolation}},
		{"update missing row", func(tx *Tx) error { _, err := tx.Update(byID, userRow(t, 7, "x", 1, nil)); return err }, []error{ErrNotFound}},
		{"update through a non-unique index", func(tx *Tx) error { _, err := tx.Update(byAge, userRow(t, 1, "ann", 20, nil)); return err }, []error{ErrNoSuchIndex}},
		{"unknown table", func(tx *Tx) error { _, err := tx.Insert(99, nil); return err }, []error{ErrNoSuchTable}},
		{"unknown table scan", func(tx *Tx) error { _, err := tx.Scan(99); return err }, []error{ErrNoSuchTable}},
		{"unknown index", func(tx *Tx) error { _, err := tx.ScanPoint(999, nil); return err }, []error{ErrNoSuchIndex}},
		{"truncated row", func(tx *Tx) error { _, err := tx.Insert(users, userRow(t, 1, "x", 1, nil)[:5]); return err }, []error{ErrSchemaMismatch, abi.ErrMalformed}},
		{"trailing bytes", func(tx *Tx) error { _, err := tx.Insert(users, append(userRow(t, 1, "x", 1, nil), 0)); return err }, []error{ErrSchemaMismatch, abi.ErrMalformed}},
		{"key longer than the index", func(tx *Tx) error {
			_, err := tx.DeleteByKey(byID, key(t, abi.U64(1), abi.U64(2)))
			return err
		}, []error{ErrSchemaMismatch}},
		{"empty delete key", func(tx *Tx) error { _, err := tx.DeleteByKey(byID, nil); return err }, []error{ErrSchemaMismatch}},
		{"key of the wrong type", func(tx *Tx) error { _, err := tx.ScanPoint(byName, []byte{9, 0, 0, 0}); return err }, []error{ErrSchemaMismatch, abi.ErrMalformed}},
		{"bad bound kind", func(tx *Tx) error { _, err := tx.ScanRange(byID, Bound{Kind: 7}, Bound{}); return err }, []error{ErrSchemaMismatch}},
		{"u8 autoinc overflow", func(tx *Tx) error { return fill(tx, sTab, 256) }, []error{ErrAutoIncOverflow}},
		{"i8 autoinc overflow", func(tx *Tx) error { return fill(tx, nTab, 128) }, []error{ErrAutoIncOverflow}},
		{"u8 autoinc fits", func(tx *Tx) error { return fill(tx, sTab, 255) }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx, err := db.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			seed(tx)
			err = c.op(tx)
			if c.want == nil && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Fatalf("err = %v, want errors.Is %v", err, w)
				}
			}
		})
	}

	t.Run("store level", func(t *testing.T) {
		if _, err := s.CreateDatabase(ctx, "app", userTables()); !errors.Is(err, ErrDatabaseExists) {
			t.Errorf("create twice: %v", err)
		}
		if _, err := s.Database("nope"); !errors.Is(err, ErrNoSuchDatabase) {
			t.Errorf("unknown database: %v", err)
		}
		if _, err := db.TableID("nope"); !errors.Is(err, ErrNoSuchTable) {
			t.Errorf("unknown table name: %v", err)
		}
		if _, err := db.IndexID("nope"); !errors.Is(err, ErrNoSuchIndex) {
			t.Errorf("unknown index name: %v", err)
		}
		tx, _ := db.Begin(ctx)
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Commit(ctx); !errors.Is(err, ErrTxDone) {
			t.Errorf("commit twice: %v", err)
		}
		tx.Rollback() // harmless after commit
	})
}

func TestInvalidSchema(t *testing.T) {
	col := func(name string, typ abi.Type) abi.ColumnDef { return abi.ColumnDef{Name: name, Type: typ} }
	cases := []struct {
		name   string
		tables []abi.TableDef
		want   string // in the message
	}{
		{"no columns", []abi.TableDef{{Name: "T"}}, `"T" has no columns`},
		{"empty table name", []abi.TableDef{{Name: "", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}}}, "table name"},
		{"duplicate table", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}}, {Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}}}, "defined twice"},
		{"duplicate column", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8), col("a", abi.TypeU8)}}}, `column "a" is defined twice`},
		{"invalid type", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{col("a", abi.Type{Kind: abi.KindOption})}}}, `column "a" has invalid type`},
		{"two primary keys", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{{Name: "a", Type: abi.TypeU8, PrimaryKey: true}, {Name: "b", Type: abi.TypeU8, PrimaryKey: true}}}}, "both marked primary key"},
		{"autoinc string", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{{Name: "s", Type: abi.TypeString, AutoInc: true}}}}, `column "s" is autoinc`},
		{"id not identity", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{{Name: "s", Type: abi.TypeString, Identity: true}}}}, "not IdentityId"},
		{"index on missing column", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}, Indexes: []abi.IndexDef{{Name: "T_b_idx", Columns: []string{"b"}}}}}, `names column "b"`},
		{"index without columns", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}, Indexes: []abi.IndexDef{{Name: "I"}}}}, "has no columns"},
		{"index column twice", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}, Indexes: []abi.IndexDef{{Name: "I", Columns: []string{"a", "a"}}}}}, "twice"},
		{"index name reused across tables", []abi.TableDef{
			{Name: "T", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}, Indexes: []abi.IndexDef{{Name: "I", Columns: []string{"a"}}}},
			{Name: "U", Columns: []abi.ColumnDef{col("a", abi.TypeU8)}, Indexes: []abi.IndexDef{{Name: "I", Columns: []string{"a"}}}}}, `"I" is already used`},
		{"declared index shadows implied one", []abi.TableDef{{Name: "T", Columns: []abi.ColumnDef{{Name: "a", Type: abi.TypeU8, Unique: true}, col("b", abi.TypeU8)}, Indexes: []abi.IndexDef{{Name: "T_a_idx", Columns: []string{"b"}}}}}, "implied index"},
	}
	s := openStore(t, t.TempDir())
	defer s.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.CreateDatabase(context.Background(), "x", c.tables)
			if !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalidSchema mentioning %q", err, c.want)
			}
		})
	}
	if got := s.Databases(); len(got) != 0 {
		t.Fatalf("databases after failed creates: %v", got)
	}
}

func TestDeltaSemantics(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	byID, _ := db.IndexID("User_id_idx")
	tx, _ := db.Begin(ctx)
	tx.Insert(users, userRow(t, 1, "ann", 1, nil))
	tx.Insert(users, userRow(t, 2, "bob", 1, nil))
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	nick := "b"
	cases := []struct {
		name         string
		op           func(tx *Tx)
		inserts, del int
	}{
		{"update to the same row is not a change", func(tx *Tx) { tx.Update(byID, userRow(t, 1, "ann", 1, nil)) }, 0, 0},
		{"insert then delete is not a change", func(tx *Tx) {
			tx.Insert(users, userRow(t, 3, "cy", 1, nil))
			tx.DeleteByKey(byID, key(t, abi.U64(3)))
		}, 0, 0},
		{"update is a delete and an insert", func(tx *Tx) { tx.Update(byID, userRow(t, 2, "bob", 1, &nick)) }, 1, 1},
		{"two updates of one row are one change", func(tx *Tx) {
			tx.Update(byID, userRow(t, 1, "ann", 2, nil))
			tx.Update(byID, userRow(t, 1, "ann", 3, nil))
		}, 1, 1},
		{"delete then reinsert the same row is not a change", func(tx *Tx) {
			tx.DeleteByKey(byID, key(t, abi.U64(1)))
			tx.Insert(users, userRow(t, 1, "ann", 3, nil))
		}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx, _ := db.Begin(ctx)
			c.op(tx)
			cm, err := tx.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ins, del int
			for _, td := range cm.Delta.Tables {
				ins += len(td.Inserts)
				del += len(td.Deletes)
			}
			if ins != c.inserts || del != c.del {
				t.Fatalf("delta has %d inserts, %d deletes; want %d, %d", ins, del, c.inserts, c.del)
			}
		})
	}
}

func TestIteratorIsStable(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	tx, _ := db.Begin(ctx)
	defer tx.Rollback()
	for i := range 100 {
		tx.Insert(users, userRow(t, uint64(i+1), fmt.Sprint("u", i), 1, nil))
	}
	it, _ := tx.Scan(users)
	n := 0
	for _, ok := it.Next(); ok; _, ok = it.Next() {
		n++
		// Writes while iterating are seen by the transaction, not by the iterator.
		tx.Insert(users, userRow(t, uint64(1000+n), fmt.Sprint("v", n), 1, nil))
		if n == 50 {
			tx.DeleteByKey(mustID[IndexID](t)(db.IndexID("User_id_idx")), key(t, abi.U64(99)))
		}
	}
	if n != 100 {
		t.Fatalf("iterator saw %d rows, want 100", n)
	}
	if c, _ := tx.Count(users); c != 199 {
		t.Fatalf("transaction sees %d rows, want 199", c)
	}
}

// blockingDurability delays or fails commits on demand.
type blockingDurability struct {
	Durability
	mu      sync.Mutex
	gate    chan struct{}
	fail    error
	commits int
	writes  int
}

func (b *blockingDurability) Commit(w []Write) error {
	b.mu.Lock()
	gate, fail := b.gate, b.fail
	b.commits++
	b.writes += len(w)
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return fail
	}
	return b.Durability.Commit(w)
}

func TestSnapshotShowsOnlyDurableState(t *testing.T) {
	ctx := context.Background()
	bd := &blockingDurability{}
	s := openStore(t, t.TempDir(), WithDurabilityWrapper(func(d Durability) Durability { bd.Durability = d; return bd }))
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	bd.mu.Lock()
	bd.gate = make(chan struct{})
	bd.mu.Unlock()
	done := make(chan Commit)
	go func() {
		tx, _ := db.Begin(ctx)
		tx.Insert(users, userRow(t, 1, "ann", 1, nil))
		c, err := tx.Commit(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	// The next writer sees the first one's row before it is durable...
	var tx *Tx
	for {
		tx, _ = db.Begin(ctx)
		if n, _ := tx.Count(users); n == 1 {
			break
		}
		tx.Rollback()
		time.Sleep(time.Millisecond)
	}
	// A read-only transaction that saw it must not report success before
	// what it read is durable.
	roDone := make(chan Commit, 1)
	go func() {
		c, err := tx.Commit(ctx)
		if err != nil {
			t.Error(err)
		}
		roDone <- c
	}()
	// ...and snapshots and Commit's caller do not see it yet.
	if n, _ := db.Snapshot().Count(users); n != 0 || db.Snapshot().Offset() != 0 {
		t.Fatalf("snapshot shows %d rows at offset %d before durability", n, db.Snapshot().Offset())
	}
	select {
	case <-done:
		t.Fatal("commit returned before it was durable")
	case <-time.After(20 * time.Millisecond):
	}
	select {
	case <-roDone:
		t.Fatal("read-only commit returned before what it read was durable")
	default:
	}
	close(bd.gate)
	if c := <-done; c.Offset != 1 {
		t.Fatalf("offset %d", c.Offset)
	}
	if c := <-roDone; c.Offset != 1 || len(c.Delta.Tables) != 0 {
		t.Fatalf("read-only commit: %+v", c)
	}
	if n, _ := db.Snapshot().Count(users); n != 1 {
		t.Fatalf("snapshot after durability shows %d rows", n)
	}
}

func TestDurabilityFailureStopsWrites(t *testing.T) {
	ctx := context.Background()
	bd := &blockingDurability{}
	dir := t.TempDir()
	s := openStore(t, dir, WithDurabilityWrapper(func(d Durability) Durability { bd.Durability = d; return bd }))
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	bd.mu.Lock()
	bd.fail = errors.New("disk on fire")
	bd.mu.Unlock()
	tx, _ := db.Begin(ctx)
	tx.Insert(users, userRow(t, 1, "ann", 1, nil))
	if _, err := tx.Commit(ctx); !errors.Is(err, ErrDatabaseFailed) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("commit: %v", err)
	}
	if _, err := db.Begin(ctx); !errors.Is(err, ErrDatabaseFailed) {
		t.Fatalf("begin after failure: %v", err)
	}
	if n, _ := db.Snapshot().Count(users); n != 0 {
		t.Fatal("a failed commit is visible in snapshots")
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	db, _ = s.Database("app")
	if n, _ := db.Snapshot().Count(users); n != 0 {
		t.Fatal("a failed commit survived a restart")
	}
}

func TestTxTooLarge(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", []abi.TableDef{{Name: "Blob", Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU32, PrimaryKey: true}, {Name: "b", Type: abi.TypeBytes}}}})
	tx, _ := db.Begin(ctx)
	big := make([]byte, 64<<10)
	for i := range 40 {
		row, _ := abi.EncodeRow(nil, []abi.Type{abi.TypeU32, abi.TypeBytes}, []abi.Value{abi.U32(uint32(i)), abi.Bytes(big)})
		if _, err := tx.Insert(0, row); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Commit(ctx); !errors.Is(err, ErrTxTooLarge) {
		t.Fatalf("commit of 2.5 MB: %v", err)
	}
	if n, _ := db.Snapshot().Count(0); n != 0 {
		t.Fatal("refused transaction left rows")
	}
	tx, err := db.Begin(ctx) // the writer slot was freed
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := tx.Count(0); n != 0 {
		t.Fatal("refused transaction is visible to the next writer")
	}
	tx.Rollback()
}

func TestDropDatabaseRemovesExactlyItsKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	keysOf := func() (n map[byte]int) {
		n = map[byte]int{}
		s.bdb.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n[it.Item().Key()[0]]++
			}
			return nil
		})
		return n
	}
	for _, name := range []string{"a", "ab", "b"} {
		db := mustDB(t, s, name, userTables())
		db.SetMeta(ctx, "owner", []byte(name))
		tx, _ := db.Begin(ctx)
		for i := range 10 {
			tx.Insert(0, userRow(t, 0, fmt.Sprint(name, i), 1, nil))
		}
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := keysOf()
	if err := s.DropDatabase(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	after := keysOf()
	// Each database has 10 rows, an offset, an autoinc counter, a meta key and a catalog key.
	if after['C'] != before['C']-1 || after['D'] != before['D']-13 {
		t.Fatalf("keys before %v, after %v", before, after)
	}
	if _, err := s.Database("a"); !errors.Is(err, ErrNoSuchDatabase) {
		t.Fatal(err)
	}
	if err := s.DropDatabase(ctx, "a"); !errors.Is(err, ErrNoSuchDatabase) {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	if got := s.Databases(); !slices.Equal(got, []string{"ab", "b"}) {
		t.Fatalf("databases after reopen: %v", got)
	}
	for _, name := range []string{"ab", "b"} {
		db, _ := s.Database(name)
		if n, _ := db.Snapshot().Count(0); n != 10 {
			t.Fatalf("%s has %d rows", name, n)
		}
		if v, _ := db.Meta("owner"); string(v) != name {
			t.Fatalf("%s meta = %q", name, v)
		}
	}
	// A new database does not inherit anything.
	db := mustDB(t, s, "a", userTables())
	if n, _ := db.Snapshot().Count(0); n != 0 || db.Snapshot().Offset() != 0 {
		t.Fatal("recreated database is not empty")
	}
}

func TestAddTablesAndMetaSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	db := mustDB(t, s, "app", userTables()[:1])
	if err := db.SetMeta(ctx, "module", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	changed := userTables()[:1]
	changed[0].Columns = changed[0].Columns[:2]
	if err := db.AddTables(ctx, changed); !errors.Is(err, ErrInvalidSchema) {
		t.Fatalf("changing a table: %v", err)
	}
	if err := db.AddTables(ctx, userTables()); err != nil {
		t.Fatal(err)
	}
	logID, err := db.TableID("Log")
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := db.Begin(ctx)
	row, _ := abi.EncodeRow(nil, userTables()[1].ColumnTypes(), []abi.Value{abi.String("hi"), abi.Timestamp(5)})
	if _, err := tx.Insert(logID, row); err != nil {
		t.Fatal(err)
	}
	tx.Commit(ctx)
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	db, _ = s.Database("app")
	if len(db.Tables()) != 2 || len(db.Tables()[0].Indexes) != 3 {
		t.Fatalf("tables after reopen: %+v", db.Tables())
	}
	if v, ok := db.Meta("module"); !ok || !bytes.Equal(v, []byte{1, 2, 3}) {
		t.Fatalf("meta after reopen: %v %v", v, ok)
	}
	if n, _ := db.Snapshot().Count(logID); n != 1 {
		t.Fatal("row in added table lost")
	}
}

func TestOnCommitInOffsetOrder(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	var mu sync.Mutex
	var got []uint64
	var bad error
	cancel := db.OnCommit(func(c Commit, after *Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c.Offset)
		if after.Offset() != c.Offset {
			bad = fmt.Errorf("after snapshot at %d for commit %d", after.Offset(), c.Offset)
		}
		if n, _ := after.Count(0); n != c.Offset {
			bad = fmt.Errorf("after snapshot of commit %d has %d rows", c.Offset, n)
		}
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				tx, _ := db.Begin(ctx)
				tx.Insert(0, userRow(t, 0, fmt.Sprint(w, "-", i), 1, nil))
				if _, err := tx.Commit(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatal(bad)
	}
	for i, o := range got {
		if o != uint64(i+1) {
			t.Fatalf("notification %d has offset %d (got %v)", i, o, got)
		}
	}
	if len(got) != 200 {
		t.Fatalf("%d notifications, want 200", len(got))
	}
}

func TestGroupCommitGroups(t *testing.T) {
	ctx := context.Background()
	bd := &blockingDurability{}
	s := openStore(t, t.TempDir(), WithDurabilityWrapper(func(d Durability) Durability { bd.Durability = d; return bd }))
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	bd.mu.Lock()
	bd.commits = 0
	bd.mu.Unlock()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				tx, _ := db.Begin(ctx)
				tx.Insert(0, userRow(t, 0, fmt.Sprint(w, "-", i), 1, nil))
				if _, err := tx.Commit(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	bd.mu.Lock()
	defer bd.mu.Unlock()
	if bd.commits >= 640/2 {
		t.Fatalf("640 transactions took %d durable commits; group commit is not grouping", bd.commits)
	}
	t.Logf("640 transactions in %d durable commits", bd.commits)
}

// TestOversizedKeyRefusedAlone: Badger refuses keys over 65,000 bytes inside
// the group's transaction, which would fail the whole store. A primary key
// that long (or a metadata name) is refused with ErrTxTooLarge before it is
// queued, and every database goes on accepting writes.
func TestOversizedKeyRefusedAlone(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	tables := []abi.TableDef{{Name: "Doc", Columns: []abi.ColumnDef{{Name: "name", Type: abi.TypeString, PrimaryKey: true}}}}
	a := mustDB(t, s, "a", tables)
	b := mustDB(t, s, "b", tables)
	insert := func(db *Database, name string) error {
		tx, err := db.Begin(ctx)
		if err != nil {
			return err
		}
		row, _ := abi.EncodeRow(nil, []abi.Type{abi.TypeString}, []abi.Value{abi.String(name)})
		if _, err := tx.Insert(0, row); err != nil {
			tx.Rollback()
			return err
		}
		_, err = tx.Commit(ctx)
		return err
	}
	long := strings.Repeat("k", 70_000)
	if err := insert(a, long); !errors.Is(err, ErrTxTooLarge) || !strings.Contains(err.Error(), "key of") {
		t.Fatalf("insert with a 70 KB primary key: err = %v, want ErrTxTooLarge naming the key", err)
	}
	if err := a.SetMeta(ctx, long, []byte("x")); !errors.Is(err, ErrTxTooLarge) {
		t.Fatalf("SetMeta with a 70 KB name: err = %v, want ErrTxTooLarge", err)
	}
	for _, db := range []*Database{a, b} {
		if err := insert(db, "short"); err != nil {
			t.Fatalf("database %s after the refusal: %v", db.Name(), err)
		}
		if n, _ := db.Snapshot().Count(0); n != 1 {
			t.Fatalf("database %s has %d rows, want 1", db.Name(), n)
		}
	}
	if err := insert(a, strings.Repeat("k", maxKeySize-100)); err != nil {
		t.Fatalf("a primary key just under the limit: %v", err)
	}
}

// TestCloseWhileCallbackUsesStore: an OnCommit callback that calls back into
// the store while Close waits for it must not deadlock.
func TestCloseWhileCallbackUsesStore(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	db := mustDB(t, s, "app", []abi.TableDef{{Name: "N", Columns: []abi.ColumnDef{{Name: "id", Type: abi.TypeU32, PrimaryKey: true}}}})
	entered := make(chan struct{})
	var once sync.Once
	db.OnCommit(func(Commit, *Snapshot) {
		once.Do(func() { close(entered) })
		time.Sleep(100 * time.Millisecond) // Close takes its locks meanwhile
		_ = s.Databases()
	})
	tx, _ := db.Begin(ctx)
	row, _ := abi.EncodeRow(nil, []abi.Type{abi.TypeU32}, []abi.Value{abi.U32(1)})
	if _, err := tx.Insert(0, row); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close deadlocked with an OnCommit callback calling Databases")
	}
}

func TestDeleteByKeyAtMost(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", []abi.TableDef{{
		Name: "Msg",
		Columns: []abi.ColumnDef{
			{Name: "id", Type: abi.TypeU32, PrimaryKey: true},
			{Name: "room", Type: abi.TypeU8},
		},
		Indexes: []abi.IndexDef{{Name: "Msg_room_idx", Columns: []string{"room"}}},
	}})
	byRoom, err := db.IndexID("Msg_room_idx")
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := db.Begin(ctx)
	defer tx.Rollback()
	for i := range 5 {
		row, _ := abi.EncodeRow(nil, []abi.Type{abi.TypeU32, abi.TypeU8}, []abi.Value{abi.U32(uint32(i)), abi.U8(7)})
		if _, err := tx.Insert(0, row); err != nil {
			t.Fatal(err)
		}
	}
	room7 := key(t, abi.U8(7))
	if n, err := tx.DeleteByKeyAtMost(byRoom, room7, 4); !errors.Is(err, ErrTxTooLarge) || n != 0 {
		t.Fatalf("deleting 5 rows with a limit of 4: n=%d err=%v, want 0 and ErrTxTooLarge", n, err)
	}
	if n, _ := tx.Count(0); n != 5 {
		t.Fatalf("a refused delete removed rows: %d left", n)
	}
	if n, err := tx.DeleteByKeyAtMost(byRoom, room7, 5); err != nil || n != 5 {
		t.Fatalf("deleting 5 rows with a limit of 5: n=%d err=%v", n, err)
	}
}
