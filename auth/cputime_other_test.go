//go:build !linux

package auth

import "time"

func threadCPUTime() (time.Duration, bool) { return 0, false }
