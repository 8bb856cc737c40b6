// Package runtime runs uploaded modules with wazero: it validates them,
// compiles them once (with an on-disk compilation cache), keeps pools of
// instances, and runs reducers as transactions over a store database.
//
// # Upload
//
// [Runtime.Compile] takes the binary through:
//  1. validation, before any compiling: the size limit; imports only from
//     abi.ImportModule with exactly the documented signatures and, from
//     wasi_snapshot_preview1, only abi.WASIImports; the exports memory,
//     __describe_module__ and __call_reducer__ with the right signatures;
//  2. prepare, the seam where metering will rewrite the module;
//  3. compiling (wazero, through the compilation cache);
//  4. __describe_module__ in a throwaway instance, and validation of the
//     ModuleDef it returns.
//
// Identical bytes (same SHA-256) share one [Module].
//
// # Databases and calls
//
// A [Database] ties a Module to a store database. [Database.Call] validates
// the arguments against the reducer's parameters, begins a transaction, takes
// an instance from the database's pool and calls __call_reducer__ under a
// wall-clock deadline (wazero's WithCloseOnContextDone). Committed: the
// transaction commits and the call returns the durable commit and the return
// value. Failed (the reducer's error or recovered panic): rollback and a
// *[ReducerError]; the instance is reused. Trap or deadline: rollback, and
// the instance is discarded (ErrTrap, ErrDeadline).
//
// Instances belong to one database: guest memory persists between calls, and
// must never carry one tenant's data into another tenant's call.
//
// # The guest's world
//
// WASI gives the guest no files, no arguments, no environment and no
// network; stdout and stderr go to the module log; the clocks start at the
// call's timestamp and advance 1 µs per reading; randomness is a ChaCha8
// stream seeded from the call's timestamp, caller, connection and reducer.
// Memory is bounded per instance (WithMemoryLimitPages).
//
// # Logs
//
// Each database has a [LogBuffer]: the last lines (time, level, reducer,
// caller, message) in a ring, with Since/Wait for followers (logs -f).
package runtime
