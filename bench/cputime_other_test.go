//go:build !unix

package bench

import "time"

// processCPU returns 0: CPU-time ratios are not reported on this platform.
func processCPU() time.Duration { return 0 }
