// Package store holds a database's tables in memory and makes them durable in
// Badger.
//
// Each table is a set of copy-on-write B-trees (cowTree, btree.go): one
// keyed by the row's identity (its primary key, or a hidden row id when the
// table has none) and one per secondary index, keyed by an order-preserving
// byte encoding of the indexed columns. Rows are BSATN and never change once
// stored: an update replaces the row.
//
// A database has one writer at a time (Begin/Commit). The writer works on
// O(1) copies of the trees it touches, so Rollback just drops them and Commit
// swaps them in. Commit frees the writer slot as soon as the in-memory state
// is updated, then waits while a single committer goroutine writes the
// transactions of every database that are waiting into one synced Badger
// transaction (group commit). Readers use Snapshot, which only ever shows
// durable state and never blocks the writer; OnCommit streams the committed
// deltas in offset order.
//
// Badger layout (one instance for all databases):
//
//	"C" name                      catalog: database id and schema (JSON)
//	"N"                           next database id
//	"D" id(8) "o"                 last committed offset
//	"D" id(8) "m" key             metadata (SetMeta)
//	"D" id(8) "a" table(4) col(2) last auto-increment value issued
//	"D" id(8) "r" table(4) rowkey row (BSATN)
//
// Dropping a database deletes its catalog entry and every key under "D" id.
package store
