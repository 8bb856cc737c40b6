//go:build wasip1

package stdb

import (
	"unsafe"

	"github.com/spacetime-go/spacetime/abi"
)

// The host functions of abi.HostFuncs, imported from abi.ImportModule. Each
// returns an abi.Errno. Buffers are passed as pointer and length (or pointer
// to an in/out length); out-parameters are pointers the host writes to.
//
// Every import is //go:noescape: the host copies what it reads and never
// keeps a guest pointer past the call (the ABI says so). Without it the
// compiler must assume the pointers escape, and every out-parameter
// (`var n uint32; raw(..., &n)`) becomes a heap allocation, which in a Go
// guest costs far more than the host call itself.

//go:wasmimport spacetime_v1 table_id_from_name
//go:noescape
func rawTableIDFromName(name unsafe.Pointer, nameLen uint32, outID *uint32) uint32

//go:wasmimport spacetime_v1 index_id_from_name
//go:noescape
func rawIndexIDFromName(name unsafe.Pointer, nameLen uint32, outID *uint32) uint32

//go:wasmimport spacetime_v1 table_row_count
//go:noescape
func rawTableRowCount(tableID uint32, out *uint64) uint32

//go:wasmimport spacetime_v1 table_scan
//go:noescape
func rawTableScan(tableID uint32, outIter *uint32) uint32

//go:wasmimport spacetime_v1 index_scan_point
//go:noescape
func rawIndexScanPoint(indexID uint32, key unsafe.Pointer, keyLen uint32, outIter *uint32) uint32

//go:wasmimport spacetime_v1 index_scan_range
//go:noescape
func rawIndexScanRange(indexID uint32, lo unsafe.Pointer, loLen uint32, loBound uint32, hi unsafe.Pointer, hiLen uint32, hiBound uint32, outIter *uint32) uint32

//go:wasmimport spacetime_v1 row_iter_advance
//go:noescape
func rawRowIterAdvance(iter uint32, buf unsafe.Pointer, bufLen *uint32) uint32

//go:wasmimport spacetime_v1 row_iter_close
//go:noescape
func rawRowIterClose(iter uint32) uint32

//go:wasmimport spacetime_v1 row_insert
//go:noescape
func rawRowInsert(tableID uint32, row unsafe.Pointer, rowLen *uint32) uint32

//go:wasmimport spacetime_v1 row_update
//go:noescape
func rawRowUpdate(indexID uint32, row unsafe.Pointer, rowLen *uint32) uint32

//go:wasmimport spacetime_v1 row_delete_by_index_point
//go:noescape
func rawRowDeleteByIndexPoint(indexID uint32, key unsafe.Pointer, keyLen uint32, outCount *uint32) uint32

//go:wasmimport spacetime_v1 bytes_source_read
//go:noescape
func rawBytesSourceRead(source uint32, buf unsafe.Pointer, bufLen *uint32) uint32

//go:wasmimport spacetime_v1 bytes_source_len
//go:noescape
func rawBytesSourceLen(source uint32, out *uint32) uint32

//go:wasmimport spacetime_v1 bytes_sink_write
//go:noescape
func rawBytesSinkWrite(sink uint32, buf unsafe.Pointer, bufLen *uint32) uint32

//go:wasmimport spacetime_v1 jwt_verify
//go:noescape
func rawJWTVerify(token unsafe.Pointer, tokenLen uint32, outSource *uint32) uint32

//go:wasmimport spacetime_v1 identity_from_claims
//go:noescape
func rawIdentityFromClaims(iss unsafe.Pointer, issLen uint32, sub unsafe.Pointer, subLen uint32, out32 unsafe.Pointer) uint32

//go:wasmimport spacetime_v1 caller_claims
//go:noescape
func rawCallerClaims(outSource *uint32) uint32

//go:wasmimport spacetime_v1 console_log
//go:noescape
func rawConsoleLog(level uint32, msg unsafe.Pointer, msgLen uint32) uint32

