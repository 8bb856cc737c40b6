//go:build !linux

package loadgen

import "time"

// pidCPU is measured on Linux only.
func pidCPU(int) time.Duration { return 0 }

// processCPU is measured on Linux only.
func processCPU() time.Duration { return 0 }
