package fuel

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestMutations is FuzzInstrument's property over seeded random mutations
// of the test modules, in one process and reproducibly (the fuzzer's
// workers died on two runs without saying why; this found the bugs its
// corpus now holds). FUEL_MUTATIONS sets how many (300 by default),
// FUEL_SEED which.
func TestMutations(t *testing.T) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("FUEL_MUTATIONS")); err == nil {
		n = v
	}
	var seeds [][]byte
	for _, dir := range []string{"testdata", "../../testdata", "../../testdata/adversarial"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if len(b) < 1<<16 {
				seeds = append(seeds, b)
			}
		}
	}
	seed, _ := strconv.ParseUint(os.Getenv("FUEL_SEED"), 10, 64) // FUEL_SEED varies the mutations
	rng := rand.New(rand.NewPCG(1, 2+seed))
	for i := 0; i < n; i++ {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for k := rng.IntN(4) + 1; k > 0; k-- {
			switch rng.IntN(3) {
			case 0:
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			case 1:
				j := rng.IntN(len(b))
				b = append(b[:j], append([]byte{byte(rng.IntN(256))}, b[j:]...)...)
			case 2:
				if len(b) > 9 {
					j := 8 + rng.IntN(len(b)-8)
					b = append(b[:j], b[j+1:]...)
				}
			}
		}
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			fuzzInstrumentOne(t, context.Background(), b, Config{InitialFuel: 20_000, MaxCallDepth: 300, Refuel: true}, 20_000)
		})
		if t.Failed() {
			t.Fatalf("mutation %d: %x", i, b)
		}
	}
}
