package hostfuncs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/store"
)

// Functions maps each name of abi.HostFuncs to its implementation.
var functions = map[string]hostFn{
	"table_id_from_name":        tableIDFromName,
	"index_id_from_name":        indexIDFromName,
	"table_row_count":           tableRowCount,
	"table_scan":                tableScan,
	"index_scan_point":          indexScanPoint,
	"index_scan_range":          indexScanRange,
	"row_iter_advance":          rowIterAdvance,
	"row_iter_close":            rowIterClose,
	"row_insert":                rowInsert,
	"row_update":                rowUpdate,
	"row_delete_by_index_point": rowDeleteByIndexPoint,
	"bytes_source_read":         bytesSourceRead,
	"bytes_source_len":          bytesSourceLen,
	"bytes_sink_write":          bytesSinkWrite,
	"jwt_verify":                jwtVerify,
	"identity_from_claims":      identityFromClaims,
	"caller_claims":             callerClaims,
	"console_log":               consoleLog,
}

// hostFn implements one host function. It returns the errno; it panics with
// a *TrapError only when the call must stop as a whole.
type hostFn func(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno

// Instantiate defines the host module abi.ImportModule in r, with every
// function of abi.HostFuncs. Call it once per wazero runtime, before
// instantiating guests.
func Instantiate(ctx context.Context, r wazero.Runtime) (api.Module, error) {
	b := r.NewHostModuleBuilder(abi.ImportModule)
	for _, f := range abi.HostFuncs {
		impl, ok := functions[f.Name]
		if !ok {
			return nil, fmt.Errorf("hostfuncs: abi.HostFuncs lists %s, which is not implemented", f.Name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(wrap(impl), valueTypes(f.Params), valueTypes(f.Results)).
			WithName(f.Name).
			Export(f.Name)
	}
	return b.Instantiate(ctx)
}

func valueTypes(ss []string) []api.ValueType {
	out := make([]api.ValueType, len(ss))
	for i, s := range ss {
		switch s {
		case "i32":
			out[i] = api.ValueTypeI32
		case "i64":
			out[i] = api.ValueTypeI64
		default:
			panic("hostfuncs: unsupported value type " + s)
		}
	}
	return out
}

func wrap(f hostFn) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		c := callFrom(ctx)
		if c == nil {
			// Called outside any invocation the runtime set up, for example
			// from a start function: nothing to act on.
			stack[0] = uint64(abi.ErrnoNotInReducer)
			return
		}
		stack[0] = uint64(f(ctx, c, mod.Memory(), stack))
	}
}

// stopIfDone traps when the call's deadline has passed, so a guest that loops
// over host calls cannot outlive it. Only the functions that do real work
// check: it reads the clock, which would double the cost of the cheap ones.
func stopIfDone(ctx context.Context, name string) {
	if err := ctx.Err(); err != nil {
		panic(&TrapError{Func: name, Err: err})
	}
}

func u32(v uint64) uint32 { return api.DecodeU32(v) }

// view returns the live view of guest memory [ptr, ptr+n), not a copy. It
// is only handed to store functions that copy what they keep (rows) or
// only read it during the call (keys: they are re-encoded), and that do not
// call back into the guest (store.Tx's ownership contract); copying here
// as well would copy every row twice.
func view(mem api.Memory, ptr, n uint32) ([]byte, bool) {
	return mem.Read(ptr, n)
}

// readString copies guest memory into a string.
func readString(mem api.Memory, ptr, n uint32) (string, bool) {
	b, ok := mem.Read(ptr, n)
	if !ok {
		return "", false
	}
	return string(b), true
}

// writable reports whether [ptr, ptr+n) lies in guest memory, so a function
// can check its out-parameters before it has any effect.
func writable(mem api.Memory, ptr, n uint32) bool {
	_, ok := mem.Read(ptr, n)
	return ok
}

// errnoOf maps a store error to the errno the guest sees. An error with no
// errno (the store closed or failed) stops the call.
func errnoOf(name string, err error) abi.Errno {
	switch {
	case err == nil:
		return abi.ErrnoOK
	case errors.Is(err, store.ErrNoSuchTable):
		return abi.ErrnoNoSuchTable
	case errors.Is(err, store.ErrNoSuchIndex):
		return abi.ErrnoNoSuchIndex
	case errors.Is(err, store.ErrNotFound):
		return abi.ErrnoNotFound
	case errors.Is(err, store.ErrUniqueViolation):
		return abi.ErrnoUniqueViolation
	case errors.Is(err, store.ErrSchemaMismatch), errors.Is(err, abi.ErrMalformed):
		return abi.ErrnoBadRow
	case errors.Is(err, store.ErrAutoIncOverflow):
		return abi.ErrnoAutoIncOverflow
	case errors.Is(err, store.ErrTxTooLarge):
		return abi.ErrnoLimitExceeded
	}
	panic(&TrapError{Func: name, Err: err})
}

// canWrite reports whether one more row of n bytes fits the transaction's limits.
func (c *Call) canWrite(n int) bool { return c.writeLimit(n) == 0 }

// writeLimit is the limit one more row of n bytes would pass, or 0.
func (c *Call) writeLimit(n int) Limit {
	switch {
	case n > c.Limits.MaxRowBytes:
		return LimitRowBytes
	case c.rowsWritten+1 > c.Limits.MaxRowsWritten:
		return LimitRowsWritten
	case c.bytesWritten+n > c.Limits.MaxBytesWritten:
		return LimitBytesWritten
	}
	return 0
}

// chargeWrite counts a row written against the transaction's limits.
func (c *Call) chargeWrite(n int) bool {
	if !c.canWrite(n) {
		return false
	}
	c.rowsWritten++
	c.bytesWritten += n
	return true
}

// table_id_from_name(name_ptr, name_len, out_id_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS (name or out pointer), BAD_ARGUMENT (name not
// UTF-8), NO_SUCH_TABLE, NOT_IN_REDUCER (no database). Never traps.
func tableIDFromName(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[2])
	name, ok := readString(mem, u32(p[0]), u32(p[1]))
	if !ok || !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if !utf8.ValidString(name) {
		return abi.ErrnoBadArgument
	}
	if c.DB == nil {
		return abi.ErrnoNotInReducer
	}
	id, err := c.DB.TableID(name)
	if err != nil {
		return abi.ErrnoNoSuchTable
	}
	mem.WriteUint32Le(out, uint32(id))
	return abi.ErrnoOK
}

