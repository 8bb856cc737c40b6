package abi

import "fmt"

// Version is the ABI version this package describes.
const Version = 1

// ImportModule is the namespace every host function is imported from. The
// host refuses a module that imports any other namespace, except the WASI
// functions listed in [WASIImports].
const ImportModule = "spacetime_v1"

// The guest's exports.
const (
	// ExportMemory is the guest's linear memory.
	ExportMemory = "memory"
	// ExportInitialize is called once per instance, before anything else, if present.
	ExportInitialize = "_initialize"
	// ExportDescribeModule is __describe_module__(sink u32): the guest writes
	// its ModuleDef as JSON to the bytes sink.
	ExportDescribeModule = "__describe_module__"
	// ExportCallReducer is __call_reducer__(id u32, caller0 u64, caller1 u64,
	// caller2 u64, caller3 u64, conn0 u64, conn1 u64, timestamp_micros i64,
	// args_src u32, ret_sink u32, err_sink u32) -> i32. The caller identity
	// and connection id are split into little-endian u64 words (see
	// [Identity.Words]). args_src holds the BSATN of the argument product;
	// the guest writes the BSATN return value, if any, to ret_sink, and an
	// error message to err_sink. It returns one of the CallResult values. A
	// trap is an internal failure: the host rolls the transaction back and
	// discards the instance.
	ExportCallReducer = "__call_reducer__"
)

// CallResult is what __call_reducer__ returns.
type CallResult int32

const (
	// CallCommitted: the reducer succeeded; the host commits its writes.
	CallCommitted CallResult = 0
	// CallFailed: the reducer returned an error or panicked (the Go SDK
	// recovers panics); its message is in err_sink and the host rolls back.
	CallFailed CallResult = 1
)

// Errno is what every host function returns; 0 is success.
type Errno uint32

// The errnos. Values are part of the ABI and never change meaning.
const (
	ErrnoOK Errno = 0
	// ErrnoOutOfBounds: a pointer or length lies outside guest memory. The
	// call has no effect.
	ErrnoOutOfBounds Errno = 1
	// ErrnoNoSuchTable: the table id or name is unknown.
	ErrnoNoSuchTable Errno = 2
	// ErrnoNoSuchIndex: the index id or name is unknown.
	ErrnoNoSuchIndex Errno = 3
	// ErrnoNotFound: no row matched (row_update).
	ErrnoNotFound Errno = 4
	// ErrnoUniqueViolation: the write would duplicate a primary key or a
	// unique column. The table is unchanged.
	ErrnoUniqueViolation Errno = 5
	// ErrnoBadRow: the bytes are not a row (or key) of the table's (index's) schema.
	ErrnoBadRow Errno = 6
	// ErrnoAutoIncOverflow: an auto-increment column has no values left.
	ErrnoAutoIncOverflow Errno = 7
	// ErrnoBufferTooSmall: the guest's buffer cannot hold the next item; the
	// in/out length now holds the size needed.
	ErrnoBufferTooSmall Errno = 8
	// ErrnoExhausted: an iterator or bytes source has nothing more. The
	// handle is closed.
	ErrnoExhausted Errno = 9
	// ErrnoBadHandle: the iterator, source or sink handle is not open.
	ErrnoBadHandle Errno = 10
	// ErrnoTokenInvalid: jwt_verify refused the token; the source holds the
	// reason as UTF-8 text.
	ErrnoTokenInvalid Errno = 11
	// ErrnoNoClaims: the caller did not authenticate with a token.
	ErrnoNoClaims Errno = 12
	// ErrnoLimitExceeded: the call would pass a limit of the host (rows or
	// bytes per transaction, open iterators, log volume). Nothing was done.
	ErrnoLimitExceeded Errno = 13
	// ErrnoBadArgument: another argument is invalid (a negative length, an
	// unknown log level, a bound kind that does not exist, invalid UTF-8).
	ErrnoBadArgument Errno = 14
	// ErrnoNotInReducer: the function needs a running reducer call (for
	// example when called from _initialize or __describe_module__).
	ErrnoNotInReducer Errno = 15
	// ErrnoReadOnly: the table is a system table the host maintains (such
	// as [IdentityTableName]); guests may read it but never write it.
	// Nothing was done.
	ErrnoReadOnly Errno = 16
)

