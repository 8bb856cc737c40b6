package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/store"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestRuntime(t testing.TB, opts ...Option) *Runtime {
	t.Helper()
	ctx := context.Background()
	opts = append([]Option{WithCompilationCacheDir(filepath.Join(t.TempDir(), "cache"))}, opts...)
	if raceEnabled {
		// Before the test's own options, which may set a timeout to test it.
		opts = append([]Option{WithCompileTimeout(10 * time.Minute)}, opts...)
	}
	rt, err := New(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	return rt
}

func newTestStore(t testing.TB, opts ...store.Option) *store.Store {
	t.Helper()
	opts = append([]store.Option{store.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	st, err := store.Open(context.Background(), t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newWATDatabase compiles the hand-written ABI guest and creates a database for it.
func newWATDatabase(t testing.TB, opts ...Option) (*Database, *store.Store) {
	t.Helper()
	ctx := context.Background()
	rt := newTestRuntime(t, opts...)
	mod, err := rt.Compile(ctx, readTestdata(t, "abi_guest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	st := newTestStore(t)
	db, err := rt.CreateDatabase(ctx, st, "wat", mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(ctx) })
	return db, st
}

func u64Args(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// rowIDs returns the u64 first columns of table name's rows, as committed.
func rowIDs(t testing.TB, db *Database, name string) []uint64 {
	t.Helper()
	tid, err := db.Store().TableID(name)
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.Store().Snapshot().Scan(tid)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var ids []uint64
	for {
		row, ok := it.Next()
		if !ok {
			return ids
		}
		ids = append(ids, binary.LittleEndian.Uint64(row))
	}
}

func call(t testing.TB, db *Database, reducer string, args []byte) (*CallResult, error) {
	t.Helper()
	return db.Call(context.Background(), CallRequest{Reducer: reducer, Args: args, Timestamp: time.UnixMicro(1_700_000_000_000_000)})
}

func bsatnString(s string) []byte {
	w := abi.NewWriter(nil)
	w.WriteString(s)
	return w.Bytes()
}

var _ = bytes.Equal

type storeTableID = store.TableID

func (v *version) idleInstances() []*instance {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]*instance(nil), v.idle...)
}

// newDevVerifier makes a server key in a temporary directory and a verifier
// that trusts its issuer, as a dev server does: key.Mint signs tokens that
// v accepts.
func newDevVerifier(t *testing.T) (*auth.ServerKey, *auth.Verifier) {
	t.Helper()
	key, err := auth.OpenServerKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.WithIssuers(key.Issuer()))
	if err != nil {
		t.Fatal(err)
	}
	return key, v
}
