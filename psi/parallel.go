package psi

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// chunkSize is the number of elements a worker takes at a time. Large enough
// to amortise a batch inversion and scheduling, small enough to balance two
// to a few dozen cores.
const chunkSize = 512

// parallel calls fn on consecutive ranges [lo, hi) of [0, n), chunk elements
// at a time, from GOMAXPROCS workers. It returns the error of the lowest
// failing range, so a batch's first bad element is the one reported.
func parallel(n, chunk int, fn func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	chunks := (n + chunk - 1) / chunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	if workers <= 1 {
		for c := range chunks {
			if err := fn(c*chunk, min(n, (c+1)*chunk)); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		firstAt  = chunks
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				if err := fn(c*chunk, min(n, (c+1)*chunk)); err != nil {
					mu.Lock()
					if c < firstAt {
						firstAt, firstErr = c, err
					}
					mu.Unlock()
					next.Store(int64(chunks)) // stop handing out work
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
