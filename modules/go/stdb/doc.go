// Package stdb is the Go guest SDK: what a module compiled with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared links to talk to the host.
//
// Module authors rarely call it directly. `spacetime generate` writes typed
// rows, table handles and reducer dispatch on top of it; the author writes
// plain functions such as
//
//	func CreatePost(ctx *stdb.ReducerContext, content string) error
//
// and uses ctx.Caller, ctx.Timestamp, the generated tables and the logging
// functions (stdb.Infof and friends).
//
// What it provides:
//   - the //go:wasmimport bindings of every function in abi.HostFuncs
//     (sys_wasip1.go; other GOOS get stubs that report ErrnoNotInReducer,
//     so modules still build and vet on the host);
//   - the __describe_module__ and __call_reducer__ exports, which read the
//     arguments from the host's bytes source into a reused buffer, recover
//     panics, and report a returned error or panic as the call's failure
//     message;
//   - Table, Index and RowIter: the table-access helpers generated code
//     uses, over the batch iterator ABI, with pooled buffers;
//   - JWT verification and identity derivation for `auth` reducers.
//
// It imports only the abi package and the standard library, so the CLI can
// ship it inside its binary for projects outside this repository.
//
// A guest runs one reducer at a time on one goroutine; the package keeps its
// reusable buffers in package variables on that basis.
package stdb
