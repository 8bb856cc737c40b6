// Package build compiles a Go module directory to a WebAssembly module the
// host runs: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath.
// It regenerates the module code first, shows progress, turns compiler
// output into an error that points at the user's files (with a hint for a
// reducer declared in the schema but not written), and checks the result
// against the ABI (CheckABI) so a bad module is caught before it is
// published.
package build
