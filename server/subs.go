package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/server/subscription"
)

// subscriptions connects a database's WebSockets to its subscription engine
// and converts the engine's values to wire messages.
type subscriptions struct {
	d      *database
	engine *subscription.Engine

	mu    sync.Mutex
	conns map[abi.ConnectionID]*wsConn
}

func newSubscriptions(d *database) *subscriptions {
	ss := &subscriptions{d: d, conns: map[abi.ConnectionID]*wsConn{}}
	var own []subscription.Option
	if n := d.limits.MaxSubscriptions; n > 0 {
		own = append(own, subscription.WithMaxSubscriptionsPerConn(n))
	}
	ss.engine = subscription.New(d.rdb.Store(), d.def, append(own,
		subscription.WithLogger(d.s.log),
		subscription.WithMaxQueuedUpdates(d.s.cfg.sendQueue),
		// enqueue never blocks (a full queue disconnects the client), so
		// the engine hands each update to the connection's writer from the
		// commit's own goroutines, without a goroutine per connection.
		subscription.WithNonBlockingSend(),
		// A set dropped because its connection may no longer read one of its
		// tables (republish, identity change) is reported in stream order:
		// after its last update, before anything later.
		subscription.WithRevokeHandler(func(r subscription.Revoked) {
			ss.mu.Lock()
			c := ss.conns[r.Conn]
			ss.mu.Unlock()
			if c != nil {
				c.send("SubscriptionError", map[string]any{"request_id": nil, "query_set_id": r.QuerySetID, "error": subscriptionError(r.Err)})
			}
		}),
		subscription.WithOverflowHandler(func(id abi.ConnectionID) {
			ss.mu.Lock()
			c := ss.conns[id]
			ss.mu.Unlock()
			if c != nil {
				c.closeWith(ClosePolicy, fmt.Sprintf("too slow: %d updates queued", d.s.cfg.sendQueue))
			}
		}),
	)...)
	return ss
}

func (ss *subscriptions) connect(c *wsConn) {
	ss.mu.Lock()
	ss.conns[c.id] = c
	ss.mu.Unlock()
	caller, _ := c.currentIdentity()
	ss.engine.Connect(c.id, caller, c.owner, c.enqueueUpdate)
}

func (ss *subscriptions) disconnect(c *wsConn) {
	ss.engine.Disconnect(c.id)
	ss.mu.Lock()
	delete(ss.conns, c.id)
	ss.mu.Unlock()
	ss.updateGauge()
}

// setIdentity recomputes the connection's views under its new identity:
// the rows that left and entered each view arrive as one recomputed
// TransactionUpdate; sets it may no longer read are dropped with a
// SubscriptionError (through the revoke handler).
func (ss *subscriptions) setIdentity(c *wsConn, id abi.Identity) {
	if r := ss.engine.SetIdentity(c.id, id); len(r) > 0 {
		ss.d.s.log.Info("subscriptions dropped: the new identity may not read them", "database", ss.d.name, "connection", c.id, "sets", len(r))
		ss.updateGauge()
	}
}

// moduleChanged is called after a republish: the engine recomputes the
// views whose grants changed, and drops the query sets that read a table the
// new module no longer opens to their connection; each such client gets a
// SubscriptionError (request_id null: no request caused it) through the
// revoke handler.
func (ss *subscriptions) moduleChanged() {
	if r := ss.engine.ModuleChanged(); len(r) > 0 {
		ss.d.s.log.Info("subscriptions dropped after a republish: the module's grants no longer open their tables", "database", ss.d.name, "sets", len(r))
	}
	ss.updateGauge()
}

func (ss *subscriptions) close() { ss.engine.Close() }

func (ss *subscriptions) updateGauge() {
	ss.d.s.metrics.subscriptions.WithLabelValues(ss.d.name).Set(float64(ss.engine.Stats().QuerySets))
}

// Wire forms of the engine's values (DESIGN.md, "Server").
type (
	wireTableRows struct {
		Table string            `json:"table"`
		Rows  []json.RawMessage `json:"rows"`
	}
	wireTableUpdate struct {
		Table   string            `json:"table"`
		Inserts []json.RawMessage `json:"inserts"`
		Deletes []json.RawMessage `json:"deletes"`
	}
	wireQuerySetUpdate struct {
		QuerySetID uint32            `json:"query_set_id"`
		Tables     []wireTableUpdate `json:"tables"`
	}
	wireTx struct {
		Offset uint64 `json:"offset"`
		// Recomputed marks a change of the connection's view (its identity
		// changed) rather than a transaction.
		Recomputed bool `json:"recomputed,omitempty"`
	}
	wireTransactionUpdate struct {
		Tx        wireTx               `json:"tx"`
		QuerySets []wireQuerySetUpdate `json:"query_sets"`
	}
)

func tableRows(tables []subscription.TableRows) []wireTableRows {
	out := make([]wireTableRows, len(tables))
	for i, t := range tables {
		out[i] = wireTableRows{Table: t.Table, Rows: t.Rows}
		if out[i].Rows == nil {
			out[i].Rows = []json.RawMessage{}
		}
	}
	return out
}

func emptyIfNil(r []json.RawMessage) []json.RawMessage {
	if r == nil {
		return []json.RawMessage{}
	}
	return r
}

