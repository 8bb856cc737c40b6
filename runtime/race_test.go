//go:build race

package runtime

// raceEnabled: the race detector slows wazero's compiler and the metering
// rewrite about a hundredfold (a 3.5 MB Go guest took 43 s under -race at
// load 8, 0.44 s without), so the one-minute compile timeout is reached by
// ordinary test modules on a loaded machine.
const raceEnabled = true
