// Package spacetime is the module root: a database server in one Go
// binary, in the model of SpacetimeDB (see README.md).
//
// The package itself only carries the sources of the Go guest SDK (the abi
// package and modules/go/stdb) inside the spacetime binary (SDKFiles,
// SDKHash), so that `spacetime new` can write a project that builds on a
// machine with no network and no published copy of this repository.
package spacetime
