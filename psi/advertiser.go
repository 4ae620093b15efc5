package psi

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dleq"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// Errors of the advertiser side.
var (
	ErrEvaluationCount = errors.New("psi: the server returned a different number of elements than were sent")
	ErrProof           = errors.New("psi: the server's proof does not verify: it did not use the key it published")
	ErrProofMissing    = errors.New("psi: verifiable mode but the server sent no proofs")
	ErrNotBlinded      = errors.New("psi: Finalize called before Blind")
)

// blindInputs hashes each input to the group and multiplies it by its blind,
// writing the encoded blinded elements. blind(i) returns the blind of input i.
func (s *Suite) blindInputs(n int, input func(i int) []byte, blind func(i int) group.Scalar) ([]byte, error) {
	if n == 0 {
		return nil, ErrEmptyBatch
	}
	size := s.ElementSize()
	out := make([]byte, n*size)
	err := parallel(n, chunkSize, func(lo, hi int) error {
		e := s.g.NewElement()
		for i := lo; i < hi; i++ {
			e.Mul(s.hashToGroup(input(i)), blind(i))
			if err := putElement(out[i*size:(i+1)*size], e); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// CountBlinder is the advertiser's side of one count-mode batch: a single
// blind r for the whole batch, so the platform can shuffle the answers and
// the advertiser still unblinds each of them (DH-PSI cardinality).
type CountBlinder struct {
	suite *Suite
	r     group.Scalar
	n     int
}

// NewCountBlinder draws a fresh blind. Use one per batch.
func NewCountBlinder(s *Suite) *CountBlinder {
	return &CountBlinder{suite: s, r: s.g.RandomNonZeroScalar(rand.Reader)}
}

// Blind returns the encoded blinded elements r·H(input), in input order.
func (b *CountBlinder) Blind(inputs []ident.Input) ([]byte, error) {
	b.n = len(inputs)
	return b.suite.blindInputs(len(inputs), func(i int) []byte { return inputs[i][:] }, func(int) group.Scalar { return b.r })
}

// Finalize unblinds the evaluated elements (in the platform's shuffled
// order) and returns their count-mode outputs, OutputSize bytes each,
// concatenated. Each evaluated element is checked; the count must equal the
// number blinded. A count-mode answer carries no proofs.
func (b *CountBlinder) Finalize(ev *Evaluation) ([]byte, error) {
	s := b.suite
	n, err := b.checkAnswer(ev)
	if err != nil {
		return nil, err
	}
	evaluated := ev.Elements
	rInv := s.g.NewScalar().Inv(b.r) // the only inversion of the batch
	size, osize := s.ElementSize(), s.OutputSize()
	out := make([]byte, n*osize)
	err = parallel(n, chunkSize, func(lo, hi int) error {
		e := s.g.NewElement()
		h := s.newHash()
		for i := lo; i < hi; i++ {
			if err := s.decodeElement(e, evaluated[i*size:(i+1)*size]); err != nil {
				return &ElementError{Index: i, Err: err}
			}
			enc, err := e.Mul(e, rInv).MarshalBinaryCompress()
			if err != nil {
				return err
			}
			copy(out[i*osize:], s.countOutput(h, enc))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkAnswer checks a count-mode answer before it is unblinded: Blind was
// called, no proofs, whole elements, as many as were sent. It returns their
// number.
func (b *CountBlinder) checkAnswer(ev *Evaluation) (int, error) {
	if b.n == 0 {
		return 0, ErrNotBlinded
	}
	if len(ev.Proofs) != 0 {
		return 0, fmt.Errorf("%w: %d bytes of proofs in a count-mode answer", ErrEvaluationCount, len(ev.Proofs))
	}
	n, err := b.suite.CountElements(ev.Elements, 0)
	if err != nil {
		return 0, err
	}
	if n != b.n {
		return 0, fmt.Errorf("%w (sent %d, received %d)", ErrEvaluationCount, b.n, n)
	}
	return n, nil
}

// MembersBlinder is the advertiser's side of one members-mode batch: the
// standard RFC 9497 flow with a blind per element, so the answers stay in
// order and each output is the RFC 9497 Finalize output of its input.
type MembersBlinder struct {
	suite   *Suite
	pk      group.Element // verifiable mode only
	n       int
	input   func(i int) []byte
	blinds  []group.Scalar
	blinded []byte
}

// NewMembersBlinder returns a members-mode blinder. In verifiable mode
// publicKey is the platform's encoded epoch public key, against which every
// proof is checked; in base mode it is ignored.
func NewMembersBlinder(s *Suite, publicKey []byte) (*MembersBlinder, error) {
	b := &MembersBlinder{suite: s}
	if s.verifiable {
		b.pk = s.g.NewElement()
		if err := s.decodeElement(b.pk, publicKey); err != nil {
			return nil, fmt.Errorf("psi: the server's public key: %w", err)
		}
	}
	return b, nil
}

// Blind draws a blind per input and returns the encoded blinded elements in
// input order. The inputs are kept for Finalize.
func (b *MembersBlinder) Blind(inputs []ident.Input) ([]byte, error) {
	blinds := make([]group.Scalar, len(inputs))
	// Blinds are drawn inside the parallel loop, each just before its use.
	draw := func(i int) group.Scalar {
		blinds[i] = b.suite.g.RandomNonZeroScalar(rand.Reader)
		return blinds[i]
	}
	b.n, b.input, b.blinds = len(inputs), func(i int) []byte { return inputs[i][:] }, blinds
	var err error
	b.blinded, err = b.suite.blindInputs(len(inputs), b.input, draw)
	return b.blinded, err
}

// blindWith blinds n inputs with the given blinds (RFC 9497 test vectors
// fix them; Blind draws them at random).
func (b *MembersBlinder) blindWith(n int, input func(i int) []byte, blinds []group.Scalar) ([]byte, error) {
	b.n, b.input, b.blinds = n, input, blinds
	var err error
	b.blinded, err = b.suite.blindInputs(n, input, func(i int) group.Scalar { return blinds[i] })
	return b.blinded, err
}

// Finalize checks the evaluation (and in verifiable mode its proofs), unblinds
// it with one batch inversion per worker chunk, and returns the RFC 9497
// outputs, OutputSize bytes each, in input order.
func (b *MembersBlinder) Finalize(ev *Evaluation) ([]byte, error) {
	s := b.suite
	if b.blinded == nil {
		return nil, ErrNotBlinded
	}
	n, err := s.CountElements(ev.Elements, 0)
	if err != nil {
		return nil, err
	}
	if n != b.n {
		return nil, fmt.Errorf("%w (sent %d, received %d)", ErrEvaluationCount, b.n, n)
	}
	chunk := chunkSize
	if s.verifiable {
		chunk = ProofChunk
		if want := ((n + ProofChunk - 1) / ProofChunk) * s.ProofSize(); len(ev.Proofs) != want {
			if len(ev.Proofs) == 0 {
				return nil, ErrProofMissing
			}
			return nil, fmt.Errorf("%w (proofs are %d bytes, want %d)", ErrProof, len(ev.Proofs), want)
		}
	}
	size, osize := s.ElementSize(), s.OutputSize()
	out := make([]byte, n*osize)
	err = parallel(n, chunk, func(lo, hi int) error {
		evs := make([]group.Element, hi-lo)
		for i := lo; i < hi; i++ {
			e := s.g.NewElement()
			if err := s.decodeElement(e, ev.Elements[i*size:(i+1)*size]); err != nil {
				return &ElementError{Index: i, Err: err}
			}
			evs[i-lo] = e
		}
		if s.verifiable {
			if err := b.verify(lo, hi, evs, ev.Proofs[(lo/ProofChunk)*s.ProofSize():][:s.ProofSize()]); err != nil {
				return err
			}
		}
		invs := batchInvert(s.g, b.blinds[lo:hi])
		h := s.newHash()
		u := s.g.NewElement()
		for i := lo; i < hi; i++ {
			enc, err := u.Mul(evs[i-lo], invs[i-lo]).MarshalBinaryCompress()
			if err != nil {
				return err
			}
			copy(out[i*osize:], s.finalize(h, b.input(i), enc))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// verify checks the DLEQ batch proof of elements [lo, hi).
func (b *MembersBlinder) verify(lo, hi int, evs []group.Element, proofBytes []byte) error {
	s := b.suite
	size := s.ElementSize()
	bl := make([]group.Element, hi-lo)
	for i := lo; i < hi; i++ {
		e := s.g.NewElement()
		if err := e.UnmarshalBinary(b.blinded[i*size : (i+1)*size]); err != nil {
			return err // our own encoding: cannot happen
		}
		bl[i-lo] = e
	}
	proof := new(dleq.Proof)
	if err := proof.UnmarshalBinary(s.g, proofBytes); err != nil {
		return fmt.Errorf("%w (elements %d to %d: malformed proof)", ErrProof, lo, hi-1)
	}
	v := dleq.Verifier{Params: dleq.Params{G: s.g, H: s.hash, DST: s.dleqDST}}
	if !v.VerifyBatchRFC9497(b.pk.Copy(), bl, evs, proof) { // a copy: see Key.Evaluate
		return fmt.Errorf("%w (elements %d to %d)", ErrProof, lo, hi-1)
	}
	return nil
}

// batchInvert returns the inverses of xs with one field inversion
// (Montgomery's trick): three multiplications per element instead of an
// inversion each. Every x is non-zero (blinds are drawn non-zero).
func batchInvert(g group.Group, xs []group.Scalar) []group.Scalar {
	n := len(xs)
	if n == 0 {
		return nil
	}
	prefix := make([]group.Scalar, n) // prefix[i] = x0·…·xi
	prefix[0] = xs[0].Copy()
	for i := 1; i < n; i++ {
		prefix[i] = g.NewScalar().Mul(prefix[i-1], xs[i])
	}
	acc := g.NewScalar().Inv(prefix[n-1]) // (x0·…·x(n-1))^-1
	out := make([]group.Scalar, n)
	for i := n - 1; i > 0; i-- {
		out[i] = g.NewScalar().Mul(acc, prefix[i-1])
		acc.Mul(acc, xs[i])
	}
	out[0] = acc
	return out
}

// Lookup reports for each output (OutputSize bytes each, as Finalize returns
// them) whether it is in the platform's set, truncating each to the set's
// bit length first. It merge-joins against one streaming decode of the set.
func (s *Suite) Lookup(set *setcodec.Set, outputs []byte) []bool {
	osize := s.OutputSize()
	q := make([]setcodec.Value, len(outputs)/osize)
	for i := range q {
		q[i] = setcodec.Truncate(outputs[i*osize:(i+1)*osize], set.Bits())
	}
	return set.Match(q)
}
