// Package abi is the contract between the host and a guest module, version 1.
//
// It is shared by both sides: the host (runtime, hostfuncs, store, server) and
// guest SDKs built with GOOS=wasip1. It therefore imports nothing of the project
// and nothing outside the standard library.
//
// It defines:
//   - the column types and dynamic values ([Type], [Value]);
//   - BSATN, the binary value format rows, arguments and return values cross the
//     boundary in ([EncodeRow], [DecodeRow], [Writer], [Reader]);
//   - the module description a guest exports ([ModuleDef]);
//   - the import namespace, the host functions and their errnos (hostabi.go).
//
// Every wire format here is versioned by [Version]; a change that a deployed
// module or client could observe needs a new version.
package abi
