package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spacetime-go/spacetime/hostfuncs"
)

// TestDatabaseHostLimits: a database's own host limits bind its calls and
// no other database's, and the failed call's error names the limit.
func TestDatabaseHostLimits(t *testing.T) {
	ctx := context.Background()
	rt := adversarialRuntime(t)
	st := newTestStore(t)
	mod, err := rt.Compile(ctx, readTestdata(t, "adversarial/attacks.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	small, err := rt.CreateDatabase(ctx, st, "small", mod, WithDatabaseLimits(hostfuncs.Limits{MaxRowsWritten: 7, MaxHandles: 4}), WithDatabaseMaxArgsBytes(4))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close(ctx)
	big, err := rt.CreateDatabase(ctx, st, "big", mod)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close(ctx)
	for _, tc := range []struct {
		db      *Database
		reducer string
		args    []byte
		is      error
		says    string
	}{
		{small, "insert_until_limit", nil, ErrReducerFailed, "limit of 7 rows written"},
		{big, "insert_until_limit", nil, ErrReducerFailed, "limit of 500 rows written"},
		{small, "leak_iterators", nil, ErrOutOfEnergy, "(before that, table_scan refused: the call reached its limit of 4 iterators"},
		{big, "leak_iterators", nil, ErrOutOfEnergy, "limit of 64 iterators"},
		{small, "ok", u64Args(1), ErrInvalidArguments, "at most 4 are accepted (max_args_bytes"},
	} {
		_, err := tc.db.Call(ctx, CallRequest{Reducer: tc.reducer, Args: tc.args})
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s on %s: %v; want %v saying %q", tc.reducer, tc.db.Name(), err, tc.is, tc.says)
		}
		var le *hostfuncs.LimitError
		if tc.is != ErrInvalidArguments && (!errors.As(err, &le) || !errors.Is(err, hostfuncs.ErrLimit)) {
			t.Errorf("%s on %s: the error does not carry the *hostfuncs.LimitError: %v", tc.reducer, tc.db.Name(), err)
		}
	}
	if _, err := big.Call(ctx, CallRequest{Reducer: "ok", Args: u64Args(1)}); err != nil {
		t.Errorf("ok on big: %v", err)
	}
}
