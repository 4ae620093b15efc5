package protocol

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// EstimateTotals holds a figure per kind and for both kinds together.
type EstimateTotals struct {
	Email float64 `json:"email"`
	Phone float64 `json:"phone"`
	Total float64 `json:"total"`
}

// EstimateIntervals holds a [low, high] interval per kind and in total.
type EstimateIntervals struct {
	Email [2]float64 `json:"email"`
	Phone [2]float64 `json:"phone"`
	Total [2]float64 `json:"total"`
}

// EstimateReport is what an estimate-mode match reports, and all it
// reports: no row, and no identifier, is ever said to have matched.
type EstimateReport struct {
	// EstimatedMatched is the unbiased estimate of how many of the sent
	// identifiers are eligible on the platform (it may fall slightly
	// outside [0, sent]).
	EstimatedMatched EstimateTotals `json:"estimated_matched"`
	// StandardError is the estimate's standard error.
	StandardError EstimateTotals `json:"standard_error"`
	// Interval95 is the 95% interval, clamped to [0, sent].
	Interval95 EstimateIntervals `json:"interval95"`
	// Epsilon is the per-identifier ε the server announced.
	Epsilon float64 `json:"epsilon"`
	// P and D are the keep probability and the decoy fraction announced;
	// Density is the downloaded set's measured density, which the
	// estimator uses.
	P       float64 `json:"estimate_p"`
	D       float64 `json:"estimate_d"`
	Density float64 `json:"set_density"`
	// Hits is how many identifiers per kind fell on a one bit: noisy by
	// design, the input of the estimator, not a count of matches.
	Hits Counts `json:"hits"`
}

// MarshalJSON writes the report; an estimate-mode report leaves out
// matched and matched_rows, which that mode never knows, and
// server_set_size, which there counts the deniable set's one bits, not
// eligible identifiers.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	if r.Mode != psi.ModeEstimate {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		Matched       *struct{} `json:"matched,omitempty"`
		MatchedRows   *struct{} `json:"matched_rows,omitempty"`
		ServerSetSize *struct{} `json:"server_set_size,omitempty"`
	}{plain: plain(r)})
}

// checkEstimateInfo checks an estimate session's announcement: parameters
// in range, ε as they imply, L equal to set_bits.
func checkEstimateInfo(m psi.Mode, info *SessionResponse) error {
	if m != psi.ModeEstimate {
		if info.Estimate != nil {
			return fmt.Errorf("%w: estimate parameters in a %s session", ErrBadResponse, m)
		}
		return nil
	}
	e := info.Estimate
	if e == nil {
		return fmt.Errorf("%w: an estimate session without its parameters", ErrBadResponse)
	}
	if !(e.P > 0 && e.P < 1) || !(e.D > 0 && e.D < 1) || e.Bits != info.SetBits || e.Bits < setcodec.MinBitmapBits || e.Bits > setcodec.MaxBitmapBits {
		return fmt.Errorf("%w: estimate parameters out of range (p %v, d %v, L %d, set bits %d)", ErrBadResponse, e.P, e.D, e.Bits, info.SetBits)
	}
	if eps := psi.EstimateEpsilon(e.P, e.D); math.Abs(eps-e.Epsilon) > 1e-6 {
		return fmt.Errorf("%w: announced ε %v, but p and d give %v", ErrBadResponse, e.Epsilon, eps)
	}
	return nil
}

// estimateReport turns the per-kind hit counts of an estimate session into
// the estimate, and clears everything per identifier. The set's density is
// set_size / 2^set_bits: the set the hits came from was checked to hold
// exactly that (fetchSet). It checks that the set holds at least the
// announced decoys (a sparser set would weaken the announced ε), up to six
// standard deviations of their number.
func estimateReport(rep *Report, info *SessionResponse) error {
	e := info.Estimate
	space := math.Ldexp(1, int(info.SetBits))
	D := float64(info.SetSize) / space
	if D < e.D-6*math.Sqrt(e.D*(1-e.D)/space) {
		return fmt.Errorf("%w: the estimate set's density %.4f is below its announced decoys (d = %v)", ErrBadResponse, D, e.D)
	}
	var per ident.PerKind[psi.Overlap]
	for _, k := range ident.Kinds {
		*per.At(k) = psi.EstimateOverlap(rep.Sent.Get(k), rep.Matched.Get(k), e.P, D)
	}
	total := psi.CombineOverlaps(per.Email, per.Phone)
	rep.EstimateReport = &EstimateReport{
		EstimatedMatched: EstimateTotals{per.Email.Estimate, per.Phone.Estimate, total.Estimate},
		StandardError:    EstimateTotals{per.Email.StdErr, per.Phone.StdErr, total.StdErr},
		Interval95: EstimateIntervals{
			Email: [2]float64{per.Email.Low, per.Email.High},
			Phone: [2]float64{per.Phone.Low, per.Phone.High},
			Total: [2]float64{total.Low, total.High},
		},
		Epsilon: e.Epsilon, P: e.P, D: e.D, Density: D, Hits: rep.Matched,
	}
	rep.Matched = Counts{}
	rep.MatchedRows = nil
	rep.RowMatches = nil
	return nil
}
