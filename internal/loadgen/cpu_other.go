//go:build !linux

package loadgen

import "time"

// PIDCPU is a process's CPU time, measured on Linux only (0 elsewhere).
func PIDCPU(int) time.Duration { return 0 }

// processCPU is measured on Linux only.
func processCPU() time.Duration { return 0 }
