package store

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// The crash test runs a child process (this test binary, re-executed with
// crashChildEnv set) that commits transactions from many goroutines and
// prints each acknowledged one; the parent kills it with SIGKILL mid-load,
// reopens the store, and checks that every acknowledged transaction is
// there and that no transaction is there in part.

const crashChildEnv = "STORE_CRASH_CHILD_DIR"

func crashTables() []abi.TableDef {
	return []abi.TableDef{{
		Name: "Ev",
		Columns: []abi.ColumnDef{
			{Name: "id", Type: abi.TypeU64, PrimaryKey: true, AutoInc: true},
			{Name: "tx", Type: abi.TypeU64},
			{Name: "k", Type: abi.TypeU8},
			{Name: "pad", Type: abi.TypeBytes},
		},
		Indexes: []abi.IndexDef{{Name: "Ev_tx_idx", Columns: []string{"tx"}}},
	}, {
		Name:    "Counter",
		Columns: []abi.ColumnDef{{Name: "name", Type: abi.TypeString, PrimaryKey: true}, {Name: "n", Type: abi.TypeU64}},
	}}
}

func counterRow(n uint64) []byte {
	b, _ := abi.EncodeRow(nil, crashTables()[1].ColumnTypes(), []abi.Value{abi.String("txs"), abi.U64(n)})
	return b
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestCrashRecovery")
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	db, err := s.Database("crash")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ev, _ := db.TableID("Ev")
	cnt, _ := db.TableID("Counter")
	cntPK, _ := db.IndexID("Counter_name_idx")
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	round := uint64(time.Now().UnixNano())
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(0); ; seq++ {
				txid := round<<12 ^ uint64(w)<<40 ^ seq
				k := uint8(1 + (seq+uint64(w))%5)
				tx, err := db.Begin(ctx)
				if err != nil {
					fmt.Println("ERR", err)
					os.Exit(2)
				}
				for range k {
					row, _ := abi.EncodeRow(nil, crashTables()[0].ColumnTypes(), []abi.Value{abi.U64(0), abi.U64(txid), abi.U8(k), abi.Bytes(make([]byte, 100))})
					if _, err := tx.Insert(ev, row); err != nil {
						fmt.Println("ERR", err)
						os.Exit(2)
					}
				}
				var n uint64
				it, _ := tx.Scan(cnt)
				if r, ok := it.Next(); ok {
					vals, _ := abi.DecodeRow(crashTables()[1].ColumnTypes(), r)
					n = vals[1].AsUint()
					_, err = tx.Update(cntPK, counterRow(n+1))
				} else {
					_, err = tx.Insert(cnt, counterRow(1))
				}
				if err != nil {
					fmt.Println("ERR", err)
					os.Exit(2)
				}
				c, err := tx.Commit(ctx)
				if err != nil {
					fmt.Println("ERR", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ACK %d %d %d\n", txid, k, c.Offset)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	mustDB(t, s, "crash", crashTables())
	s.Close()

	acked := map[uint64]uint8{} // txid -> rows
	var maxOffset uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		killAt := 300 + 400*round
		n := 0
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		for sc.Scan() {
			var txid, off uint64
			var k uint8
			if _, err := fmt.Sscanf(sc.Text(), "ACK %d %d %d", &txid, &k, &off); err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			acked[txid] = k
			maxOffset = max(maxOffset, off)
			if n++; n == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		timer.Stop()
		cmd.Wait()
		if n < killAt {
			t.Fatalf("round %d: child acknowledged only %d transactions before exiting", round, n)
		}

		s := openStore(t, dir)
		db, err := s.Database("crash")
		if err != nil {
			t.Fatal(err)
		}
		snap := db.Snapshot()
		present := map[uint64]int{}
		kOf := map[uint64]uint8{}
		var maxID uint64
		it, _ := snap.Scan(0)
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			vals, err := abi.DecodeRow(crashTables()[0].ColumnTypes(), r)
			if err != nil {
				t.Fatal(err)
			}
			present[vals[1].AsUint()]++
			kOf[vals[1].AsUint()] = uint8(vals[2].AsUint())
			maxID = max(maxID, vals[0].AsUint())
		}
		for txid, k := range acked {
			if present[txid] != int(k) {
				t.Fatalf("round %d: acknowledged transaction %d has %d of its %d rows", round, txid, present[txid], k)
			}
		}
		for txid, n := range present {
			if n != int(kOf[txid]) {
				t.Fatalf("round %d: transaction %d is half there: %d of %d rows", round, txid, n, kOf[txid])
			}
		}
		it, _ = snap.Scan(1)
		r, _ := it.Next()
		vals, _ := abi.DecodeRow(crashTables()[1].ColumnTypes(), r)
		if vals[1].AsUint() != uint64(len(present)) || snap.Offset() != uint64(len(present)) {
			t.Fatalf("round %d: counter %d, offset %d, transactions present %d", round, vals[1].AsUint(), snap.Offset(), len(present))
		}
		if snap.Offset() < maxOffset {
			t.Fatalf("round %d: recovered offset %d < acknowledged %d", round, snap.Offset(), maxOffset)
		}
		// Auto-increment resumes past every id in use.
		tx, _ := db.Begin(ctx)
		row, _ := abi.EncodeRow(nil, crashTables()[0].ColumnTypes(), []abi.Value{abi.U64(0), abi.U64(0), abi.U8(1), abi.Bytes(nil)})
		stored, err := tx.Insert(0, row)
		if err != nil {
			t.Fatalf("round %d: insert after recovery: %v", round, err)
		}
		if id, _ := abi.DecodeRow(crashTables()[0].ColumnTypes(), stored); id[0].AsUint() <= maxID {
			t.Fatalf("round %d: autoinc gave %d, but %d is in use", round, id[0].AsUint(), maxID)
		}
		tx.Rollback()
		t.Logf("round %d: %d acknowledged, %d present, offset %d", round, n, len(present), snap.Offset())
		s.Close()
	}
}
