package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestRSSProbe measures resident memory in a fresh process; it runs only
// when STORE_RSS_PROBE names a mode, one process per mode:
//
//	STORE_RSS_PROBE=store go test -run TestRSSProbe -v ./store/
//	STORE_RSS_PROBE=badger-tuned go test -run TestRSSProbe -v ./store/
//	STORE_RSS_PROBE=badger-default go test -run TestRSSProbe -v ./store/
//
// STORE_RSS_ROWS sets how many rows to write (default 100000) and
// STORE_RSS_SETTLE how long to idle before measuring (default 2s). The badger
// modes write the same keys and values without in-memory tables.
func TestRSSProbe(t *testing.T) {
	mode := os.Getenv("STORE_RSS_PROBE")
	if mode == "" {
		t.Skip("set STORE_RSS_PROBE=store|badger-tuned|badger-default")
	}
	rows := 100000
	if n, err := strconv.Atoi(os.Getenv("STORE_RSS_ROWS")); err == nil {
		rows = n
	}
	dir := t.TempDir()
	settleTime := 2 * time.Second
	if d, err := time.ParseDuration(os.Getenv("STORE_RSS_SETTLE")); err == nil {
		settleTime = d
	}
	settle := func() string {
		runtime.GC()
		debug.FreeOSMemory()
		time.Sleep(settleTime)
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		b, _ := os.ReadFile("/proc/self/status")
		var rss []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, f := range []string{"VmRSS:", "RssAnon:", "RssFile:"} {
				if strings.HasPrefix(l, f) {
					rss = append(rss, f+strings.Join(strings.Fields(strings.TrimPrefix(l, f)), ""))
				}
			}
		}
		return fmt.Sprintf("%s heap_inuse=%dMB", strings.Join(rss, " "), m.HeapInuse>>20)
	}
	ctx := context.Background()
	switch mode {
	case "store":
		s := openStore(t, dir)
		defer s.Close()
		db := mustDB(t, s, "probe", benchTables())
		t.Logf("%s empty: %s", mode, settle())
		loadRows(t, db, rows, "hello, world")
		t.Logf("%s %d rows: %s", mode, rows, settle())
	case "badger-tuned", "badger-default":
		opts := badgerOptions(dir, slog.New(slog.DiscardHandler))
		if mode == "badger-default" {
			opts = badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true)
		}
		bdb, err := badger.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		t.Logf("%s empty: %s", mode, settle())
		for i := 0; i < rows; {
			txn := bdb.NewTransaction(true)
			for j := 0; j < 5000 && i < rows; j, i = j+1, i+1 {
				k := binary.BigEndian.AppendUint64([]byte("D\x00\x00\x00\x00\x00\x00\x00\x01r\x00\x00\x00\x00"), uint64(i))
				if err := txn.Set(k, msgRow(uint64(i), byte(i), "hello, world")); err != nil {
					t.Fatal(err)
				}
			}
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s %d rows: %s", mode, rows, settle())
		if p := os.Getenv("STORE_RSS_HEAPPROFILE"); p != "" {
			f, _ := os.Create(p)
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	_ = ctx
}
