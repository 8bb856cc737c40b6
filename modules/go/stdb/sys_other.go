//go:build !wasip1

package stdb

import "github.com/spacetime-go/spacetime/abi"

// Outside WebAssembly there is no host: every host function reports
// ErrnoNotInReducer. This keeps modules compiling (and vettable) with the
// host's GOOS, so `go build ./...` covers them; they only run as wasip1.

const noHost = abi.ErrnoNotInReducer

func sysTableID(string) (uint32, abi.Errno)                                   { return 0, noHost }
func sysIndexID(string) (uint32, abi.Errno)                                   { return 0, noHost }
func sysRowCount(uint32) (uint64, abi.Errno)                                  { return 0, noHost }
func sysTableScan(uint32) (uint32, abi.Errno)                                 { return 0, noHost }
func sysScanPoint(uint32, []byte) (uint32, abi.Errno)                         { return 0, noHost }
func sysScanRange(uint32, []byte, uint32, []byte, uint32) (uint32, abi.Errno) { return 0, noHost }
func sysIterAdvance(uint32, []byte) (int, abi.Errno)                          { return 0, noHost }
func sysIterClose(uint32) abi.Errno                                           { return noHost }
func sysInsert(uint32, []byte) abi.Errno                                      { return noHost }
func sysUpdate(uint32, []byte) abi.Errno                                      { return noHost }
func sysDelete(uint32, []byte) (uint32, abi.Errno)                            { return 0, noHost }
func sysSourceRead(uint32, []byte) (int, abi.Errno)                           { return 0, noHost }
func sysSourceLen(uint32) (uint32, abi.Errno)                                 { return 0, noHost }
func sysSinkWrite(uint32, []byte) abi.Errno                                   { return noHost }
func sysJWTVerify(string) (uint32, abi.Errno)                                 { return 0, noHost }
func sysIdentityFromClaims(string, string) (abi.Identity, abi.Errno)          { return abi.Identity{}, noHost }
func sysCallerClaims() (uint32, abi.Errno)                                    { return 0, noHost }
func sysLog(uint32, string) abi.Errno                                         { return noHost }
