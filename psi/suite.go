package psi

import (
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
)

// Suite is an RFC 9497 ciphersuite together with the RFC mode (base or
// verifiable) an epoch runs in. The mode changes the key and the
// hash-to-group domain separation, so both sides must agree on it.
type Suite struct {
	oprf       oprf.Suite
	g          group.Group
	hash       crypto.Hash
	verifiable bool
	h2gDST     []byte // "HashToGroup-OPRFV1-" || mode || "-" || identifier
	dleqDST    []byte // "OPRFV1-" || mode || "-" || identifier
	countCtx   []byte // domain separation of count-mode outputs
	weier      bool   // a short Weierstrass curve (P-256): compressed points start with 2 or 3
}

// ErrUnknownSuite is returned by SuiteByName for a name it does not know.
var ErrUnknownSuite = errors.New("psi: unknown suite (want ristretto255 or p256)")

// SuiteByName returns the suite named name: "ristretto255" (or its RFC name
// "ristretto255-SHA512") or "p256" ("P256-SHA256"). verifiable selects the
// RFC 9497 VOPRF mode, in which members-mode evaluations carry DLEQ proofs.
func SuiteByName(name string, verifiable bool) (*Suite, error) {
	var s oprf.Suite
	switch strings.ToLower(name) {
	case "", "ristretto255", "ristretto255-sha512":
		s = oprf.SuiteRistretto255
	case "p256", "p-256", "p256-sha256":
		s = oprf.SuiteP256
	default:
		return nil, ErrUnknownSuite
	}
	mode := oprf.BaseMode
	if verifiable {
		mode = oprf.VerifiableMode
	}
	ctx := fmt.Sprintf("OPRFV1-%c-%s", mode, s.Identifier())
	return &Suite{
		oprf:       s,
		g:          s.Group(),
		hash:       s.Hash(),
		verifiable: verifiable,
		h2gDST:     []byte("HashToGroup-" + ctx),
		dleqDST:    []byte(ctx),
		countCtx:   []byte("psimatch count v1 " + ctx),
		weier:      s.Identifier() == oprf.SuiteP256.Identifier(),
	}, nil
}

// Name returns the RFC 9497 identifier, e.g. "ristretto255-SHA512".
func (s *Suite) Name() string { return s.oprf.Identifier() }

// Verifiable reports whether the suite runs in RFC 9497 verifiable mode.
func (s *Suite) Verifiable() bool { return s.verifiable }

// Mode returns the RFC 9497 mode byte (0 base, 1 verifiable).
func (s *Suite) Mode() oprf.Mode {
	if s.verifiable {
		return oprf.VerifiableMode
	}
	return oprf.BaseMode
}

// ElementSize is the length of an encoded (compressed) group element.
func (s *Suite) ElementSize() int { return int(s.g.Params().CompressedElementLength) }

// ScalarSize is the length of an encoded scalar.
func (s *Suite) ScalarSize() int { return int(s.g.Params().ScalarLength) }

// ProofSize is the length of an encoded DLEQ proof (two scalars).
func (s *Suite) ProofSize() int { return 2 * s.ScalarSize() }

// OPRF returns the circl suite.
func (s *Suite) OPRF() oprf.Suite { return s.oprf }

// Group returns the circl group.
func (s *Suite) Group() group.Group { return s.g }

// OutputSize is the length of an untruncated output (the suite's hash size).
func (s *Suite) OutputSize() int { return s.hash.Size() }

// hashToGroup maps a PRF input to a group element as RFC 9497 does.
func (s *Suite) hashToGroup(input []byte) group.Element {
	return s.g.HashToElement(input, s.h2gDST)
}

// finalize is the RFC 9497 Finalize hash of an input and its unblinded,
// encoded element: Hash(I2OSP(len(input),2) || input || I2OSP(len(e),2) || e || "Finalize").
func (s *Suite) finalize(h hashState, input, element []byte) []byte {
	h.Reset()
	var l [2]byte
	l[0], l[1] = byte(len(input)>>8), byte(len(input))
	h.Write(l[:])
	h.Write(input)
	l[0], l[1] = byte(len(element)>>8), byte(len(element))
	h.Write(l[:])
	h.Write(element)
	h.Write([]byte("Finalize"))
	return h.Sum(h.buf[:0])
}

// countOutput is the count-mode output of an unblinded, encoded element:
// Hash(I2OSP(len(ctx),2) || ctx || element). It does not depend on the input,
// so the client can compute it for shuffled elements.
func (s *Suite) countOutput(h hashState, element []byte) []byte {
	h.Reset()
	var l [2]byte
	l[0], l[1] = byte(len(s.countCtx)>>8), byte(len(s.countCtx))
	h.Write(l[:])
	h.Write(s.countCtx)
	h.Write(element)
	return h.Sum(h.buf[:0])
}
