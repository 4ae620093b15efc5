//go:build !linux

package setcodec

import "time"

// threadCPU returns 0: only Linux reports per-thread CPU time here.
func threadCPU() time.Duration { return 0 }
