// Package codegen writes the code a module needs from its schema: for Go
// modules, typed rows with hand-written BSATN methods (no reflection), table
// handles in the tutorial's style (UserTable.Insert, UserTable.FilterByIdentityID,
// UpdateBy/DeleteBy for the primary key and unique columns, FilterBy/RangeBy
// for B-tree indexes, Iter, Count), reducer dispatch to plain Go functions
// the author writes, and the embedded ModuleDef that __describe_module__
// returns.
//
// The generated code depends only on the abi package and the Go guest SDK
// (modules/go/stdb). Output is gofmt'd and starts with Header.
package codegen
