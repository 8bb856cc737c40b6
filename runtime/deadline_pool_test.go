package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLateReturnKeepsInstance: a guest that returns normally after its
// deadline, or after its caller left, fails the call; its instance goes back
// to the pool unless wazero's watchdog (WithCloseOnContextDone) may have
// closed it.
func TestLateReturnKeepsInstance(t *testing.T) {
	// hostcalls(n) calls bytes_source_len n times: tens of milliseconds of
	// host calls that do not look at the context, so the guest returns
	// normally after its caller's context ended.
	long := binary.LittleEndian.AppendUint32(nil, 1_000_000)
	for _, tc := range []struct {
		name        string
		closeOnDone bool
		req         CallRequest
		callerAfter time.Duration // the caller's context ends after this; 0: never
		want        string
	}{
		{name: "deadline", req: CallRequest{Reducer: "noop", Timeout: time.Nanosecond}, want: "ran past its deadline"},
		{name: "caller left", req: CallRequest{Reducer: "hostcalls", Args: long}, callerAfter: 5 * time.Millisecond, want: "caller went away"},
		{name: "deadline with watchdog", closeOnDone: true, req: CallRequest{Reducer: "noop", Timeout: time.Nanosecond}, want: "ran past its deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := newWATDatabase(t, WithCloseOnContextDone(tc.closeOnDone))
			ctx := context.Background()
			if _, err := db.Call(ctx, CallRequest{Reducer: "noop"}); err != nil {
				t.Fatal(err)
			}
			made := db.instancesMade.Load()
			var err error
			// Under load the caller's context may end before the call
			// starts (then nothing ran): try again.
			for range 5 {
				callCtx, cancel := ctx, context.CancelFunc(func() {})
				if tc.callerAfter > 0 {
					callCtx, cancel = context.WithTimeout(ctx, tc.callerAfter)
				}
				_, err = db.Call(callCtx, tc.req)
				cancel()
				if err == nil || strings.Contains(err.Error(), tc.want) {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s: err = %v; want one saying %q", tc.req.Reducer, err, tc.want)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: err = %v; want context.DeadlineExceeded", tc.req.Reducer, err)
			}
			if _, err := db.Call(ctx, CallRequest{Reducer: "noop"}); err != nil {
				t.Fatal(err)
			}
			reused := db.instancesMade.Load() == made
			if want := !tc.closeOnDone; reused != want {
				t.Fatalf("instance reused after a late return = %v; want %v (%d instances made, %d before)", reused, want, db.instancesMade.Load(), made)
			}
		})
	}
}
