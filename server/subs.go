package server

import (
	"context"
)

// subscriptions connects a database's WebSockets to its subscription engine.
type subscriptions struct {
	d *database
}

func newSubscriptions(d *database) subscriptions { return subscriptions{d: d} }

func (ss subscriptions) connect(c *wsConn)                  {}
func (ss subscriptions) disconnect(c *wsConn)               {}
func (ss subscriptions) setIdentity(c *wsConn, id [32]byte) {}
func (ss subscriptions) moduleChanged()                     {}
func (ss subscriptions) close()                             {}
func (ss subscriptions) count() int                         { return 0 }

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
	c.send("SubscriptionError", map[string]any{"request_id": *m.RequestID, "query_set_id": *m.QuerySetID, "error": "subscriptions are not available on this server yet"})
	return nil
}

func (c *wsConn) unsubscribe(m *unsubscribeMsg) error {
	if m.RequestID == nil {
		return malformed(nil, "Unsubscribe needs a request_id")
	}
	if m.QuerySetID == nil {
		return malformed(m.RequestID, "Unsubscribe needs the query_set_id of the subscription to end")
	}
	c.send("SubscriptionError", map[string]any{"request_id": *m.RequestID, "query_set_id": *m.QuerySetID, "error": "subscriptions are not available on this server yet"})
	return nil
}

func (c *wsConn) oneOffQuery(ctx context.Context, m *oneOffQueryMsg) error {
	if m.RequestID == nil {
		return malformed(nil, "OneOffQuery needs a request_id")
	}
	if m.Query == nil || *m.Query == "" {
		return malformed(m.RequestID, "OneOffQuery needs \"query\", a SELECT statement")
	}
	caller, _ := c.currentIdentity()
	res, _, err := c.s.runSQL(c.d, *m.Query, caller, c.owner)
	if err != nil {
		c.send("OneOffQueryResult", map[string]any{"request_id": *m.RequestID, "error": err.Error()})
		return nil
	}
	c.send("OneOffQueryResult", map[string]any{"request_id": *m.RequestID, "tables": []any{map[string]any{"table": res.Table, "rows": res.Rows}}})
	return nil
}