// index_id_from_name(name_ptr, name_len, out_id_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, BAD_ARGUMENT (not UTF-8), NO_SUCH_INDEX,
// NOT_IN_REDUCER (no database). Never traps.
func indexIDFromName(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[2])
	name, ok := readString(mem, u32(p[0]), u32(p[1]))
	if !ok || !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if !utf8.ValidString(name) {
		return abi.ErrnoBadArgument
	}
	if c.DB == nil {
		return abi.ErrnoNotInReducer
	}
	id, err := c.DB.IndexID(name)
	if err != nil {
		return abi.ErrnoNoSuchIndex
	}
	mem.WriteUint32Le(out, uint32(id))
	return abi.ErrnoOK
}

// table_row_count(table_id, out_u64_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, NO_SUCH_TABLE, NOT_IN_REDUCER. Traps when the
// deadline has passed or the store fails.
func tableRowCount(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[1])
	if !writable(mem, out, 8) {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	stopIfDone(ctx, "table_row_count")
	n, err := c.Tx.Count(store.TableID(u32(p[0])))
	if err != nil {
		return errnoOf("table_row_count", err)
	}
	mem.WriteUint64Le(out, n)
	return abi.ErrnoOK
}

// openIter registers it as a handle and writes the handle to out, which the
// caller has checked.
func (c *Call) openIter(mem api.Memory, it *store.RowIter, out uint32) abi.Errno {
	id, ok := c.alloc(handle{kind: kindIter, iter: it})
	if !ok {
		it.Close()
		return c.refuse(LimitHandles, "opening an iterator")
	}
	mem.WriteUint32Le(out, id)
	return abi.ErrnoOK
}

// table_scan(table_id, out_iter_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, NO_SUCH_TABLE, LIMIT_EXCEEDED (too many open
// handles), NOT_IN_REDUCER. Traps on deadline or store failure.
func tableScan(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[1])
	if !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if c.open >= c.Limits.MaxHandles {
		return c.refuse(LimitHandles, "table_scan")
	}
	stopIfDone(ctx, "table_scan")
	it, err := c.Tx.Scan(store.TableID(u32(p[0])))
	if err != nil {
		return errnoOf("table_scan", err)
	}
	return c.openIter(mem, it, out)
}

