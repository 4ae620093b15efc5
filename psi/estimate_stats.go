package psi

import "math"

// Overlap is estimate mode's answer for a group of identifiers: an
// unbiased estimate of how many are eligible on the platform, its standard
// error and a 95% interval.
type Overlap struct {
	// Estimate is unbiased: it may fall slightly below 0 or above N.
	Estimate float64
	// StdErr is the estimate's standard error.
	StdErr float64
	// Low and High bound the 95% interval Estimate ± 1.96·StdErr, clamped
	// to [0, N].
	Low, High float64
	// N is the number of identifiers looked up and Hits how many hit.
	N, Hits int
}

// z95 is the standard normal's 97.5% quantile.
const z95 = 1.959963984540054

// EstimateOverlap returns the estimate for n distinct identifiers of which
// hits were in a deniable set of keep probability p and density D (the
// set's ones over 2^L). With X of them eligible, each eligible one hits
// with probability q = p + (1-p)·D and each other one with probability D,
// so E[hits] = X·q + (n-X)·D = n·D + X·p·(1-D) and
//
//	X̂ = (hits - n·D) / (p·(1-D))
//
// is unbiased. Its variance is (X·q·(1-q) + (n-X)·D·(1-D)) / (p·(1-D))²,
// estimated with X̂ clamped to [0, n] in place of X.
func EstimateOverlap(n, hits int, p, D float64) Overlap {
	o := Overlap{N: n, Hits: hits}
	if n == 0 || !(p > 0 && p <= 1) || !(D >= 0 && D < 1) {
		return o
	}
	scale := p * (1 - D)
	o.Estimate = (float64(hits) - float64(n)*D) / scale
	x := min(max(o.Estimate, 0), float64(n))
	q := p + (1-p)*D
	v := x*q*(1-q) + (float64(n)-x)*D*(1-D)
	o.StdErr = math.Sqrt(v) / scale
	o.Low, o.High = clampInterval(o.Estimate, o.StdErr, float64(n))
	return o
}

// CombineOverlaps adds independent estimates (such as the email and phone
// ones): the estimates and the variances add, and the interval is
// recomputed and clamped to [0, total N].
func CombineOverlaps(os ...Overlap) Overlap {
	var t Overlap
	var v float64
	for _, o := range os {
		t.Estimate += o.Estimate
		v += o.StdErr * o.StdErr
		t.N += o.N
		t.Hits += o.Hits
	}
	t.StdErr = math.Sqrt(v)
	t.Low, t.High = clampInterval(t.Estimate, t.StdErr, float64(t.N))
	return t
}

func clampInterval(est, se, n float64) (lo, hi float64) {
	lo = min(max(est-z95*se, 0), n)
	hi = min(max(est+z95*se, 0), n)
	return lo, hi
}
