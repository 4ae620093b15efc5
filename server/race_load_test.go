//go:build race

package server

// raceEnabled: the race detector slows the OPRF work about tenfold, so the
// load test runs fewer rows under it.
const raceEnabled = true
