//go:build race

package server

// raceEnabled: the race detector slows wazero's compiler and the metering
// rewrite about a hundredfold (the 3.5 MB test module took 43 s to compile
// under -race at load 8, 0.44 s without), so the runtime's one-minute
// compile timeout, meant for a module of hostile shape, is reached by the
// ordinary test module on a loaded machine.
const raceEnabled = true
