package hostfuncs

import (
	"errors"
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
)

// ErrLimit is wrapped by every [LimitError].
var ErrLimit = errors.New("host limit reached")

// Limit names one of the [Limits] a host function can refuse an operation at.
type Limit uint8

// The limits of [Limits] a guest can reach through the host functions.
const (
	LimitRowsWritten Limit = iota + 1
	LimitBytesWritten
	LimitRowBytes
	LimitHandles
	LimitLogBytes
	LimitSinkBytes
	LimitTokenBytes
)

// limitInfo says what a limit bounds and where it is set: the key of a
// database's [databases.NAME.limits] section and the server-wide field. The
// guest only sees LIMIT_EXCEEDED, so these words are what its owner and
// callers get to act on.
var limitInfo = [...]struct{ what, key, field string }{
	LimitRowsWritten:  {"rows written (inserted, updated or deleted) per transaction", "max_rows_written", "MaxRowsWritten"},
	LimitBytesWritten: {"bytes of rows written per transaction", "max_bytes_written", "MaxBytesWritten"},
	LimitRowBytes:     {"bytes in one row", "max_row_bytes", "MaxRowBytes"},
	LimitHandles:      {"iterators (and argument and result handles) open at once in one call", "max_iterators", "MaxHandles"},
	LimitLogBytes:     {"log bytes per call", "log_bytes_per_call", "MaxLogBytes"},
	LimitSinkBytes:    {"bytes of one result (return value or module description)", "max_result_bytes", "MaxSinkBytes"},
	LimitTokenBytes:   {"bytes of a token given to jwt_verify", "max_token_bytes", "MaxTokenBytes"},
}

// Key is the limit's setting in a database's [databases.NAME.limits].
func (l Limit) Key() string { return limitInfo[l].key }

// LimitError is the first limit a call's host functions refused an operation
// at. The guest got LIMIT_EXCEEDED and may have handled it; the runtime
// reports it beside the call's failure, if the call fails.
type LimitError struct {
	Limit Limit
	Value int // the limit in force
	Op    string
}

func (e *LimitError) Error() string {
	i := limitInfo[e.Limit]
	return fmt.Sprintf("%s refused: the call reached its limit of %d %s; raise %s under [databases.NAME.limits] in the server's config file (server-wide: hostfuncs.Limits.%s)",
		e.Op, e.Value, i.what, i.key, i.field)
}

func (e *LimitError) Unwrap() error { return ErrLimit }

// value is the limit in force of kind l.
func (l *Limits) value(k Limit) int {
	switch k {
	case LimitRowsWritten:
		return l.MaxRowsWritten
	case LimitBytesWritten:
		return l.MaxBytesWritten
	case LimitRowBytes:
		return l.MaxRowBytes
	case LimitHandles:
		return l.MaxHandles
	case LimitLogBytes:
		return l.MaxLogBytes
	case LimitSinkBytes:
		return l.MaxSinkBytes
	case LimitTokenBytes:
		return l.MaxTokenBytes
	}
	return 0
}

// refuse records that op was refused at limit k and returns the errno the
// guest gets. The first refusal of a call is kept (later ones are usually a
// loop ignoring the first) and logged once, so the module's owner reads
// which setting to raise.
func (c *Call) refuse(k Limit, op string) abi.Errno {
	if c.refused == nil {
		c.refused = &LimitError{Limit: k, Value: c.Limits.value(k), Op: op}
		if c.Log != nil && k != LimitLogBytes {
			c.Log.ModuleLog(abi.LogWarn, c.Reducer, c.Caller, c.refused.Error())
		}
	}
	return abi.ErrnoLimitExceeded
}

// Refused returns the first limit the call's host functions refused an
// operation at (a *[LimitError]), or nil. Read it before [Call.End].
func (c *Call) Refused() error {
	if c.refused == nil {
		return nil
	}
	return c.refused
}