// index_scan_point(index_id, key_ptr, key_len, out_iter_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, NO_SUCH_INDEX, BAD_ROW (the key is not a prefix of
// the index's columns), LIMIT_EXCEEDED, NOT_IN_REDUCER. Traps on deadline or
// store failure.
func indexScanPoint(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[3])
	key, ok := view(mem, u32(p[1]), u32(p[2]))
	if !ok || !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if c.open >= c.Limits.MaxHandles {
		return c.refuse(LimitHandles, "index_scan_point")
	}
	stopIfDone(ctx, "index_scan_point")
	it, err := c.Tx.ScanPoint(store.IndexID(u32(p[0])), key)
	if err != nil {
		return errnoOf("index_scan_point", err)
	}
	return c.openIter(mem, it, out)
}

func boundOf(kind uint32, key []byte) (store.Bound, bool) {
	switch kind {
	case abi.BoundInclusive:
		return store.Bound{Key: key, Kind: store.Inclusive}, true
	case abi.BoundExclusive:
		return store.Bound{Key: key, Kind: store.Exclusive}, true
	case abi.BoundUnbounded:
		return store.Bound{Kind: store.Unbounded}, true
	}
	return store.Bound{}, false
}

// index_scan_range(index_id, lo_ptr, lo_len, lo_bound, hi_ptr, hi_len,
// hi_bound, out_iter_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS (a key of an unbounded side is not read, so its
// pointer may be anything), BAD_ARGUMENT (bound kind), NO_SUCH_INDEX,
// BAD_ROW, LIMIT_EXCEEDED, NOT_IN_REDUCER. Traps on deadline or store failure.
func indexScanRange(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[7])
	if !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	var bounds [2]store.Bound
	for i, off := range [2]int{1, 4} {
		kind := u32(p[off+2])
		var key []byte
		if kind != abi.BoundUnbounded {
			var ok bool
			if key, ok = view(mem, u32(p[off]), u32(p[off+1])); !ok {
				return abi.ErrnoOutOfBounds
			}
		}
		b, ok := boundOf(kind, key)
		if !ok {
			return abi.ErrnoBadArgument
		}
		bounds[i] = b
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if c.open >= c.Limits.MaxHandles {
		return c.refuse(LimitHandles, "index_scan_range")
	}
	stopIfDone(ctx, "index_scan_range")
	it, err := c.Tx.ScanRange(store.IndexID(u32(p[0])), bounds[0], bounds[1])
	if err != nil {
		return errnoOf("index_scan_range", err)
	}
	return c.openIter(mem, it, out)
}

// row_iter_advance(iter, buf_ptr, buf_len_ptr) -> errno
//
// Fills the buffer with whole rows. Errnos: OUT_OF_BOUNDS (checked before any
// row is consumed), BAD_HANDLE, BUFFER_TOO_SMALL (the length now holds the
// size of the next row), EXHAUSTED (length 0; the handle is closed). Traps on
// deadline.
func rowIterAdvance(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	id, bufPtr, lenPtr := u32(p[0]), u32(p[1]), u32(p[2])
	capacity, ok := mem.ReadUint32Le(lenPtr)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	buf, ok := mem.Read(bufPtr, capacity)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	h := c.get(id, kindIter)
	if h == nil {
		return abi.ErrnoBadHandle
	}
	stopIfDone(ctx, "row_iter_advance")
	n := 0
	for {
		row := h.pending
		if row == nil {
			var more bool
			row, more = h.iter.Next()
			if !more {
				break
			}
		}
		if len(row) > len(buf)-n {
			h.pending = row
			if n == 0 {
				mem.WriteUint32Le(lenPtr, uint32(len(row)))
				return abi.ErrnoBufferTooSmall
			}
			mem.WriteUint32Le(lenPtr, uint32(n))
			return abi.ErrnoOK
		}
		h.pending = nil
		n += copy(buf[n:], row)
	}
	mem.WriteUint32Le(lenPtr, uint32(n))
	if n == 0 {
		c.release(id)
		return abi.ErrnoExhausted
	}
	return abi.ErrnoOK
}

