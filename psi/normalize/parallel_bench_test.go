package normalize

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkPhoneParallel normalizes the same phone numbers on one core and
// then on two (one goroutine per core, no sharing between them), and
// reports the speed-up: what any parallel stage around Phone can reach at
// most on this machine.
func BenchmarkPhoneParallel(b *testing.B) {
	const n = 8000
	vals := make([]string, n)
	for i := range vals {
		d := 2000000000 + i
		vals[i] = fmt.Sprintf("+1 (%03d) %03d-%04d", d/10000000%1000, d/10000%1000, d%10000)
	}
	run := func(procs int) time.Duration {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		start := time.Now()
		var wg sync.WaitGroup
		for w := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += procs {
					if _, err := Phone(vals[i], ""); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var one, two time.Duration
	for b.Loop() {
		one += run(1)
		two += run(2)
	}
	b.ReportMetric(float64(one)/float64(two), "speedup_2_over_1")
	b.ReportMetric(float64(one.Nanoseconds())/float64(b.N*n), "ns/phone_1proc")
}
