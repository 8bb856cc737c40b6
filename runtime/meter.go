package runtime

import (
	"context"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/spacetime-go/spacetime/runtime/internal/fuel"
)

// meters maps each metered instance's module to its instance, for the
// refuel host function, which wazero hands only the calling module.
type meters struct{ m sync.Map } // api.Module -> *instance

// instantiateMeter provides the import every metered module has
// (fuel.MeterModule.RefuelFunc): a check site that finds its slice spent
// calls it, and it refills the fuel global from the call's reserve. That
// host call is the point where a Go stop-the-world, which cannot interrupt
// compiled guest code, gets to proceed.
func instantiateMeter(ctx context.Context, wz wazero.Runtime, ms *meters) error {
	_, err := wz.NewHostModuleBuilder(fuel.MeterModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, _ []uint64) {
			v, ok := ms.m.Load(mod)
			if !ok {
				// A start function, during instantiation: it runs on the
				// module's initial fuel alone, and the check traps.
				return
			}
			inst := v.(*instance)
			inst.fuel.Set(uint64(inst.meter.Refuel(int64(inst.fuel.Get()))))
		}), nil, nil).
		Export(fuel.RefuelFunc).
		Instantiate(ctx)
	return err
}
