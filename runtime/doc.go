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
//  2. decoding every function body (package runtime/internal/fuel): the
//     module's shape is checked against [ModuleLimits] and its memory
//     against the memory limit, and the module is rewritten to count the
//     instructions it executes in an exported global (fuel metering);
//  3. compiling the metered module (wazero, through the compilation cache,
//     under a compile timeout);
//  4. __describe_module__ in a throwaway instance, and validation of the
//     ModuleDef it returns.
//
// Identical bytes (same SHA-256) share one [Module]. A Module no database
// serves stays compiled among the last few released (WithMaxIdleModules),
// then is closed.
//
// # Databases and calls
//
// A [Database] ties a Module to a store database. [Database.Call] validates
// the arguments against the reducer's parameters, begins a transaction, takes
// an instance from the database's pool and calls __call_reducer__ with an
// energy budget (fuel: one unit per wasm instruction), a call depth limit, a
// memory limit, and a wall-clock deadline checked at host calls and on
// return. Committed: the transaction commits and the call returns the
// durable commit, the return value and the energy used. Failed (the
// reducer's error or recovered panic): rollback and a *[ReducerError]; the
// instance is reused. Trap, limit or deadline: rollback, and the instance is
// discarded (ErrTrap, ErrOutOfEnergy, ErrCallDepth, ErrMemoryLimit,
// ErrDeadline).
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
// Memory is bounded per instance (WithMemoryLimitPages, and per database
// WithDatabaseMemoryLimitPages through a memory allocator that refuses to
// grow past it).
//
// # Logs
//
// Each database has a [LogBuffer]: the last lines (time, level, reducer,
// caller, message) in a ring, with Since/Wait for followers (logs -f).
package runtime
