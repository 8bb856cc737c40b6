package hostfuncs

import (
	"context"
	"errors"
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

// TokenVerifier verifies a JWT with the issuers a database trusts. On success
// it returns the token's claims as a JSON object; on failure, an error whose
// message is the reason the guest receives. Implementations must be safe for
// concurrent use.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (claimsJSON []byte, err error)
}

// Preverified is a token verified by the host before the call, with the
// call's verifier: an auth reducer's token argument, checked before the
// call takes its database's writer slot, so that the signature check does
// not hold up every other transaction. It is still one verification per
// call, and its result stands only for this call.
type Preverified struct {
	Token string
	// Claims are the verified claims as JSON; nil when the token was refused.
	Claims []byte
	// Err is the refusal when Claims is nil.
	Err error
}

// NoIssuersReason is what jwt_verify reports when the database has no
// [TokenVerifier].
const NoIssuersReason = "no token issuers are configured for this database"

// LogSink receives the lines a module logs (console_log, and WASI stdout and
// stderr through the runtime). It must not block for long: it runs on the
// reducer's goroutine.
type LogSink interface {
	ModuleLog(level uint32, reducer string, caller abi.Identity, msg string)
}

// Limits bound what one call may do through the host functions. A call that
// passes a limit gets ErrnoLimitExceeded for the operation and nothing is done.
type Limits struct {
	// MaxHandles is the number of iterators, sources and sinks open at once.
	MaxHandles int
	// MaxSinkBytes bounds what the guest writes to one sink (return value,
	// error message, module description).
	MaxSinkBytes int
	// MaxLogBytes bounds the bytes logged by one call.
	MaxLogBytes int
	// MaxRowsWritten bounds the rows inserted, updated and deleted by one
	// transaction.
	MaxRowsWritten int
	// MaxBytesWritten bounds the bytes of the rows inserted and updated by one
	// transaction.
	MaxBytesWritten int
	// MaxTokenBytes bounds a token given to jwt_verify.
	MaxTokenBytes int
	// MaxRowBytes bounds one row inserted or updated: without it, one row
	// could take the whole MaxBytesWritten, and every subscriber's update
	// carries the row whole.
	MaxRowBytes int
}

// DefaultLimits are the limits used when a field of [Limits] is zero.
var DefaultLimits = Limits{
	MaxHandles:      1024,
	MaxSinkBytes:    4 << 20,
	MaxLogBytes:     64 << 10,
	MaxRowsWritten:  100_000,
	MaxBytesWritten: 32 << 20,
	MaxTokenBytes:   8 << 10,
	MaxRowBytes:     1 << 20,
}

// WithDefaults returns l with every zero field set from [DefaultLimits].
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxHandles > 0 {
		d.MaxHandles = l.MaxHandles
	}
	if l.MaxSinkBytes > 0 {
		d.MaxSinkBytes = l.MaxSinkBytes
	}
	if l.MaxLogBytes > 0 {
		d.MaxLogBytes = l.MaxLogBytes
	}
	if l.MaxRowsWritten > 0 {
		d.MaxRowsWritten = l.MaxRowsWritten
	}
	if l.MaxBytesWritten > 0 {
		d.MaxBytesWritten = l.MaxBytesWritten
	}
	if l.MaxTokenBytes > 0 {
		d.MaxTokenBytes = l.MaxTokenBytes
	}
	if l.MaxRowBytes > 0 {
		d.MaxRowBytes = l.MaxRowBytes
	}
	return d
}

// Call is the host's state for one invocation of a guest export: a reducer
// call, __describe_module__ or _initialize. The runtime fills the exported
// fields, attaches the Call to the context it calls the guest with
// ([Call.Context] or [WithCall]) and calls [Call.End] afterwards. A Call may be reused for the
// next invocation after End; it is never used by two invocations at once.
type Call struct {
	// DB is the database whose tables the functions resolve names in; nil
	// outside a database (describing a module).
	DB *store.Database
	// Tx is the reducer's transaction; nil when no reducer runs, and then the
	// table functions, jwt_verify and caller_claims return ErrnoNotInReducer.
	Tx        *store.Tx
	Reducer   string
	Caller    abi.Identity
	Conn      abi.ConnectionID
	Timestamp int64 // microseconds since the Unix epoch
	// Claims are the JSON claims of the token behind Caller, nil if none.
	Claims   []byte
	Verifier TokenVerifier
	// Preverified, when set, is the verification of a token done before
	// the call: jwt_verify given exactly that token answers from it.
	Preverified *Preverified
	Log         LogSink
	Limits      Limits // use WithDefaults; zero fields mean "no room"
	// ReadOnly lists the tables (and their indexes) guests may read but not
	// write: the host's system tables. Writes to them fail with ErrnoReadOnly.
	ReadOnly ReadOnlyTables
	// Verified holds the JSON claims of each token jwt_verify accepted
	// during the call (at most maxVerified), so that the host can tie the
	// identity an auth reducer returns to a token it checked itself.
	Verified [][]byte

	handles      []handle
	free         []uint32
	open         int
	logBytes     int
	logDropped   bool
	rowsWritten  int
	bytesWritten int
	refused      *LimitError

	ctx callContext // see Context
}

