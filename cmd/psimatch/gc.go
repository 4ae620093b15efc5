package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's growth target for `psimatch serve`
// and `psimatch match` when the operator has not set GOGC. Both hold a
// live heap that is small next to the garbage their group operations make
// per identifier, so at Go's default of 100 % the heap peaks at twice the
// live data. At 50 %, with the same CPU time:
//   - serve, BenchmarkServerMemory at 2,000,000 identifiers: 88.8 MiB
//     instead of 128.4 MiB (CPU 80.8 s against 80.5 s);
//   - match, BenchmarkLoopback 1,000,000 × 1,000,000: client 225.7 MiB
//     instead of 277.1 MiB (78.5 s against 76.9 s per match, × floor 1.064
//     against 1.061).
const gcPercent = 50

// matchGCPercent is the growth target of `psimatch match` once its list is
// read (unless GOGC is set). Reading makes garbage at a high rate (phone
// parsing), the match phase hardly any: its live heap is the list and the
// batches in flight, pointer-free and cheap to mark, and a GODEBUG=gctrace=1
// run of BenchmarkLoopback 100,000 × 1,000,000 at 50 % spent 0 % of its CPU
// in the collector over 16 cycles, with the heap at 1.5 × its 82 MB live
// peak. At 20 % the heap stays within 1.2 × the live data:
// BenchmarkLoopback 100,000 × 1,000,000, client peak 158.3 → 128.4 MiB.
const matchGCPercent = 20

// tuneGC applies gcPercent unless GOGC is set.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// tuneGCForMatch applies matchGCPercent unless GOGC is set.
func tuneGCForMatch() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(matchGCPercent)
	}
}
