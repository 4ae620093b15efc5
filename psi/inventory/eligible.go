package inventory

import "github.com/psimatch/psimatch/psi/ident"

// Eligible is an identifier that passed the purpose policy and deny wins: a
// record gave it an eligible purpose (advertising), no record of it is
// security-only, opted out or invalid, and no user holding it opted out. It is
// the only type the code that builds the matchable set accepts.
//
// Only the deny-wins filter (Result.Yield) makes an Eligible, and Run, Scan
// and Result.Yield hand them out through their yield callback. The fields are unexported and there is no
// exported constructor, so code outside this package cannot make one with a
// chosen identifier: a composite literal with fields, or a conversion from a
// look-alike struct, does not compile (see TestEligibleCannotBeForged). The
// one value such code can write, the zero Eligible, is not Valid, and its
// Input method panics rather than return an identifier that bypassed the
// filter.
type Eligible struct {
	in    ident.Input
	valid bool
}

// Valid reports whether e came out of the policy filter. Only the zero
// Eligible, which carries no identifier, is not valid.
func (e Eligible) Valid() bool { return e.valid }

// Input returns the PRF input of the eligible identifier. It panics if e is
// not Valid: a set builder given an Eligible that did not come from the
// policy filter has a bug, and must stop rather than match it.
func (e Eligible) Input() ident.Input {
	if !e.valid {
		panic("inventory: Input of an Eligible that did not come from the policy filter")
	}
	return e.in
}

// Kind returns the kind of the eligible identifier, like Input().Kind().
func (e Eligible) Kind() ident.Kind { return e.Input().Kind() }
