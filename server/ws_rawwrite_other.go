//go:build !unix

package server

// directWrites is false where rawWrite has no non-blocking write(2): every
// update goes through the connection's writer.
const directWrites = false

func rawWrite(uintptr, []byte) (int, error) { panic("server: no direct writes on this system") }
