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
	run() // warm: the first burst may make an instance per caller
	before := db.instancesMade.Load()
	run()
	if made := db.instancesMade.Load() - before; made > 2 {
		t.Fatalf("%d concurrent callers making %d calls each made %d new instances once the pool was warm; want at most 2", callers, calls, made)
	}
}
