package psi

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
)

// SeedSize is the length of the platform's master seed.
const SeedSize = 32

// ErrSeedSize is returned for a master seed that is not SeedSize bytes.
var ErrSeedSize = errors.New("psi: master seed must be 32 bytes")

// Key is the platform's OPRF key for one epoch. It is safe for concurrent use.
type Key struct {
	suite *Suite
	epoch string
	sk    *oprf.PrivateKey
	k     group.Scalar
	pk    group.Element // never marshalled in place: P-256's encoder writes to its element
	pkEnc []byte        // the encoded public key, made once
}

// DeriveEpochKey derives the key of epoch from the master seed:
// oprf.DeriveKey(suite, mode, seed, "psimatch epoch "+epoch).
func DeriveEpochKey(s *Suite, seed []byte, epoch string) (*Key, error) {
	if len(seed) != SeedSize {
		return nil, ErrSeedSize
	}
	return deriveKey(s, seed, "psimatch epoch "+epoch, epoch, "the epoch key")
}

// deriveKey is every key derivation of psimatch: RFC 9497 DeriveKeyPair
// (circl's oprf.DeriveKey) from ikm and info, the scalar taken from its
// encoding (which is wiped), named epoch. what names the key in errors.
func deriveKey(s *Suite, ikm []byte, info, epoch, what string) (*Key, error) {
	sk, err := oprf.DeriveKey(s.oprf, s.Mode(), ikm, []byte(info))
	if err != nil {
		return nil, fmt.Errorf("psi: deriving %s: %w", what, err)
	}
	raw, err := sk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	k := s.g.NewScalar()
	err = k.UnmarshalBinary(raw)
	clear(raw)
	if err != nil {
		return nil, err
	}
	return newKey(s, epoch, sk, k)
}

func newKey(s *Suite, epoch string, sk *oprf.PrivateKey, k group.Scalar) (*Key, error) {
	pk := s.g.NewElement().MulGen(k)
	enc, err := pk.Copy().MarshalBinaryCompress()
	if err != nil {
		return nil, err
	}
	return &Key{suite: s, epoch: epoch, sk: sk, k: k, pk: pk, pkEnc: enc}, nil
}

// Suite returns the key's suite.
func (k *Key) Suite() *Suite { return k.suite }

// Epoch returns the epoch the key was derived for.
func (k *Key) Epoch() string { return k.epoch }

// PublicKey returns the encoded public key k·G, which verifiable clients
// check proofs against.
func (k *Key) PublicKey() []byte {
	return append([]byte(nil), k.pkEnc...)
}

// OPRFKey returns the circl private key, for interoperability tests.
func (k *Key) OPRFKey() *oprf.PrivateKey { return k.sk }

// ProofChunk is the number of elements covered by one DLEQ batch proof in
// verifiable mode. Proving chunk by chunk spreads the proof work over the
// cores and keeps each batch within RFC 9497's 16-bit composite index.
const ProofChunk = 256

// Evaluation is the platform's answer to one batch of blinded elements.
type Evaluation struct {
	// Elements holds the evaluated elements, ElementSize bytes each, in the
	// order of the request (members mode) or in a random order (count mode).
	Elements []byte
	// Proofs holds, in verifiable members mode, one DLEQ batch proof
	// (ProofSize bytes) per ProofChunk consecutive elements; else nil.
	Proofs []byte
}

// Evaluate evaluates a batch of blinded elements (the concatenation of their
// encodings) under the key. Each element is checked first; the first bad one
// is reported as an *ElementError and nothing is evaluated. In a shuffled
// mode (count) the evaluated elements are returned in an order drawn from a
// CSPRNG, and no proof is made, since a DLEQ batch proof binds the order.
// Otherwise, on a verifiable suite, a proof per ProofChunk elements is made.
// limit bounds the number of elements (0 for none).
func (k *Key) Evaluate(blinded []byte, mode Mode, limit int) (*Evaluation, error) {
	if !mode.Valid() {
		return nil, ErrUnknownMode
	}
	shuffle := mode.Shuffled()
	s := k.suite
	n, err := s.CountElements(blinded, limit)
	if err != nil {
		return nil, err
	}
	size := s.ElementSize()
	out := make([]byte, n*size)
	prove := s.verifiable && !shuffle
	var proofs []byte
	if prove {
		proofs = make([]byte, ((n+ProofChunk-1)/ProofChunk)*s.ProofSize())
	}
	chunk := chunkSize
	if prove {
		chunk = ProofChunk
	}
	err = parallel(n, chunk, func(lo, hi int) error {
		var in, ev []group.Element
		if prove {
			in = make([]group.Element, 0, hi-lo)
			ev = make([]group.Element, 0, hi-lo)
		}
		e := s.g.NewElement()
		r := s.g.NewElement()
		for i := lo; i < hi; i++ {
			if err := s.decodeElement(e, blinded[i*size:(i+1)*size]); err != nil {
				return &ElementError{Index: i, Err: err}
			}
			r.Mul(e, k.k)
			if err := putElement(out[i*size:(i+1)*size], r); err != nil {
				return err
			}
			if prove {
				in = append(in, e.Copy())
				ev = append(ev, r.Copy())
			}
		}
		if !prove {
			return nil
		}
		// circl's P-256 encoder reduces its element in place, so each
		// worker proves against its own copy of the public key.
		proof, err := dleq.Prover{Params: k.dleqParams()}.ProveBatchRFC9497(k.k, k.pk.Copy(), in, ev, rand.Reader)
		if err != nil {
			return fmt.Errorf("psi: proving the evaluation: %w", err)
		}
		pb, err := proof.MarshalBinary()
		if err != nil {
			return err
		}
		copy(proofs[(lo/ProofChunk)*s.ProofSize():], pb)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if shuffle {
		shuffleFrames(out, size)
	}
	return &Evaluation{Elements: out, Proofs: proofs}, nil
}

func (k *Key) dleqParams() dleq.Params {
	return dleq.Params{G: k.suite.g, H: k.suite.hash, DST: k.suite.dleqDST}
}

// shuffleFrames permutes the fixed-size frames of buf uniformly at random,
// with ChaCha8 seeded from crypto/rand (a CSPRNG), so the order of count-mode
// answers says nothing about the order of the request.
func shuffleFrames(buf []byte, size int) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("psi: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	rng := mrand.New(mrand.NewChaCha8(seed))
	tmp := make([]byte, size)
	n := len(buf) / size
	rng.Shuffle(n, func(i, j int) {
		a, b := buf[i*size:(i+1)*size], buf[j*size:(j+1)*size]
		copy(tmp, a)
		copy(a, b)
		copy(b, tmp)
	})
}
