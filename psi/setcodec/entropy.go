package setcodec

import "math"

// EntropyBound returns log2(C(2^L, n)) / n / 8: the fewest bytes per value
// that any code for an n-value subset of the L-bit values can average. It
// returns 0 for n = 0. It takes time linear in n up to 2^26 values; above
// that it uses a series that is accurate while n ≪ 2^L.
func EntropyBound(L uint, n uint64) float64 {
	if n == 0 {
		return 0
	}
	u := math.Ldexp(1, int(L))
	fn := float64(n)
	// log C(U, n) = Σ_{i<n} log(U - i) - log n!
	//             = n·L·log 2 + Σ_{i<n} log1p(-i/U) - lgamma(n+1).
	var s float64
	if n <= 1<<26 {
		for i := uint64(1); i < n; i++ {
			s += math.Log1p(-float64(i) / u)
		}
	} else {
		s = -fn*(fn-1)/(2*u) - fn*fn*fn/(6*u*u)
	}
	lg, _ := math.Lgamma(fn + 1)
	bits := fn*float64(L) + (s-lg)/math.Ln2
	return bits / fn / 8
}
