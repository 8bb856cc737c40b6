// Command benchmod is the load generator's module (see schema.spacetimedb).
package main

import "github.com/spacetime-go/spacetime/modules/go/stdb"

// Incr is the same body as the SDK test module's incr, so the figures compare
// with BENCHMARKS.md "Runtime".
func Incr(ctx *stdb.ReducerContext, key string) (uint64, error) {
	c, ok := CounterTable.FilterByKey(key)
	if !ok {
		_, err := CounterTable.Insert(Counter{Key: key, Value: 1})
		return 1, err
	}
	c.Value++
	return c.Value, CounterTable.UpdateByKey(c)
}

func PostTick(ctx *stdb.ReducerContext, seq, sentUS uint64) (uint64, error) {
	t, err := TickTable.Insert(Tick{Seq: seq, SentUs: sentUS})
	return t.ID, err
}
