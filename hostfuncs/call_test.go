package hostfuncs

import (
	"errors"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

func TestEveryABIFunctionIsImplemented(t *testing.T) {
	if len(functions) != len(abi.HostFuncs) {
		t.Errorf("%d implementations for %d functions in abi.HostFuncs", len(functions), len(abi.HostFuncs))
	}
	for _, f := range abi.HostFuncs {
		if functions[f.Name] == nil {
			t.Errorf("%s is in abi.HostFuncs but not implemented", f.Name)
		}
		for _, v := range append(append([]string(nil), f.Params...), f.Results...) {
			if v != "i32" && v != "i64" {
				t.Errorf("%s: value type %s", f.Name, v)
			}
		}
	}
}

func TestHandleTable(t *testing.T) {
	c := &Call{Limits: Limits{MaxHandles: 3}.WithDefaults()}
	c.Limits.MaxHandles = 3
	src, err := c.NewSource([]byte("abc"))
	if err != nil || src == 0 {
		t.Fatalf("NewSource = %d, %v", src, err)
	}
	sink, err := c.NewSink(0)
	if err != nil || sink == 0 || sink == src {
		t.Fatalf("NewSink = %d, %v", sink, err)
	}
	if c.get(0, kindSource) != nil {
		t.Error("handle 0 is valid")
	}
	if c.get(src, kindSink) != nil || c.get(sink, kindSource) != nil {
		t.Error("a handle is usable as another kind")
	}
	if c.get(99, kindSource) != nil {
		t.Error("an unallocated handle is valid")
	}
	third, _ := c.NewSource(nil)
	if _, err := c.NewSource(nil); !errors.Is(err, ErrTooManyHandles) {
		t.Fatalf("fourth handle: err = %v", err)
	}
	c.release(third)
	if c.get(third, kindSource) != nil {
		t.Error("a released handle is still valid")
	}
	again, err := c.NewSink(1)
	if err != nil || again != third {
		t.Fatalf("the freed slot was not reused: %d, %v", again, err)
	}
	c.End()
	if c.get(src, kindSource) != nil || c.get(sink, kindSink) != nil || c.open != 0 {
		t.Error("handles survive End")
	}
	if h, err := c.NewSource(nil); err != nil || h != 1 {
		t.Fatalf("after End: %d, %v", h, err)
	}
}

func TestChargeWrite(t *testing.T) {
	c := &Call{Limits: Limits{MaxRowsWritten: 2, MaxBytesWritten: 10}.WithDefaults()}
	if !c.chargeWrite(4) || !c.chargeWrite(6) {
		t.Fatal("writes within the limits refused")
	}
	if c.chargeWrite(0) {
		t.Fatal("a third row passed MaxRowsWritten=2")
	}
	c.End()
	if !c.chargeWrite(10) || c.chargeWrite(1) {
		t.Fatal("byte limit not applied after End reset the counters")
	}
}
