//go:build wasip1

package stdb

import "github.com/spacetime-go/spacetime/abi"

//go:wasmexport __describe_module__
func describeModule(sink uint32) {
	sysSinkWrite(sink, []byte(theModule.def))
}

//go:wasmexport __call_reducer__
func callReducer(id uint32, caller0, caller1, caller2, caller3, conn0, conn1 uint64, timestamp int64, argsSrc, retSink, errSink uint32) int32 {
	return int32(dispatch(id, abi.IdentityFromWords(caller0, caller1, caller2, caller3),
		abi.ConnectionIDFromWords(conn0, conn1), timestamp, argsSrc, retSink, errSink))
}
