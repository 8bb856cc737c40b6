package store

import "errors"

// Sentinel errors. Every error the package returns that a caller may want to
// tell apart wraps one of these; test with errors.Is.
var (
	// ErrUniqueViolation: a write would duplicate a primary key or a unique
	// index key.
	ErrUniqueViolation = errors.New("unique constraint violated")
	// ErrNotFound: no row has the given key (Update).
	ErrNotFound = errors.New("row not found")
	// ErrNoSuchTable: the table id or name is unknown.
	ErrNoSuchTable = errors.New("no such table")
	// ErrNoSuchIndex: the index id or name is unknown, or the index cannot
	// serve the operation (Update needs a unique index).
	ErrNoSuchIndex = errors.New("no such index")
	// ErrSchemaMismatch: a row or key does not match the table's or index's
	// columns. It wraps abi.ErrMalformed when the bytes are not valid BSATN.
	ErrSchemaMismatch = errors.New("row does not match the schema")
	// ErrAutoIncOverflow: an auto-increment column has issued every value its
	// type can hold.
	ErrAutoIncOverflow = errors.New("auto-increment overflow")
	// ErrDatabaseExists: CreateDatabase with a name already in use.
	ErrDatabaseExists = errors.New("database already exists")
	// ErrNoSuchDatabase: the database name is unknown (or was dropped).
	ErrNoSuchDatabase = errors.New("no such database")
	// ErrInvalidSchema: the table definitions are inconsistent; the message
	// names the table and column.
	ErrInvalidSchema = errors.New("invalid schema")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store closed")
	// ErrTxDone: the transaction has already committed or rolled back.
	ErrTxDone = errors.New("transaction already finished")
	// ErrDatabaseFailed: writing to disk failed. The in-memory state may be
	// ahead of the disk, so the store refuses every further write; restart
	// the process to recover from the last durable state.
	ErrDatabaseFailed = errors.New("database failed: durable storage error, restart to recover")
	// ErrTxTooLarge: one transaction writes more than fits in one atomic
	// Badger transaction (see WithMemTableSize); split the work into smaller
	// transactions. The transaction is rolled back.
	ErrTxTooLarge = errors.New("transaction too large to commit atomically")
	// ErrCommitUnconfirmed: Commit's context ended while the transaction
	// was waiting to become durable. The transaction was not undone: it
	// is visible to the next transaction and may still become durable (it
	// will, unless the store fails or stops first). The error also wraps
	// the context's error.
	ErrCommitUnconfirmed = errors.New("commit queued but not confirmed durable")
)