var errnoNames = map[Errno]string{
	ErrnoOK:              "OK",
	ErrnoOutOfBounds:     "OUT_OF_BOUNDS",
	ErrnoNoSuchTable:     "NO_SUCH_TABLE",
	ErrnoNoSuchIndex:     "NO_SUCH_INDEX",
	ErrnoNotFound:        "NOT_FOUND",
	ErrnoUniqueViolation: "UNIQUE_VIOLATION",
	ErrnoBadRow:          "BAD_ROW",
	ErrnoAutoIncOverflow: "AUTOINC_OVERFLOW",
	ErrnoBufferTooSmall:  "BUFFER_TOO_SMALL",
	ErrnoExhausted:       "EXHAUSTED",
	ErrnoBadHandle:       "BAD_HANDLE",
	ErrnoTokenInvalid:    "TOKEN_INVALID",
	ErrnoNoClaims:        "NO_CLAIMS",
	ErrnoLimitExceeded:   "LIMIT_EXCEEDED",
	ErrnoBadArgument:     "BAD_ARGUMENT",
	ErrnoNotInReducer:    "NOT_IN_REDUCER",
	ErrnoReadOnly:        "READ_ONLY",
}

func (e Errno) String() string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return fmt.Sprintf("ERRNO_%d", uint32(e))
}

// Error makes a non-zero Errno usable as an error in guest code.
func (e Errno) Error() string { return "spacetime: " + e.String() }

// Bound kinds for index_scan_range.
const (
	BoundInclusive uint32 = 0
	BoundExclusive uint32 = 1
	BoundUnbounded uint32 = 2
)

// Log levels for console_log.
const (
	LogError uint32 = 0
	LogWarn  uint32 = 1
	LogInfo  uint32 = 2
	LogDebug uint32 = 3
	LogTrace uint32 = 4
)

// HostFunc names a host function and gives its wasm signature.
type HostFunc struct {
	Name    string
	Params  []string // wasm value types: "i32", "i64"
	Results []string
}

