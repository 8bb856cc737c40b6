package guesttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/modules/build"
)

var (
	mu     sync.Mutex
	builds = map[string]*result{}
)

type result struct {
	once sync.Once
	wasm []byte
	err  error
}

// Build compiles the module in dir once per test binary (a Go wasm build
// takes seconds) into a temporary directory and returns its bytes. The
// build checks the ABI (build.CheckABI).
func Build(t testing.TB, dir string) []byte {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	r, ok := builds[abs]
	if !ok {
		r = &result{}
		builds[abs] = r
	}
	mu.Unlock()
	r.once.Do(func() {
		tmp, err := os.MkdirTemp("", "guesttest-*")
		if err != nil {
			r.err = err
			return
		}
		defer os.RemoveAll(tmp)
		out, err := build.Build(context.Background(), abs, build.WithOutput(filepath.Join(tmp, "m.wasm")))
		if err != nil {
			r.err = err
			return
		}
		r.wasm, r.err = os.ReadFile(out)
	})
	if r.err != nil {
		t.Fatalf("building %s: %v", dir, r.err)
	}
	return r.wasm
}

// Host runs one guest instance.
type Host struct {
	rt      wazero.Runtime
	mod     api.Module
	call    api.Function
	sources map[uint32][]byte
	sinks   map[uint32][]byte
	next    uint32
	// Logs holds the console_log lines, as "LEVEL message".
	Logs []string
	// AcceptInserts makes table_id_from_name know every table and row_insert
	// accept (and drop) every row, to measure the SDK's insert path alone.
	AcceptInserts bool
	// Inserts counts the rows row_insert accepted.
	Inserts int
}

// New compiles wasm with wazero's default (compiling) runtime, instantiates it
// under the minimal host and runs _initialize.
func New(t testing.TB, wasm []byte) *Host {
	t.Helper()
	ctx := context.Background()
	h := &Host{rt: wazero.NewRuntime(ctx), sources: map[uint32][]byte{}, sinks: map[uint32][]byte{}}
	t.Cleanup(func() { h.rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, h.rt)
	b := h.rt.NewHostModuleBuilder(abi.ImportModule)
	for _, f := range abi.HostFuncs {
		params := make([]api.ValueType, len(f.Params))
		for i := range params {
			params[i] = api.ValueTypeI32
		}
		b.NewFunctionBuilder().WithGoModuleFunction(h.hostFunc(f.Name), params, []api.ValueType{api.ValueTypeI32}).Export(f.Name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	cm, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	h.mod, err = h.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	h.call = h.mod.ExportedFunction(abi.ExportCallReducer)
	return h
}

func (h *Host) handle() uint32 { h.next++; return h.next }

func (h *Host) hostFunc(name string) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, st []uint64) {
		mem := m.Memory()
		ret := func(e abi.Errno) { st[0] = uint64(e) }
		switch name {
		case "bytes_source_len":
			src, ok := h.sources[uint32(st[0])]
			if !ok {
				ret(abi.ErrnoBadHandle)
				return
			}
			mem.WriteUint32Le(uint32(st[1]), uint32(len(src)))
			ret(abi.ErrnoOK)
		case "bytes_source_read":
			id := uint32(st[0])
			src, ok := h.sources[id]
			if !ok {
				ret(abi.ErrnoBadHandle)
				return
			}
			capacity, _ := mem.ReadUint32Le(uint32(st[2]))
			if len(src) == 0 {
				mem.WriteUint32Le(uint32(st[2]), 0)
				delete(h.sources, id)
				ret(abi.ErrnoExhausted)
				return
			}
			n := min(int(capacity), len(src))
			mem.Write(uint32(st[1]), src[:n])
			mem.WriteUint32Le(uint32(st[2]), uint32(n))
			h.sources[id] = src[n:]
			ret(abi.ErrnoOK)
		case "bytes_sink_write":
			id := uint32(st[0])
			if _, ok := h.sinks[id]; !ok {
				ret(abi.ErrnoBadHandle)
				return
			}
			n, _ := mem.ReadUint32Le(uint32(st[2]))
			b, ok := mem.Read(uint32(st[1]), n)
			if !ok {
				ret(abi.ErrnoOutOfBounds)
				return
			}
			h.sinks[id] = append(h.sinks[id], b...)
			ret(abi.ErrnoOK)
		case "console_log":
			b, ok := mem.Read(uint32(st[1]), uint32(st[2]))
			if !ok {
				ret(abi.ErrnoOutOfBounds)
				return
			}
			h.Logs = append(h.Logs, fmt.Sprintf("%d %s", uint32(st[0]), b))
			ret(abi.ErrnoOK)
		case "table_id_from_name":
			if !h.AcceptInserts {
				ret(abi.ErrnoNoSuchTable)
				return
			}
			mem.WriteUint32Le(uint32(st[2]), 0)
			ret(abi.ErrnoOK)
		case "row_insert":
			if !h.AcceptInserts {
				ret(abi.ErrnoNoSuchTable)
				return
			}
			h.Inserts++
			ret(abi.ErrnoOK)
		case "identity_from_claims":
			ret(abi.ErrnoNotInReducer)
		default:
			ret(abi.ErrnoNoSuchTable)
		}
	}
}

// Describe calls __describe_module__ and returns what it wrote.
func (h *Host) Describe(t testing.TB) []byte {
	t.Helper()
	sink := h.handle()
	h.sinks[sink] = []byte{}
	if _, err := h.mod.ExportedFunction(abi.ExportDescribeModule).Call(context.Background(), uint64(sink)); err != nil {
		t.Fatal(err)
	}
	return h.sinks[sink]
}

// Call runs reducer id with BSATN args and returns the result code, the
// return value's bytes and the error message. A trap is returned as err.
func (h *Host) Call(id uint32, caller abi.Identity, ts int64, args []byte) (abi.CallResult, []byte, string, error) {
	src, ret, errs := h.handle(), h.handle(), h.handle()
	h.sources[src] = args
	h.sinks[ret], h.sinks[errs] = []byte{}, []byte{}
	c0, c1, c2, c3 := caller.Words()
	out, err := h.call.Call(context.Background(), uint64(id), c0, c1, c2, c3, 7, 8, uint64(ts), uint64(src), uint64(ret), uint64(errs))
	retBytes, errBytes := h.sinks[ret], h.sinks[errs]
	delete(h.sources, src)
	delete(h.sinks, ret)
	delete(h.sinks, errs)
	if err != nil {
		return 0, nil, "", err
	}
	return abi.CallResult(int32(out[0])), retBytes, string(errBytes), nil
}
