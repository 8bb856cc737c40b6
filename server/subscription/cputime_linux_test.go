package subscription

import (
	"syscall"
	"time"
)

// threadCPUTime is the CPU time of the calling OS thread (RUSAGE_THREAD).
// On a shared machine it excludes the time spent waiting for a core, which
// wall-clock ns/op does not.
func threadCPUTime() (time.Duration, bool) {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