// row_iter_close(iter) -> errno
//
// Errnos: BAD_HANDLE. Never traps.
func rowIterClose(_ context.Context, c *Call, _ api.Memory, p []uint64) abi.Errno {
	id := u32(p[0])
	if c.get(id, kindIter) == nil {
		return abi.ErrnoBadHandle
	}
	c.release(id)
	return abi.ErrnoOK
}

// readRow reads an in/out row buffer: the length at lenPtr, then the row.
func readRow(mem api.Memory, rowPtr, lenPtr uint32) ([]byte, bool) {
	n, ok := mem.ReadUint32Le(lenPtr)
	if !ok {
		return nil, false
	}
	return view(mem, rowPtr, n)
}

// writeRowBack writes the stored row over the guest's and its length to
// lenPtr; both were checked by readRow. Auto-increment values are fixed-size
// integers, so the stored row is as long as the guest's; if it ever were not,
// only the length is reported.
func writeRowBack(mem api.Memory, rowPtr, lenPtr uint32, orig, stored []byte) {
	if len(stored) == len(orig) {
		mem.Write(rowPtr, stored)
	}
	mem.WriteUint32Le(lenPtr, uint32(len(stored)))
}

// row_insert(table_id, row_ptr, row_len_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, NO_SUCH_TABLE, BAD_ROW, UNIQUE_VIOLATION,
// AUTOINC_OVERFLOW, LIMIT_EXCEEDED (rows or bytes per transaction, or the
// row's own size),
// READ_ONLY (a system table), NOT_IN_REDUCER. On success the stored row
// (auto-increment values filled in) is written back in place. Traps on
// deadline or store failure.
func rowInsert(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	t := store.TableID(u32(p[0]))
	return writeRow(ctx, c, mem, p, "row_insert", c.ReadOnly.table(t), func(row []byte) ([]byte, error) {
		return c.Tx.Insert(t, row)
	})
}

// row_update(index_id, row_ptr, row_len_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, NO_SUCH_INDEX (or not unique), NOT_FOUND, BAD_ROW,
// UNIQUE_VIOLATION, LIMIT_EXCEEDED, READ_ONLY (a system table),
// NOT_IN_REDUCER. Traps on deadline or store failure.
func rowUpdate(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	ix := store.IndexID(u32(p[0]))
	return writeRow(ctx, c, mem, p, "row_update", c.ReadOnly.index(ix), func(row []byte) ([]byte, error) {
		return c.Tx.Update(ix, row)
	})
}

// writeRow is the body of row_insert and row_update: the row at p[1] with
// its in/out length at p[2] is checked against the write limits, applied,
// charged only when the store took it (a refused write has no effect, its
// budget included), and written back with the values the store filled in.
func writeRow(ctx context.Context, c *Call, mem api.Memory, p []uint64, name string, readOnly bool, apply func(row []byte) ([]byte, error)) abi.Errno {
	rowPtr, lenPtr := u32(p[1]), u32(p[2])
	row, ok := readRow(mem, rowPtr, lenPtr)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if readOnly {
		return abi.ErrnoReadOnly
	}
	if k := c.writeLimit(len(row)); k != 0 {
		return c.refuse(k, name)
	}
	stopIfDone(ctx, name)
	stored, err := apply(row)
	if err != nil {
		return errnoOf(name, err)
	}
	c.chargeWrite(len(row))
	writeRowBack(mem, rowPtr, lenPtr, row, stored)
	return abi.ErrnoOK
}

// row_delete_by_index_point(index_id, key_ptr, key_len, out_count_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, NO_SUCH_INDEX, BAD_ROW, LIMIT_EXCEEDED, READ_ONLY
// (a system table), NOT_IN_REDUCER. Writes the u32 count of deleted rows.
// Traps on deadline or store failure.
func rowDeleteByIndexPoint(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[3])
	key, ok := view(mem, u32(p[1]), u32(p[2]))
	if !ok || !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if c.ReadOnly.index(store.IndexID(u32(p[0]))) {
		return abi.ErrnoReadOnly
	}
	if c.rowsWritten >= c.Limits.MaxRowsWritten {
		return c.refuse(LimitRowsWritten, "row_delete_by_index_point")
	}
	stopIfDone(ctx, "row_delete_by_index_point")
	// The store refuses, deleting nothing, when more rows match than the
	// transaction may still write.
	n, err := c.Tx.DeleteByKeyAtMost(store.IndexID(u32(p[0])), key, c.Limits.MaxRowsWritten-c.rowsWritten)
	if errors.Is(err, store.ErrTxTooLarge) {
		return c.refuse(LimitRowsWritten, "row_delete_by_index_point")
	}
	if err != nil {
		return errnoOf("row_delete_by_index_point", err)
	}
	c.rowsWritten += n
	mem.WriteUint32Le(out, uint32(n))
	return abi.ErrnoOK
}

