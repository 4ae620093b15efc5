package psi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
)

// Mode is what a session reveals to the advertiser, and so how both sides
// blind, evaluate and finalize. Its String is the name on the wire.
type Mode uint8

// The modes. The zero Mode is not a mode: a session always names one.
const (
	// ModeCount: one blind per batch, answers shuffled, outputs
	// H(context || unblinded element). An honest client learns how many of
	// its identifiers are in the set; a client that picks its own blinds
	// learns which (see SECURITY.md).
	ModeCount Mode = iota + 1
	// ModeMembers: the RFC 9497 flow, a blind per element, answers in order,
	// RFC 9497 Finalize outputs, DLEQ proofs on a verifiable server. The
	// client learns which of its identifiers matched.
	ModeMembers
	// ModeEstimate: the members flow (a blind per element, answers in
	// order, RFC 9497 Finalize outputs) under the long-lived estimate key,
	// looked up in the deniable set (see EstimateParams): the client learns
	// an unbiased estimate of the overlap, and about each identifier it
	// evaluates one permanent noisy bit whose likelihood ratio is at most
	// e^ε, however it deviates.
	ModeEstimate
)

// Modes lists every mode.
var Modes = [...]Mode{ModeCount, ModeMembers, ModeEstimate}

// ErrUnknownMode is returned by ParseMode for a name that is not a mode.
var ErrUnknownMode = errors.New("psi: unknown mode (want estimate, count or members)")

// String returns the mode's wire name.
func (m Mode) String() string {
	switch m {
	case ModeCount:
		return "count"
	case ModeMembers:
		return "members"
	case ModeEstimate:
		return "estimate"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, ErrUnknownMode
}

// JoinModes names modes joined by sep, as in "count, members".
func JoinModes(ms []Mode, sep string) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.String()
	}
	return strings.Join(names, sep)
}

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m >= ModeCount && m <= ModeEstimate }

// Shuffled reports whether the platform returns the mode's answers in a
// random order (count mode), which also means no DLEQ proof binds them.
func (m Mode) Shuffled() bool { return m == ModeCount }

// MarshalText encodes the mode as its wire name.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, ErrUnknownMode
	}
	return []byte(m.String()), nil
}

// UnmarshalText decodes a wire name.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Blinder is the advertiser's side of one batch: Blind the inputs, send the
// result to the platform, Finalize its answer into outputs (OutputSize bytes
// each) to look up in the session's set. Use one Blinder per batch.
type Blinder interface {
	Blind(inputs []ident.Input) ([]byte, error)
	Finalize(ev *Evaluation) ([]byte, error)
}

// NewBlinder returns the blinder of mode m for one batch. publicKey is the
// platform's encoded public key of the session (the estimate key's in
// estimate mode), checked against proofs on a verifiable suite in members
// and estimate mode and otherwise ignored.
func NewBlinder(s *Suite, m Mode, publicKey []byte) (Blinder, error) {
	switch m {
	case ModeCount:
		return NewCountBlinder(s), nil
	case ModeMembers, ModeEstimate:
		return NewMembersBlinder(s, publicKey)
	}
	return nil, ErrUnknownMode
}
