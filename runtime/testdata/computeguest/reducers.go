// Command computeguest is a compute-heavy module for the metering
// benchmarks: Work does typical reducer computation, Arith a tight
// arithmetic loop. Both are deterministic functions of n.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"strconv"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

// Work sorts n pseudo-random numbers, hashes them, counts them in a map by
// string key, and adds a small recursive computation.
func Work(ctx *stdb.ReducerContext, n uint32) (uint64, error) {
	x := uint64(88172645463325252)
	xs := make([]uint64, n)
	for i := range xs {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		xs[i] = x % 100_000
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	h := sha256.New()
	var buf [8]byte
	for _, v := range xs {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	sum := h.Sum(nil)
	counts := make(map[string]int, n)
	for _, v := range xs {
		counts[strconv.FormatUint(v%1000, 10)]++
	}
	return binary.LittleEndian.Uint64(sum) ^ uint64(len(counts)) ^ uint64(fib(18)), nil
}

// Arith is a tight loop of integer arithmetic.
func Arith(ctx *stdb.ReducerContext, n uint32) (uint64, error) {
	x := uint64(1)
	for i := uint32(0); i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x, nil
}
