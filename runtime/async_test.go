package runtime

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCallAsync: each outcome reaches done exactly once, as Call would give
// it; a committed call's only once its transaction is durable.
func TestCallAsync(t *testing.T) {
	db, _ := newWATDatabase(t)
	for _, tc := range []struct {
		name    string
		reducer string
		args    []byte
		wantErr error
		rows    []uint64 // T's rows after the call (init inserted 1)
	}{
		{name: "committed", reducer: "insert", args: u64Args(7), rows: []uint64{1, 7}},
		{name: "read-only", reducer: "noop", rows: []uint64{1, 7}},
		{name: "the reducer fails", reducer: "fail", wantErr: ErrReducerFailed, rows: []uint64{1, 7}},
		{name: "a duplicate key fails", reducer: "insert", args: u64Args(7), wantErr: ErrReducerFailed, rows: []uint64{1, 7}},
		{name: "trap", reducer: "trap", wantErr: ErrTrap, rows: []uint64{1, 7}},
		{name: "no such reducer", reducer: "nope", wantErr: ErrNoSuchReducer, rows: []uint64{1, 7}},
		{name: "lifecycle", reducer: "init", wantErr: ErrNoSuchReducer, rows: []uint64{1, 7}},
		{name: "bad arguments", reducer: "insert", args: []byte{1}, wantErr: ErrInvalidArguments, rows: []uint64{1, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type outcome struct {
				res     *CallResult
				err     error
				durable uint64
			}
			got := make(chan outcome, 2)
			db.CallAsync(context.Background(), CallRequest{Reducer: tc.reducer, Args: tc.args}, func(res *CallResult, err error) {
				got <- outcome{res, err, db.Store().Snapshot().Offset()}
			})
			o := <-got
			if !errors.Is(o.err, tc.wantErr) {
				t.Fatalf("error %v, want %v", o.err, tc.wantErr)
			}
			if tc.wantErr == nil {
				if o.res == nil || o.res.Commit.Offset == 0 {
					t.Fatalf("result %+v", o.res)
				}
				if o.durable < o.res.Commit.Offset {
					t.Fatalf("answered at offset %d while %d is durable", o.res.Commit.Offset, o.durable)
				}
			} else if o.res != nil {
				t.Fatalf("a result with the error: %+v", o.res)
			}
			select {
			case o := <-got:
				t.Fatalf("answered twice: %+v", o)
			case <-time.After(10 * time.Millisecond):
			}
			if ids := rowIDs(t, db, "T"); !slices.Equal(ids, tc.rows) {
				t.Fatalf("rows %v, want %v", ids, tc.rows)
			}
		})
	}
}

// TestCallAsyncOrder: concurrent callers that do not wait get their answers
// in the order of their transactions.
func TestCallAsyncOrder(t *testing.T) {
	db, _ := newWATDatabase(t)
	const callers, each = 4, 40
	var mu sync.Mutex
	var offsets []uint64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				wg.Add(1)
				db.CallAsync(context.Background(), CallRequest{Reducer: "insert", Args: u64Args(uint64(1000 + c*each + i))}, func(res *CallResult, err error) {
					defer wg.Done()
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					offsets = append(offsets, res.Commit.Offset)
					mu.Unlock()
				})
			}
		})
	}
	wg.Wait()
	if len(offsets) != callers*each {
		t.Fatalf("%d answers, want %d", len(offsets), callers*each)
	}
	for i := 1; i < len(offsets); i++ {
		if offsets[i] <= offsets[i-1] {
			t.Fatalf("answers out of order at %d: %v", i, offsets[max(0, i-3):i+1])
		}
	}
}
