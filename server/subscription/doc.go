// Package subscription is the subscription engine: it keeps every client's
// live queries and, after each durable transaction, sends each client the
// inserted and deleted rows that match them.
//
// # Ordering and exactly-once
//
// The engine consumes the store's stream of durable commits
// (store.Database.OnCommit), which arrive one at a time in offset order.
// Each commit is matched under the engine's lock and the resulting
// TransactionUpdates are appended, still under the lock, to a per-connection
// outbox; a goroutine per connection drains its outbox by calling the
// connection's send function. So a connection sees transactions in commit
// order, each at most once, and only after they are durable; a slow send
// delays only its own connection.
//
// Subscribe computes the initial rows without holding the lock, against the
// snapshot S that the last processed commit left behind. Commits processed
// meanwhile are buffered for that subscription and folded into the initial
// rows; the subscription goes live, under the lock, at the offset T its rows
// reflect (SubscribeApplied.Offset). Every later TransactionUpdate for the
// query set has an offset greater than T.
//
// The connection's outbox is paused from the moment the query set goes live
// until Subscribe returns, so that the server can queue the SubscribeApplied
// before the set's first update. A server that needs the guarantee without
// relying on that timing passes a delivery hook with WithAppliedHook: the
// engine then hands the SubscribeApplied to the hook from the connection's
// outbox, strictly before any later update of the set.
//
// SetIdentity uses the same path: the old and new views of the sets that
// depend on :caller are read without the lock, commits meanwhile are folded
// into both, and the switch happens at one offset with a Recomputed update
// carrying the difference.
//
// # Matching
//
// Identical queries (same canonical text and, when they use :caller, same
// caller) are one shared query evaluated once per row. Queries are indexed
// per table by one top-level equality (`col = literal` or `col = :caller`,
// the latter under the subscriber's identity), so a changed row is matched
// only against the queries whose equality it satisfies plus the queries that
// have no usable equality. Each changed row is decoded at most once and
// encoded to JSON at most once per transaction; the JSON is shared by every
// receiver and must not be modified.
//
// A delete is sent only to subscriptions whose query matched the deleted
// (old) row; an update is a delete of the old row and an insert of the new
// one, so a row that leaves a filter arrives as a delete and one that enters
// it as an insert.
//
// # Access
//
// Every read path (initial rows, live updates, folding, one-off queries and
// Query, identity changes, republish) applies the module's grant_access
// statements, compiled on the host (query.CompileGrants): the owner reads
// every row; `to public`, and `to authenticated` for a non-zero identity,
// open a table in full; otherwise the table's rules, OR'ed, decide row by
// row; with none the read fails with ErrPrivateTable. Deletes are matched
// against the state before the transaction and inserts against the state
// after, so a client never receives a row its grants did not allow, not
// even as a delete. When a transaction writes a table that rules read
// through a subquery (a role), the sets whose rules answer differently have
// their view of the table recomputed in that transaction's update. Readers
// are indexed by the rules' equalities (`owner = :caller`), like queries.
// Sets that become unreadable (identity change, republish) are dropped and
// reported through WithRevokeHandler in stream order.
package subscription