// bytes_source_read(source, buf_ptr, buf_len_ptr) -> errno
//
// Reads up to the capacity at buf_len_ptr and writes the count back.
// Errnos: OUT_OF_BOUNDS, BAD_HANDLE, EXHAUSTED (nothing was left; length 0,
// the handle is closed). Never traps.
func bytesSourceRead(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	id, bufPtr, lenPtr := u32(p[0]), u32(p[1]), u32(p[2])
	capacity, ok := mem.ReadUint32Le(lenPtr)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	buf, ok := mem.Read(bufPtr, capacity)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	h := c.get(id, kindSource)
	if h == nil {
		return abi.ErrnoBadHandle
	}
	if len(h.data) == 0 {
		mem.WriteUint32Le(lenPtr, 0)
		c.release(id)
		return abi.ErrnoExhausted
	}
	n := copy(buf, h.data)
	h.data = h.data[n:]
	mem.WriteUint32Le(lenPtr, uint32(n))
	return abi.ErrnoOK
}

// bytes_source_len(source, out_u32_ptr) -> errno
//
// Errnos: OUT_OF_BOUNDS, BAD_HANDLE. Never traps.
func bytesSourceLen(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[1])
	if !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	h := c.get(u32(p[0]), kindSource)
	if h == nil {
		return abi.ErrnoBadHandle
	}
	mem.WriteUint32Le(out, uint32(len(h.data)))
	return abi.ErrnoOK
}

// bytes_sink_write(sink, buf_ptr, buf_len_ptr) -> errno
//
// Appends the bytes. Errnos: OUT_OF_BOUNDS, BAD_HANDLE, LIMIT_EXCEEDED (the
// sink would pass its limit; nothing is appended). Never traps.
func bytesSinkWrite(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	id, bufPtr, lenPtr := u32(p[0]), u32(p[1]), u32(p[2])
	n, ok := mem.ReadUint32Le(lenPtr)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	b, ok := mem.Read(bufPtr, n)
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	h := c.get(id, kindSink)
	if h == nil {
		return abi.ErrnoBadHandle
	}
	if len(h.data)+len(b) > h.limit {
		if h.limit == c.Limits.MaxSinkBytes {
			return c.refuse(LimitSinkBytes, "bytes_sink_write")
		}
		return abi.ErrnoLimitExceeded
	}
	h.data = append(h.data, b...) // copies out of the live view
	return abi.ErrnoOK
}

// jwt_verify(token_ptr, token_len, out_source_ptr) -> errno
//
// OK: a new source holds the claims as JSON. TOKEN_INVALID: a new source
// holds the reason (also when no verifier is configured, or the token is
// longer than Limits.MaxTokenBytes). Errnos besides: OUT_OF_BOUNDS,
// LIMIT_EXCEEDED (handles), NOT_IN_REDUCER. Traps on deadline.
func jwtVerify(ctx context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[2])
	tokenLen := u32(p[1])
	if _, ok := mem.Read(u32(p[0]), tokenLen); !ok || !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if c.open >= c.Limits.MaxHandles {
		return c.refuse(LimitHandles, "jwt_verify")
	}
	stopIfDone(ctx, "jwt_verify")
	var (
		result []byte
		errno  = abi.ErrnoOK
	)
	switch {
	case c.Verifier == nil:
		result, errno = []byte(NoIssuersReason), abi.ErrnoTokenInvalid
	case int(tokenLen) > c.Limits.MaxTokenBytes:
		result = fmt.Appendf(nil, "the token is %d bytes; tokens of at most %d bytes are accepted (max_token_bytes under [databases.NAME.limits])", tokenLen, c.Limits.MaxTokenBytes)
		errno = abi.ErrnoTokenInvalid
	default:
		token, _ := readString(mem, u32(p[0]), tokenLen)
		var claims []byte
		var err error
		if pv := c.Preverified; pv != nil && pv.Token == token && (pv.Claims != nil || pv.Err != nil) {
			claims, err = pv.Claims, pv.Err
		} else {
			// The verifier may block (fetching keys) or keep its context:
			// it gets one of its own, with the call's deadline.
			vctx, cancel := withDeadline(ctx)
			claims, err = c.Verifier.Verify(vctx, token)
			cancel()
		}
		if err != nil {
			result, errno = []byte(err.Error()), abi.ErrnoTokenInvalid
		} else {
			result = claims
			if len(c.Verified) < maxVerified {
				c.Verified = append(c.Verified, claims)
			}
		}
	}
	id, _ := c.alloc(handle{kind: kindSource, data: result})
	mem.WriteUint32Le(out, id)
	return errno
}

