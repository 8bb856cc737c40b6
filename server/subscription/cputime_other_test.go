//go:build !linux

package subscription

import "time"

func threadCPUTime() (time.Duration, bool) { return 0, false }
