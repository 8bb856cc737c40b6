// Command spacetime-loadgen measures a running spacetime server from a
// separate process, over real WebSockets:
//
//	spacetime-loadgen calls  --server URL --db NAME --conns 256 [--inflight 1] [--reducer incr --args '["k{conn}"]']
//	spacetime-loadgen fanout --server URL --db NAME --subscribers 1000 [--txs 200]
//	spacetime-loadgen suite  [--rounds 5] [--out results.json]
//
// calls reports durable reducer calls per second and latency percentiles;
// fanout the time from a call to its update reaching every subscriber; both
// print text, or JSON with --json. suite reproduces BENCHMARKS.md "Server":
// it builds the spacetime binary and the benchmark module
// (testdata/benchmod), starts `spacetime start` on a free port with a
// temporary data directory, runs calls and fanout as child processes, and
// measures the same reducer in its own process (runtime.Database.Call on a
// real store) in the same run.
package main