// HostFuncs is the complete list of functions in [ImportModule].
//
// Conventions, for all of them:
//   - pointers and lengths are i32; an out-parameter is a pointer the host
//     writes to (u32 and u64 little-endian); a *len_ptr is in/out: capacity
//     in, bytes written (or needed) out;
//   - the result is an [Errno]; a pointer or length outside guest memory gives
//     ErrnoOutOfBounds and does nothing, it never traps;
//   - handles (iterators, bytes sources and sinks) are u32 indexes into
//     tables the host keeps per reducer call; 0 is never a valid handle, and
//     handles die when the call ends;
//   - keys (index_scan_point, index_scan_range, row_delete_by_index_point)
//     are the BSATN product of a prefix of the index's columns, in order;
//   - outside a reducer call (from _initialize or __describe_module__) the
//     functions that need a transaction (table_row_count, the scans,
//     row_iter_*, row_insert, row_update, row_delete_by_index_point,
//     jwt_verify, caller_claims) return NOT_IN_REDUCER; the name lookups
//     return it only when no database is attached (describing a module);
//   - a function that opens a handle returns LIMIT_EXCEEDED when the call
//     already has the host's maximum of open handles;
//   - a host function traps only when the call must stop as a whole: its
//     deadline or energy is spent, or the host is shutting down. The
//     transaction then rolls back and the instance is discarded.
//
// The functions:
//
//	table_id_from_name(name_ptr, name_len, out_id_ptr) -> errno
//	    NO_SUCH_TABLE, BAD_ARGUMENT, OUT_OF_BOUNDS. Writes the u32 table id.
//	index_id_from_name(name_ptr, name_len, out_id_ptr) -> errno
//	    NO_SUCH_INDEX, BAD_ARGUMENT, OUT_OF_BOUNDS. Writes the u32 index id;
//	    names are those of ModuleDef (see IndexName).
//	table_row_count(table_id, out_u64_ptr) -> errno
//	    NO_SUCH_TABLE, OUT_OF_BOUNDS. Counts the rows the transaction sees.
//	table_scan(table_id, out_iter_ptr) -> errno
//	    NO_SUCH_TABLE, LIMIT_EXCEEDED, OUT_OF_BOUNDS. Opens an iterator over
//	    every row, in primary-key order when there is one.
//	index_scan_point(index_id, key_ptr, key_len, out_iter_ptr) -> errno
//	    NO_SUCH_INDEX, BAD_ROW (key), LIMIT_EXCEEDED, OUT_OF_BOUNDS.
//	index_scan_range(index_id, lo_ptr, lo_len, lo_bound, hi_ptr, hi_len,
//	                 hi_bound, out_iter_ptr) -> errno
//	    NO_SUCH_INDEX, BAD_ROW, BAD_ARGUMENT (bound kind), LIMIT_EXCEEDED,
//	    OUT_OF_BOUNDS. Bounds are BoundInclusive, BoundExclusive or
//	    BoundUnbounded (its key is ignored).
//	row_iter_advance(iter, buf_ptr, buf_len_ptr) -> errno
//	    Fills the buffer with as many whole BSATN rows as fit, back to back.
//	    EXHAUSTED (length 0, handle closed) when none are left;
//	    BUFFER_TOO_SMALL (length = size of the next row) when not even one
//	    fits; BAD_HANDLE, OUT_OF_BOUNDS. An iterator sees the rows as they
//	    were when it was opened.
//	row_iter_close(iter) -> errno
//	    BAD_HANDLE.
//	row_insert(table_id, row_ptr, row_len_ptr) -> errno
//	    Inserts a BSATN row. Auto-increment columns whose value is 0 get the
//	    next value, written back into the row in place. NO_SUCH_TABLE,
//	    BAD_ROW, UNIQUE_VIOLATION, AUTOINC_OVERFLOW, LIMIT_EXCEEDED,
//	    READ_ONLY (a system table), OUT_OF_BOUNDS.
//	row_update(index_id, row_ptr, row_len_ptr) -> errno
//	    Replaces the row whose key in the unique index index_id equals the
//	    new row's. NO_SUCH_INDEX (or not unique), NOT_FOUND, BAD_ROW,
//	    UNIQUE_VIOLATION (another unique column), LIMIT_EXCEEDED, READ_ONLY,
//	    OUT_OF_BOUNDS.
//	row_delete_by_index_point(index_id, key_ptr, key_len, out_count_ptr) -> errno
//	    Deletes every row matching the key; writes the u32 count (0 is not
//	    an error). NO_SUCH_INDEX, BAD_ROW, LIMIT_EXCEEDED, READ_ONLY,
//	    OUT_OF_BOUNDS.
//	bytes_source_read(source, buf_ptr, buf_len_ptr) -> errno
//	    Reads up to capacity bytes; EXHAUSTED (length 0) at the end.
//	    BAD_HANDLE, OUT_OF_BOUNDS.
//	bytes_source_len(source, out_u32_ptr) -> errno
//	    Bytes left to read. BAD_HANDLE, OUT_OF_BOUNDS.
//	bytes_sink_write(sink, buf_ptr, buf_len_ptr) -> errno
//	    Appends the bytes. BAD_HANDLE, LIMIT_EXCEEDED, OUT_OF_BOUNDS.
//	jwt_verify(token_ptr, token_len, out_source_ptr) -> errno
//	    Verifies a JWT with the issuers the host trusts for this database.
//	    OK: the new source holds the claims as JSON. TOKEN_INVALID: the
//	    source holds the reason. NOT_IN_REDUCER, OUT_OF_BOUNDS.
//	identity_from_claims(iss_ptr, iss_len, sub_ptr, sub_len, out32_ptr) -> errno
//	    Writes the 32-byte IdentityId derived from issuer and subject as
//	    SpacetimeDB derives it. BAD_ARGUMENT (not UTF-8), OUT_OF_BOUNDS.
//	caller_claims(out_source_ptr) -> errno
//	    The claims (JSON) of the token behind the current caller. NO_CLAIMS
//	    when the caller has none. NOT_IN_REDUCER, OUT_OF_BOUNDS.
//	console_log(level, msg_ptr, msg_len) -> errno
//	    Writes a line to the database's log, with the reducer's name and
//	    caller. BAD_ARGUMENT (level), LIMIT_EXCEEDED (log volume: the line
//	    is dropped), OUT_OF_BOUNDS.
var HostFuncs = []HostFunc{
	{"table_id_from_name", i32s(3), i32s(1)},
	{"index_id_from_name", i32s(3), i32s(1)},
	{"table_row_count", i32s(2), i32s(1)},
	{"table_scan", i32s(2), i32s(1)},
	{"index_scan_point", i32s(4), i32s(1)},
	{"index_scan_range", i32s(8), i32s(1)},
	{"row_iter_advance", i32s(3), i32s(1)},
	{"row_iter_close", i32s(1), i32s(1)},
	{"row_insert", i32s(3), i32s(1)},
	{"row_update", i32s(3), i32s(1)},
	{"row_delete_by_index_point", i32s(4), i32s(1)},
	{"bytes_source_read", i32s(3), i32s(1)},
	{"bytes_source_len", i32s(2), i32s(1)},
	{"bytes_sink_write", i32s(3), i32s(1)},
	{"jwt_verify", i32s(3), i32s(1)},
	{"identity_from_claims", i32s(5), i32s(1)},
	{"caller_claims", i32s(1), i32s(1)},
	{"console_log", i32s(3), i32s(1)},
}

func i32s(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "i32"
	}
	return s
}

// WASIImports are the wasi_snapshot_preview1 functions a Go guest needs and
// the host provides: no files, no network, no environment; stdout and stderr
// go to the module's log; clocks and randomness derive from the reducer's
// timestamp.
var WASIImports = []string{
	"args_get", "args_sizes_get", "environ_get", "environ_sizes_get",
	"clock_time_get", "clock_res_get", "fd_write", "fd_close", "fd_fdstat_get",
	"fd_fdstat_set_flags", "fd_prestat_get", "fd_prestat_dir_name", "fd_read",
	"fd_seek", "proc_exit", "random_get", "sched_yield", "poll_oneoff",
}

// WASIModule is the namespace of the WASI imports.
const WASIModule = "wasi_snapshot_preview1"
