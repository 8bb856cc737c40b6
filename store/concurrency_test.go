package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// Readers scan snapshots while writers commit: every snapshot must be
// internally consistent (each transaction inserts one row and deletes
// nothing, so a snapshot at offset n has n rows in every index).
func TestSnapshotsUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	users, _ := db.TableID("User")
	byAge, _ := db.IndexID("User_age_name_idx")
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				snap := db.Snapshot()
				n, _ := snap.Count(users)
				full := len(collect(snap.Scan(users)))
				viaIndex := len(collect(snap.ScanRange(byAge, Bound{Kind: Unbounded}, Bound{Kind: Unbounded})))
				if uint64(full) != snap.Offset() || n != snap.Offset() || viaIndex != full {
					errc <- fmt.Errorf("reader %d: snapshot at offset %d: count %d, scan %d, index scan %d", r, snap.Offset(), n, full, viaIndex)
					return
				}
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 50 {
				tx, err := db.Begin(ctx)
				if err != nil {
					errc <- err
					return
				}
				// Scan inside the transaction too, so its iterators copy trees.
				if n, _ := tx.Count(users); n != uint64(len(collect(tx.Scan(users)))) {
					errc <- errors.New("transaction scan disagrees with its count")
				}
				tx.Insert(users, userRow(t, 0, fmt.Sprint(w, "-", i), uint8(i), nil))
				if _, err := tx.Commit(ctx); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	writers.Wait()
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestBeginHonoursContext(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	db := mustDB(t, s, "app", userTables())
	tx, _ := db.Begin(context.Background())
	defer tx.Rollback()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// The writer slot is taken; Begin gives up when its context does.
	if _, err := db.Begin(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin while the writer is busy: %v", err)
	}
	// Snapshots do not wait for the writer.
	done := make(chan struct{})
	go func() { db.Snapshot().Count(0); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Snapshot blocked on the writer")
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	db := mustDB(t, s, "app", userTables())
	tx, _ := db.Begin(ctx)
	tx.Insert(0, userRow(t, 0, "ann", 1, nil))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after Close: %v", err)
	}
	if _, err := db.Begin(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
	if _, err := s.CreateDatabase(ctx, "b", userTables()); !errors.Is(err, ErrClosed) {
		t.Fatalf("CreateDatabase after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = openStore(t, dir)
	defer s.Close()
	db, _ = s.Database("app")
	if n, _ := db.Snapshot().Count(0); n != 0 {
		t.Fatal("a transaction that failed to commit at Close was stored")
	}
}

// Rows of every column type survive a reopen byte for byte, and their
// indexes work after recovery.
func TestAllTypesRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	td := fuzzTable()
	td.Columns = append([]abi.ColumnDef{{Name: "pk", Type: abi.TypeI64, PrimaryKey: true}}, td.Columns...)
	td.Columns = append(td.Columns, abi.ColumnDef{Name: "f32", Type: abi.TypeF32}, abi.ColumnDef{Name: "u16", Type: abi.TypeU16, Unique: true})
	s := openStore(t, dir)
	db := mustDB(t, s, "app", []abi.TableDef{td})
	var want [][]byte
	tx, _ := db.Begin(ctx)
	for i := range 20 {
		row, err := abi.EncodeRow(nil, td.ColumnTypes(), []abi.Value{
			abi.I64(int64(i - 10)), abi.String(fmt.Sprint("s\x00", i)), abi.Some(abi.Vec(abi.I16(int16(-i)))), abi.F64(float64(i) - 9.5),
			abi.Bytes([]byte{byte(i), 0}), abi.Vec(abi.None(), abi.Some(abi.String("z"))), abi.IdentityValue(abi.Identity{byte(i)}),
			abi.Timestamp(int64(i) * 1e6), abi.Bool(i%2 == 0), abi.F32(float32(i)), abi.U16(uint16(i * 1000)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Insert(0, row); err != nil {
			t.Fatal(err)
		}
		want = append(want, row)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	db, _ = s.Database("app")
	got := collect(db.Snapshot().Scan(0)) // primary-key order: i-10 ascending
	if len(got) != len(want) {
		t.Fatalf("%d rows after reopen", len(got))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("row %d changed across reopen", i)
		}
	}
	ix, _ := db.IndexID("F_u16_idx")
	w := abi.NewWriter(nil)
	w.WriteU16(5000)
	if rows := collect(db.Snapshot().ScanPoint(ix, w.Bytes())); len(rows) != 1 || string(rows[0]) != string(want[5]) {
		t.Fatalf("unique index after reopen found %d rows", len(rows))
	}
}
