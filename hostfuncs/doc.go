// Package hostfuncs implements the host side of ABI version 1: the functions
// a guest module imports from the namespace abi.ImportModule ("spacetime_v1").
// abi/hostabi.go is the contract (names, signatures, errnos); this package
// is its one implementation.
//
// # How a call finds its state
//
// The host module is instantiated once per wazero runtime ([Instantiate]) and
// shared by every guest instance. The state of the invocation in progress (the
// transaction, the caller, the handle table) is a [Call] that the runtime
// attaches to the context it calls the guest with ([Call.Context], which also
// carries the call's deadline without a timer, or [WithCall]); wazero passes
// that context to every host function. A host function called with no Call
// (from a start function) returns ErrnoNotInReducer.
//
// Functions are registered with wazero's stack-based API
// (WithGoModuleFunction): a host call costs 40–60 ns against about 1 µs
// through reflection.
//
// # Guest memory
//
// Every pointer and length is checked through api.Memory.Read, which refuses
// ranges outside memory, wrapping ones included. A function checks all its
// pointers, out-parameters included, before it has any effect: a bad pointer
// gives ErrnoOutOfBounds and changes nothing. Memory.Read returns a live view
// of guest memory; whatever the host keeps is copied first. Rows and keys go
// to the store as views: the store copies what it keeps (store.Tx), and it
// never calls back into the guest while it holds one.
//
// # Handles
//
// Row iterators, bytes sources and bytes sinks are u32 handles into the
// Call's table; 0 is never valid, a freed slot is reused, at most
// Limits.MaxHandles are open at once, and [Call.End] releases them all
// (closing iterators) when the invocation ends. A handle of the wrong kind is
// ErrnoBadHandle.
//
// # Errors and traps
//
// Each function's doc comment lists its errnos. Store errors map to errnos
// (unique violation, bad row, ...). A function traps, by panicking with a
// *[TrapError] that wazero turns into an error of the guest call, only when the
// call must stop as a whole: the deadline passed (checked by the functions that
// do store work) or the store failed in a way the guest cannot handle. The
// runtime then rolls the transaction back and discards the instance.
//
// # Limits
//
// [Limits] bounds rows and bytes written per transaction, one row's size,
// bytes per sink, log bytes per call, open handles and token size; passing
// one gives ErrnoLimitExceeded and does nothing. The guest sees only the
// errno, so the call keeps its first refusal as a [LimitError] naming the
// limit and the setting that raises it ([Call.Refused]), and logs it once.
//
// # Authentication
//
// jwt_verify goes through the [TokenVerifier] the database is configured with;
// with none, every token is refused with [NoIssuersReason]. caller_claims
// returns the claims the runtime recorded for the caller. identity_from_claims
// derives identities with auth.IdentityFromClaims, as SpacetimeDB does.
package hostfuncs