// identity_from_claims(iss_ptr, iss_len, sub_ptr, sub_len, out32_ptr) -> errno
//
// Writes the 32-byte IdentityId of (iss, sub), as auth.IdentityFromClaims
// derives it. Errnos: OUT_OF_BOUNDS, BAD_ARGUMENT (not UTF-8). Never traps.
func identityFromClaims(_ context.Context, _ *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[4])
	iss, ok1 := readString(mem, u32(p[0]), u32(p[1]))
	sub, ok2 := readString(mem, u32(p[2]), u32(p[3]))
	if !ok1 || !ok2 || !writable(mem, out, abi.IdentitySize) {
		return abi.ErrnoOutOfBounds
	}
	if !utf8.ValidString(iss) || !utf8.ValidString(sub) {
		return abi.ErrnoBadArgument
	}
	id := auth.IdentityFromClaims(iss, sub)
	mem.Write(out, id[:])
	return abi.ErrnoOK
}

// caller_claims(out_source_ptr) -> errno
//
// A new source holds the JSON claims of the caller's token. Errnos:
// OUT_OF_BOUNDS, NO_CLAIMS (the caller has no token), LIMIT_EXCEEDED
// (handles), NOT_IN_REDUCER. Never traps.
func callerClaims(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	out := u32(p[0])
	if !writable(mem, out, 4) {
		return abi.ErrnoOutOfBounds
	}
	if c.Tx == nil {
		return abi.ErrnoNotInReducer
	}
	if c.Claims == nil {
		return abi.ErrnoNoClaims
	}
	id, ok := c.alloc(handle{kind: kindSource, data: c.Claims})
	if !ok {
		return c.refuse(LimitHandles, "caller_claims")
	}
	mem.WriteUint32Le(out, id)
	return abi.ErrnoOK
}

// console_log(level, msg_ptr, msg_len) -> errno
//
// Writes a line to the database's log with the reducer's name and caller.
// Errnos: OUT_OF_BOUNDS, BAD_ARGUMENT (level above LogTrace),
// LIMIT_EXCEEDED (the call has logged Limits.MaxLogBytes; the line is
// dropped, and the log says once that lines were dropped). Invalid UTF-8 is
// replaced, not refused: a log line is worth more than its exact bytes.
// Never traps.
func consoleLog(_ context.Context, c *Call, mem api.Memory, p []uint64) abi.Errno {
	level := u32(p[0])
	b, ok := mem.Read(u32(p[1]), u32(p[2]))
	if !ok {
		return abi.ErrnoOutOfBounds
	}
	if level > abi.LogTrace {
		return abi.ErrnoBadArgument
	}
	if c.logBytes+len(b) > c.Limits.MaxLogBytes {
		if !c.logDropped && c.Log != nil {
			c.logDropped = true
			c.Log.ModuleLog(abi.LogWarn, c.Reducer, c.Caller,
				fmt.Sprintf("log limit of %d bytes per call reached; further lines of this call are dropped (raise log_bytes_per_call under [databases.NAME.limits] in the server's config file)", c.Limits.MaxLogBytes))
		}
		return abi.ErrnoLimitExceeded
	}
	c.logBytes += len(b)
	if c.Log != nil {
		msg := string(b)
		if !utf8.ValidString(msg) {
			msg = strings.ToValidUTF8(msg, "\uFFFD")
		}
		c.Log.ModuleLog(level, c.Reducer, c.Caller, msg)
	}
	return abi.ErrnoOK
}