// transactionUpdateJSON encodes an update; the writer calls it, so slow
// clients do not slow the commit fan-out.
func transactionUpdateJSON(u *subscription.TransactionUpdate) ([]byte, error) {
	w := wireTransactionUpdate{Tx: wireTx{Offset: u.Offset, Recomputed: u.Recomputed}, QuerySets: make([]wireQuerySetUpdate, len(u.QuerySets))}
	for i, qs := range u.QuerySets {
		wq := wireQuerySetUpdate{QuerySetID: qs.QuerySetID, Tables: make([]wireTableUpdate, len(qs.Tables))}
		for j, t := range qs.Tables {
			wq.Tables[j] = wireTableUpdate{Table: t.Table, Inserts: emptyIfNil(t.Inserts), Deletes: emptyIfNil(t.Deletes)}
		}
		w.QuerySets[i] = wq
	}
	return json.Marshal(map[string]any{"TransactionUpdate": w})
}

func (c *wsConn) subscribe(ctx context.Context, m *subscribeMsg) error {
	if m.RequestID == nil {
		return malformed(nil, "Subscribe needs a request_id")
	}
	if m.QuerySetID == nil {
		return malformed(m.RequestID, "Subscribe needs a query_set_id (a number you choose to name this set of queries)")
	}
	if len(m.Queries) == 0 {
		return malformed(m.RequestID, "Subscribe needs \"queries\", a non-empty list of SELECT statements")
	}
	reqID, qsID := *m.RequestID, *m.QuerySetID
	// The hook queues SubscribeApplied from the engine's delivery path,
	// strictly before the set's first update.
	ctx = subscription.WithAppliedHook(ctx, func(a *subscription.SubscribeApplied) {
		m := map[string]any{"request_id": reqID, "query_set_id": a.QuerySetID, "offset": a.Offset, "tables": tableRows(a.Tables)}
		if c.owner {
			m["as_owner"] = true // the owner's rows are not filtered by grants
		}
		c.send("SubscribeApplied", m)
	})
	_, err := c.d.subs.engine.Subscribe(ctx, c.id, qsID, m.Queries)
	c.d.subs.updateGauge()
	if err != nil {
		c.send("SubscriptionError", map[string]any{"request_id": reqID, "query_set_id": qsID, "error": subscriptionError(err)})
	}
	return nil
}

func (c *wsConn) unsubscribe(m *unsubscribeMsg) error {
	if m.RequestID == nil {
		return malformed(nil, "Unsubscribe needs a request_id")
	}
	if m.QuerySetID == nil {
		return malformed(m.RequestID, "Unsubscribe needs the query_set_id of the subscription to end")
	}
	err := c.d.subs.engine.Unsubscribe(c.id, *m.QuerySetID)
	c.d.subs.updateGauge()
	if err != nil {
		c.send("SubscriptionError", map[string]any{"request_id": *m.RequestID, "query_set_id": *m.QuerySetID, "error": subscriptionError(err)})
		return nil
	}
	c.send("UnsubscribeApplied", map[string]any{"request_id": *m.RequestID, "query_set_id": *m.QuerySetID})
	return nil
}

func (c *wsConn) oneOffQuery(ctx context.Context, m *oneOffQueryMsg) error {
	if m.RequestID == nil {
		return malformed(nil, "OneOffQuery needs a request_id")
	}
	if m.Query == nil || *m.Query == "" {
		return malformed(m.RequestID, "OneOffQuery needs \"query\", a SELECT statement")
	}
	// Like calls: per connection, refused at once without queueing, and a
	// connection that keeps going is closed.
	if lim := &c.d.limits; !c.queries.take(lim.QueryRate, lim.QueryBurst, time.Now()) {
		c.s.metrics.refusals.WithLabelValues("websocket_query_rate").Inc()
		c.send("OneOffQueryResult", map[string]any{"request_id": *m.RequestID, "error": fmt.Sprintf(
			"rate limit: this connection may run at most %g one-off queries per second (bursts of %d; query_rate under [databases.%s.limits]); slow down and retry", lim.QueryRate, lim.QueryBurst, c.d.name)})
		if c.queryOverRate++; c.queryOverRate > max(maxOverRate, lim.QueryBurst) {
			c.s.metrics.refusals.WithLabelValues("websocket_query_rate_disconnect").Inc()
			c.closeWith(ClosePolicy, fmt.Sprintf("rate limit: %d queries in a row over %g per second; reconnect and slow down", c.queryOverRate, lim.QueryRate))
		}
		return nil
	}
	c.queryOverRate = 0
	res, err := c.d.subs.engine.OneOffQuery(ctx, c.id, *m.Query)
	if err != nil {
		c.send("OneOffQueryResult", map[string]any{"request_id": *m.RequestID, "error": subscriptionError(err)})
		return nil
	}
	out := map[string]any{"request_id": *m.RequestID, "tables": tableRows(res.Tables)}
	if c.owner {
		out["as_owner"] = true // the owner's rows are not filtered by grants
	}
	c.send("OneOffQueryResult", out)
	return nil
}

// subscriptionError is the client's text of an engine error; the engine's
// messages already say what to do.
func subscriptionError(err error) string {
	if errors.Is(err, subscription.ErrClosed) {
		return "the database is closing; reconnect and subscribe again"
	}
	return err.Error()
}
