// Package loadgen drives a running spacetime server over real WebSockets
// (protocol v1.json.spacetime) and measures it: durable reducer calls per
// second with a fixed number of calls in flight per connection, with latency
// percentiles (RunCalls), and the time from a commit to its update reaching
// every one of many subscribers (RunFanout). InProcess measures the same
// reducer called directly on runtime.Database, so the cost of the server and
// the network can be read as a ratio.
//
// cmd/spacetime-loadgen wraps it as a separate process, since a load
// generator inside the server's process would share its scheduler and GC and
// flatter it; its suite command builds the server and reproduces the
// figures of BENCHMARKS.md "Server" with one command.
package loadgen
