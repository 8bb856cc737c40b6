package runtime

import (
	"context"
	"fmt"

	"github.com/spacetime-go/spacetime/store"
)

// CallAsync runs a reducer like Call, but returns once its transaction is
// ordered rather than once it is durable, so that the caller can run its
// next call meanwhile (a WebSocket connection pipelining its requests).
//
// done is called exactly once with what Call would have returned. A call
// that fails, or that has nothing to wait for, is answered on the calling
// goroutine before CallAsync returns; a committed one is answered once its
// transaction is durable, from the store's committer (or from this
// goroutine, when it writes the group itself). The answers of committed
// calls come in the order of their transactions. done must not block: it
// holds up the commits after it.
func (d *Database) CallAsync(ctx context.Context, req CallRequest, done func(*CallResult, error)) {
	v := d.cur.Load()
	id, ok := v.mod.reducers[req.Reducer]
	if !ok {
		done(nil, fmt.Errorf("%w: database %s has no reducer %q", ErrNoSuchReducer, d.name, req.Reducer))
		return
	}
	if rd := &v.mod.def.Reducers[id]; rd.Lifecycle != "" {
		done(nil, fmt.Errorf("%w: %s is the %s lifecycle reducer, which only the host calls", ErrNoSuchReducer, rd.Name, rd.Lifecycle))
		return
	}
	res, err := d.run(ctx, v, id, req, done)
	if res != nil || err != nil {
		done(res, err)
	}
}

// commitThen commits tx without waiting: res, completed with the commit, or
// the commit's error goes to then once known. The commit is not cancelled
// by the caller's context (see run).
func (d *Database) commitThen(tx *store.Tx, reducer string, res *CallResult, then func(*CallResult, error)) error {
	name := d.name
	err := tx.CommitFunc(func(c store.Commit, err error) {
		if err != nil {
			then(nil, fmt.Errorf("runtime: database %s: committing %s: %w", name, reducer, err))
			return
		}
		res.Commit = c
		then(res, nil)
	})
	if err != nil {
		return fmt.Errorf("runtime: database %s: committing %s: %w", d.name, reducer, err)
	}
	return nil
}
