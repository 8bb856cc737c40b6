package runtime

import (
	"context"
	"sync"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

// TestPoolUnderConcurrentCallers: many callers at once, more than the pool
// keeps idle, reuse the pooled instances once it is warm instead of making
// and discarding one per call (calls run one at a time per database, so a
// couple of instances serve them all).
func TestPoolUnderConcurrentCallers(t *testing.T) {
	db := newGoDatabase(t, sdkTestModule)
	ctx := context.Background()
	const callers, calls = 16, 20
	run := func() {
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				key := args(func(w *abi.Writer) { w.WriteString(string(rune('a' + c))) })
				for range calls {
					if _, err := db.Call(ctx, CallRequest{Reducer: "incr", Args: key}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run() // warm: the first burst makes a few, at most maxMaking at a time
	t.Logf("the cold burst made %d instances for %d callers", db.instancesMade.Load(), callers)
	before := db.instancesMade.Load()
	run()
	if made := db.instancesMade.Load() - before; made > 2 {
		t.Fatalf("%d concurrent callers making %d calls each made %d new instances once the pool was warm; want at most 2", callers, calls, made)
	}

	// A republish leaves the new version's pool empty: the callers that find
	// it so make instances at most maxMaking at a time, and wait for those
	// rather than each making its own.
	if err := db.Update(ctx, db.Module()); err != nil {
		t.Fatal(err)
	}
	before = db.instancesMade.Load()
	run()
	v := db.cur.Load()
	v.mu.Lock()
	peak := v.peakMaking
	v.mu.Unlock()
	t.Logf("after a republish, %d callers made %d instances, at most %d at once", callers, db.instancesMade.Load()-before, peak)
	if peak < 1 || peak > maxMaking {
		t.Fatalf("%d callers finding the pool empty made up to %d instances at once; want at most %d", callers, peak, maxMaking)
	}
}