type handleKind uint8

const (
	kindFree handleKind = iota
	kindIter
	kindSource
	kindSink
)

func (k handleKind) String() string {
	switch k {
	case kindIter:
		return "row iterator"
	case kindSource:
		return "bytes source"
	case kindSink:
		return "bytes sink"
	}
	return "closed handle"
}

type handle struct {
	kind handleKind
	iter *store.RowIter
	// pending is a row taken from iter that did not fit the guest's buffer.
	pending []byte
	// data is a source's remaining bytes or a sink's contents.
	data  []byte
	limit int // sink capacity
}

type callKey struct{}

// WithCall returns a context carrying c; the host functions find their call
// state in it. Attach it last, so that looking it up takes one step.
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *Call {
	if x, ok := ctx.(*callContext); ok {
		return x.call
	}
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// ErrTooManyHandles is returned by NewSource and NewSink when the call has
// Limits.MaxHandles handles open.
var ErrTooManyHandles = errors.New("too many open handles")

func (c *Call) alloc(h handle) (uint32, bool) {
	if c.open >= c.Limits.MaxHandles {
		return 0, false
	}
	c.open++
	if n := len(c.free); n > 0 {
		id := c.free[n-1]
		c.free = c.free[:n-1]
		c.handles[id-1] = h
		return id, true
	}
	c.handles = append(c.handles, h)
	return uint32(len(c.handles)), true
}

func (c *Call) get(id uint32, kind handleKind) *handle {
	if id == 0 || int64(id) > int64(len(c.handles)) {
		return nil
	}
	h := &c.handles[id-1]
	if h.kind != kind {
		return nil
	}
	return h
}

func (c *Call) release(id uint32) {
	h := &c.handles[id-1]
	if h.iter != nil {
		h.iter.Close()
	}
	*h = handle{}
	c.free = append(c.free, id)
	c.open--
}

// NewSource opens a bytes source holding b (which the Call does not copy and
// the caller must not change until End).
func (c *Call) NewSource(b []byte) (uint32, error) {
	id, ok := c.alloc(handle{kind: kindSource, data: b})
	if !ok {
		return 0, ErrTooManyHandles
	}
	return id, nil
}

// NewSink opens a bytes sink that accepts up to limit bytes (Limits.MaxSinkBytes
// when limit <= 0).
func (c *Call) NewSink(limit int) (uint32, error) {
	if limit <= 0 {
		limit = c.Limits.MaxSinkBytes
	}
	id, ok := c.alloc(handle{kind: kindSink, limit: limit})
	if !ok {
		return 0, ErrTooManyHandles
	}
	return id, nil
}

// SinkBytes returns what the guest wrote to sink id. The slice stays valid
// after End.
func (c *Call) SinkBytes(id uint32) []byte {
	if h := c.get(id, kindSink); h != nil {
		return h.data
	}
	return nil
}

// End releases every handle of the call (closing open iterators) and resets
// its counters, so that nothing outlives the call and the Call can be reused.
func (c *Call) End() {
	for i := range c.handles {
		if c.handles[i].iter != nil {
			c.handles[i].iter.Close()
		}
		c.handles[i] = handle{}
	}
	c.handles = c.handles[:0]
	c.free = c.free[:0]
	c.open = 0
	c.logBytes = 0
	c.logDropped = false
	c.rowsWritten = 0
	c.bytesWritten = 0
	c.refused = nil
	c.Tx = nil
	c.Claims = nil
	c.Verified = nil
	c.Preverified = nil
	c.ctx.end()
}

// maxVerified bounds Call.Verified: an auth reducer verifies one token, and
// a loop verifying thousands must not grow host memory.
const maxVerified = 8

// ReadOnlyTables are the tables, and the indexes on them, that guests may
// not write. Both lists are tiny (the system tables), so a linear scan is
// cheaper than a map on the write path.
type ReadOnlyTables struct {
	Tables  []store.TableID
	Indexes []store.IndexID
}

func (r *ReadOnlyTables) table(t store.TableID) bool {
	for _, x := range r.Tables {
		if x == t {
			return true
		}
	}
	return false
}

func (r *ReadOnlyTables) index(ix store.IndexID) bool {
	for _, x := range r.Indexes {
		if x == ix {
			return true
		}
	}
	return false
}

// LogBytesLeft reports how many more bytes the call may log; the runtime
// charges WASI stdout and stderr against the same budget.
func (c *Call) LogBytesLeft() int { return c.Limits.MaxLogBytes - c.logBytes }

// ChargeLog records n bytes logged outside console_log.
func (c *Call) ChargeLog(n int) { c.logBytes += n }

// TrapError is the panic value with which a host function stops the whole
// call: its deadline passed, or the store failed in a way the guest cannot
// handle. wazero turns the panic into an error of the guest call, in which
// errors.As finds the *TrapError.
type TrapError struct {
	Func string
	Err  error
}

func (e *TrapError) Error() string {
	return fmt.Sprintf("host function %s stopped the call: %v", e.Func, e.Err)
}

func (e *TrapError) Unwrap() error { return e.Err }
