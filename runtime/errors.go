package runtime

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is. The messages of the errors that wrap
// them say what happened and what to do.
var (
	// ErrInvalidModule: the uploaded binary cannot serve as a module (wrong
	// format, forbidden imports, missing or mistyped exports, invalid module
	// description). Every more specific module error below also wraps it.
	ErrInvalidModule = errors.New("invalid module")
	// ErrModuleTooLarge: the binary is larger than the upload limit.
	ErrModuleTooLarge = errors.New("module too large")
	// ErrForbiddenImport: the module imports something the host does not provide.
	ErrForbiddenImport = errors.New("forbidden import")
	// ErrMissingExport: the module lacks an export the host calls.
	ErrMissingExport = errors.New("missing export")
	// ErrBadExport: an export has the wrong kind or signature.
	ErrBadExport = errors.New("export with the wrong signature")
	// ErrInvalidModuleDef: the module's description (__describe_module__) is
	// inconsistent.
	ErrInvalidModuleDef = errors.New("invalid module description")

	// ErrNoSuchReducer: the module has no reducer of that name (or it is a
	// lifecycle reducer, which only the host calls).
	ErrNoSuchReducer = errors.New("no such reducer")
	// ErrInvalidArguments: the arguments are not the BSATN of the reducer's parameters.
	ErrInvalidArguments = errors.New("invalid reducer arguments")
	// ErrReducerFailed: the reducer returned an error or panicked; see *ReducerError.
	ErrReducerFailed = errors.New("reducer failed")
	// ErrTrap: the guest trapped (a fault, exit, or a host function stopped
	// it). The transaction rolled back and the instance was discarded.
	ErrTrap = errors.New("module trapped")
	// ErrDeadline: the call ran past its deadline and was stopped. Errors
	// that wrap it also wrap context.DeadlineExceeded.
	ErrDeadline = errors.New("reducer deadline exceeded")
	// ErrOutOfEnergy: the call used all of its energy budget (one unit per
	// wasm instruction) and was stopped; nothing it wrote was kept. Energy is
	// the deterministic deadline of a call, so errors that wrap it also wrap
	// ErrDeadline.
	ErrOutOfEnergy = errors.New("out of energy")
	// ErrCallDepth: wasm calls nested deeper than the call depth limit (a
	// runaway recursion). Errors that wrap it also wrap ErrTrap.
	ErrCallDepth = errors.New("call stack too deep")
	// ErrMemoryLimit: the module needs more memory than its database's
	// limit, or trapped with its memory at the limit. Errors that wrap it
	// also wrap ErrTrap or ErrInvalidModule.
	ErrMemoryLimit = errors.New("memory limit reached")
	// ErrModuleLimit: the module's shape (functions, code size, tables,
	// data, compile time) is over a limit. Errors that wrap it also wrap
	// ErrInvalidModule.
	ErrModuleLimit = errors.New("module over a limit")
	// ErrBadReturn: the reducer's return value does not match its declared type.
	ErrBadReturn = errors.New("reducer returned a value of the wrong type")
	// ErrSchemaChange: a new module version changes an existing table;
	// only additive changes (new tables) are accepted.
	ErrSchemaChange = errors.New("incompatible schema change")
	// ErrClosed: the runtime or database is closed.
	ErrClosed = errors.New("runtime closed")
)

// ReducerError is a reducer's own failure: it returned an error, or panicked
// and the SDK recovered. Message is exactly what the reducer said; servers
// show it to the client as is.
type ReducerError struct {
	Reducer string
	Message string
	// Limit is the first host limit the call was refused at before it
	// failed (a *hostfuncs.LimitError), or nil: the guest only got
	// LIMIT_EXCEEDED, and its message may not say which limit.
	Limit error
}

func (e *ReducerError) Error() string {
	if e.Limit != nil {
		return fmt.Sprintf("reducer %s failed: %s (%v)", e.Reducer, e.Message, e.Limit)
	}
	return fmt.Sprintf("reducer %s failed: %s", e.Reducer, e.Message)
}

// Is makes errors.Is(err, ErrReducerFailed) hold.
func (e *ReducerError) Is(target error) bool { return target == ErrReducerFailed }

// Unwrap returns Limit, so that errors.As finds the *hostfuncs.LimitError.
func (e *ReducerError) Unwrap() error { return e.Limit }

// energyError carries the energy a call used before it failed.
type energyError struct {
	err    error
	energy uint64
}

func (e *energyError) Error() string { return e.err.Error() }
func (e *energyError) Unwrap() error { return e.err }

// EnergyUsed returns the energy a failed call used, when the guest ran
// (the reducer's own failure, a trap, a limit, a deadline): a call that ran
// out of energy used its whole budget. Calls refused before the guest ran
// report false.
func EnergyUsed(err error) (uint64, bool) {
	var e *energyError
	if errors.As(err, &e) {
		return e.energy, true
	}
	return 0, false
}
