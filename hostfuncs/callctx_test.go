package hostfuncs

import (
	"context"
	"errors"
	"testing"
	"time"
)

type testKey struct{}

func TestCallContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		parent  func() (context.Context, context.CancelFunc)
		wait    time.Duration
		wantErr error
	}{
		{"within the deadline", time.Hour, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 0, nil},
		{"past the deadline", 5 * time.Millisecond, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 20 * time.Millisecond, context.DeadlineExceeded},
		{"parent cancelled", time.Hour, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, 0, context.Canceled},
		{"parent's earlier deadline", time.Hour, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 5*time.Millisecond)
		}, 20 * time.Millisecond, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancel := tc.parent()
			defer cancel()
			parent = context.WithValue(parent, testKey{}, "v")
			c := &Call{}
			ctx := c.Context(parent, tc.timeout)
			time.Sleep(tc.wait)
			if err := ctx.Err(); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Err() = %v, want %v", err, tc.wantErr)
			}
			if callFrom(ctx) != c {
				t.Error("callFrom does not find the Call")
			}
			if got, _ := ctx.Value(callKey{}).(*Call); got != c {
				t.Error("Value(callKey) does not return the Call")
			}
			if ctx.Value(testKey{}) != "v" {
				t.Error("the parent's values are lost")
			}
			dl, ok := ctx.Deadline()
			if pd, pok := parent.Deadline(); !ok || pok && dl.After(pd) || dl.After(time.Now().Add(tc.timeout)) {
				t.Errorf("Deadline() = %v, %v", dl, ok)
			}
			// Done exists on demand and agrees with Err.
			select {
			case <-ctx.Done():
				if tc.wantErr == nil {
					t.Error("Done closed within the deadline")
				}
			case <-time.After(50 * time.Millisecond):
				if tc.wantErr != nil {
					t.Error("Done not closed past the deadline")
				}
			}
			if err := ctx.Err(); (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Err() after Done = %v", err)
			}
			c.End()
			if c.ctx.real.Load() != nil || c.ctx.parent != nil {
				t.Error("End keeps the call's context state")
			}
		})
	}
}

// TestCallContextDoneAtDeadline: a Done channel asked for before the
// deadline closes when it passes, with no one reading Err.
func TestCallContextDoneAtDeadline(t *testing.T) {
	c := &Call{}
	ctx := c.Context(context.Background(), 10*time.Millisecond)
	defer c.End()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed 5s after a 10ms deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err() = %v", ctx.Err())
	}
}

func BenchmarkCallContext(b *testing.B) {
	c := &Call{}
	parent := context.Background()
	b.Run("call-context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx := c.Context(parent, time.Second)
			stopIfDone(ctx, "x")
			_ = callFrom(ctx)
			_ = ctx.Err()
			c.ctx.end()
		}
	})
	b.Run("with-timeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(parent, time.Second)
			ctx = WithCall(ctx, c)
			stopIfDone(ctx, "x")
			_ = callFrom(ctx)
			_ = ctx.Err()
			cancel()
		}
	})
}
