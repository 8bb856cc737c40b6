package stdb

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/spacetime-go/spacetime/abi"
)

// ReducerFunc is the dispatcher generated code registers for each reducer:
// it decodes the arguments from args, calls the user's function, and writes
// a return value, if the reducer has one, to ret.
type ReducerFunc func(ctx *ReducerContext, args *abi.Reader, ret *abi.Writer) error

// module is what the generated code registers; a guest holds exactly one.
type module struct {
	def      string
	reducers []ReducerFunc
}

// The guest is single-threaded and runs one reducer at a time, so this state
// is per instance and needs no locking. Buffers live here to be reused across
// calls: allocation churn is the main cost of a Go guest.
var (
	theModule  module
	callCtx    ReducerContext
	argsBuf    []byte
	argsReader abi.Reader
	retWriter  abi.Writer
)

// RegisterModule installs the module's description (ModuleDef JSON) and its
// reducers, indexed by reducer id (the order of ModuleDef.Reducers). Generated
// code calls it from init; calling it again replaces the module.
func RegisterModule(defJSON string, reducers ...ReducerFunc) {
	theModule = module{def: defJSON, reducers: reducers}
}

// dispatch runs reducer id as __call_reducer__ asks. A returned error or a
// panic writes its message to errSink and reports CallFailed; the host then
// rolls the transaction back.
func dispatch(id uint32, caller abi.Identity, conn abi.ConnectionID, ts int64, argsSrc, retSink, errSink uint32) (res abi.CallResult) {
	defer func() {
		if r := recover(); r != nil {
			msg := panicMessage(r)
			// The client gets the message; the module's log gets where it came from.
			Log(abi.LogError, "reducer panicked: "+msg+"\n"+string(debug.Stack()))
			fail(errSink, msg)
			res = abi.CallFailed
		}
	}()
	if int(id) >= len(theModule.reducers) {
		fail(errSink, fmt.Sprintf("no reducer with id %d: the module has %d reducers", id, len(theModule.reducers)))
		return abi.CallFailed
	}
	args, err := readSource(argsSrc, argsBuf[:0])
	argsBuf = args[:0]
	if err != nil {
		fail(errSink, "reading the reducer's arguments: "+err.Error())
		return abi.CallFailed
	}
	callCtx = ReducerContext{Caller: caller, ConnectionID: conn, Timestamp: Timestamp(ts)}
	retWriter.Reset()
	argsReader = *abi.NewReader(args) // a package variable: a fresh Reader would escape to the heap on every call
	if err := theModule.reducers[id](&callCtx, &argsReader, &retWriter); err != nil {
		fail(errSink, err.Error())
		return abi.CallFailed
	}
	if out := retWriter.Bytes(); len(out) > 0 {
		if e := sysSinkWrite(retSink, out); e != abi.ErrnoOK {
			fail(errSink, "writing the return value: "+e.Error())
			return abi.CallFailed
		}
	}
	return abi.CallCommitted
}

func fail(errSink uint32, msg string) {
	if msg == "" {
		msg = "reducer failed"
	}
	b := make([]byte, len(msg))
	copy(b, msg)
	sysSinkWrite(errSink, b)
}

func panicMessage(r any) string {
	switch v := r.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return fmt.Sprint(r)
}

// readSource appends everything left in a bytes source to buf. Source 0 is
// empty. The guest reads into its own buffer rather than having the host
// call its allocator, which costs about four times as much. It reads
// straight away into the spare capacity, without asking the length first:
// reducer arguments fit the reused buffer almost always, so one host call
// reads them; a read that fills the buffer grows it and reads on.
func readSource(src uint32, buf []byte) ([]byte, error) {
	if src == 0 {
		return buf, nil
	}
	for {
		if cap(buf)-len(buf) < minSourceRead {
			nb := make([]byte, len(buf), 2*cap(buf)+minSourceRead)
			copy(nb, buf)
			buf = nb
		}
		room := buf[len(buf):cap(buf)]
		got, e := sysSourceRead(src, room)
		buf = buf[:len(buf)+got]
		switch {
		case e == abi.ErrnoExhausted || e == abi.ErrnoOK && got < len(room):
			return buf, nil
		case e != abi.ErrnoOK:
			return buf, e
		}
	}
}

// minSourceRead is the least spare room readSource reads into.
const minSourceRead = 256

// ReadSource returns the whole content of a bytes source the host handed
// out (for example by jwt_verify), in a new slice of exactly its length.
func ReadSource(src uint32) ([]byte, error) {
	if src == 0 {
		return nil, nil
	}
	n, e := sysSourceLen(src)
	if e != abi.ErrnoOK {
		return nil, e
	}
	buf := make([]byte, n)
	off := 0
	for off < len(buf) {
		got, e := sysSourceRead(src, buf[off:])
		off += got
		if e == abi.ErrnoExhausted || e == abi.ErrnoOK && got == 0 {
			break
		}
		if e != abi.ErrnoOK {
			return nil, e
		}
	}
	return buf[:off], nil
}

// ErrBadArgs is wrapped by the error a reducer fails with when its arguments
// do not decode as its declared parameters.
var ErrBadArgs = errors.New("malformed reducer arguments")

// CheckArgs is called by generated dispatchers after decoding the
// arguments: it reports a decoding error or trailing bytes.
func CheckArgs(reducer string, r *abi.Reader) error {
	if err := r.Err(); err != nil {
		return fmt.Errorf("%s: %w: %w", reducer, ErrBadArgs, err)
	}
	if n := r.Remaining(); n != 0 {
		return fmt.Errorf("%s: %w: %d bytes after the last parameter", reducer, ErrBadArgs, n)
	}
	return nil
}