func strPtr(s string) unsafe.Pointer  { return unsafe.Pointer(unsafe.StringData(s)) }
func bytePtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func sysTableID(name string) (uint32, abi.Errno) {
	var id uint32
	e := rawTableIDFromName(strPtr(name), uint32(len(name)), &id)
	return id, abi.Errno(e)
}

func sysIndexID(name string) (uint32, abi.Errno) {
	var id uint32
	e := rawIndexIDFromName(strPtr(name), uint32(len(name)), &id)
	return id, abi.Errno(e)
}

func sysRowCount(table uint32) (uint64, abi.Errno) {
	var n uint64
	e := rawTableRowCount(table, &n)
	return n, abi.Errno(e)
}

func sysTableScan(table uint32) (uint32, abi.Errno) {
	var it uint32
	e := rawTableScan(table, &it)
	return it, abi.Errno(e)
}

func sysScanPoint(index uint32, key []byte) (uint32, abi.Errno) {
	var it uint32
	e := rawIndexScanPoint(index, bytePtr(key), uint32(len(key)), &it)
	return it, abi.Errno(e)
}

func sysScanRange(index uint32, lo []byte, loKind uint32, hi []byte, hiKind uint32) (uint32, abi.Errno) {
	var it uint32
	e := rawIndexScanRange(index, bytePtr(lo), uint32(len(lo)), loKind, bytePtr(hi), uint32(len(hi)), hiKind, &it)
	return it, abi.Errno(e)
}

// sysIterAdvance fills buf; n is the bytes written, or the size needed on
// ErrnoBufferTooSmall.
func sysIterAdvance(iter uint32, buf []byte) (int, abi.Errno) {
	n := uint32(len(buf))
	e := rawRowIterAdvance(iter, bytePtr(buf), &n)
	return int(n), abi.Errno(e)
}

func sysIterClose(iter uint32) abi.Errno { return abi.Errno(rawRowIterClose(iter)) }

func sysInsert(table uint32, row []byte) abi.Errno {
	n := uint32(len(row))
	return abi.Errno(rawRowInsert(table, bytePtr(row), &n))
}

func sysUpdate(index uint32, row []byte) abi.Errno {
	n := uint32(len(row))
	return abi.Errno(rawRowUpdate(index, bytePtr(row), &n))
}

func sysDelete(index uint32, key []byte) (uint32, abi.Errno) {
	var n uint32
	e := rawRowDeleteByIndexPoint(index, bytePtr(key), uint32(len(key)), &n)
	return n, abi.Errno(e)
}

func sysSourceRead(src uint32, buf []byte) (int, abi.Errno) {
	n := uint32(len(buf))
	e := rawBytesSourceRead(src, bytePtr(buf), &n)
	return int(n), abi.Errno(e)
}

func sysSourceLen(src uint32) (uint32, abi.Errno) {
	var n uint32
	e := rawBytesSourceLen(src, &n)
	return n, abi.Errno(e)
}

func sysSinkWrite(sink uint32, b []byte) abi.Errno {
	n := uint32(len(b))
	return abi.Errno(rawBytesSinkWrite(sink, bytePtr(b), &n))
}

func sysJWTVerify(token string) (uint32, abi.Errno) {
	var src uint32
	e := rawJWTVerify(strPtr(token), uint32(len(token)), &src)
	return src, abi.Errno(e)
}

func sysIdentityFromClaims(iss, sub string) (abi.Identity, abi.Errno) {
	var id abi.Identity
	e := rawIdentityFromClaims(strPtr(iss), uint32(len(iss)), strPtr(sub), uint32(len(sub)), unsafe.Pointer(&id[0]))
	return id, abi.Errno(e)
}

func sysCallerClaims() (uint32, abi.Errno) {
	var src uint32
	e := rawCallerClaims(&src)
	return src, abi.Errno(e)
}

func sysLog(level uint32, msg string) abi.Errno {
	return abi.Errno(rawConsoleLog(level, strPtr(msg), uint32(len(msg))))
}
