package psi

// Estimate mode in this package (psi/estimate.go, psi/estimate_stats.go):
//
//   - NewEstimateParams turns the operator's ε into p (with d = 1/4) and L;
//   - DeriveEstimateKey derives the long-lived estimate key, keep key and
//     decoy key from the master seed and the parameters' label;
//   - EstimateKey.NewBuilder, Add (each inventory.Eligible), Finish build the
//     deniable set as a setcodec-coded bitmap, reusing the previous build's
//     EstimateCache of kept positions;
//   - NewBlinder(ModeEstimate) is the members blinder; the client looks its
//     outputs up in the set and EstimateOverlap / CombineOverlaps give the
//     estimate, its standard error and a 95% interval.
//
// In estimate mode a client, even a modified one, learns about each
// identifier it evaluates one permanent bit with likelihood ratio at most
// e^ε (EstimateEpsilon); see SECURITY.md, "Estimate mode and ε".
