package psi

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
	"github.com/psimatch/psimatch/psi/ident"
)

var testSeed = bytes.Repeat([]byte{7}, SeedSize)

func testKey(t testing.TB, suite string, verifiable bool) *Key {
	t.Helper()
	s, err := SuiteByName(suite, verifiable)
	if err != nil {
		t.Fatal(err)
	}
	k, err := DeriveEpochKey(s, testSeed, "2026-11-30")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomInputs(r *rand.Rand, n int) []ident.Input {
	in := make([]ident.Input, n)
	for i := range in {
		in[i] = ident.FromNormalized(ident.Kinds[r.IntN(2)], fmt.Sprintf("user%d-%d@example.com", r.Uint64(), i))
	}
	return in
}

// TestEvaluateOwnEqualsFullEvaluate: the platform's members-mode outputs are
// circl's RFC 9497 FullEvaluate outputs under the same key.
func TestEvaluateOwnEqualsFullEvaluate(t *testing.T) {
	for _, suite := range []string{"ristretto255", "p256"} {
		for _, verifiable := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/verifiable=%v", suite, verifiable), func(t *testing.T) {
				k := testKey(t, suite, verifiable)
				inputs := randomInputs(rand.New(rand.NewPCG(1, 2)), 1500)
				count := make([]Prefix, len(inputs))
				members := make([]Prefix, len(inputs))
				if err := k.evaluateOwn(inputs, count, members); err != nil {
					t.Fatal(err)
				}
				var full func([]byte) ([]byte, error)
				if verifiable {
					full = oprf.NewVerifiableServer(k.suite.OPRF(), k.OPRFKey()).FullEvaluate
				} else {
					full = oprf.NewServer(k.suite.OPRF(), k.OPRFKey()).FullEvaluate
				}
				for i, in := range inputs {
					want, err := full(in[:])
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(members[i][:], want[:PrefixSize]) {
						t.Fatalf("input %d: members output differs from FullEvaluate", i)
					}
				}
			})
		}
	}
}

// platformSets evaluates the platform's own inputs once and returns its
// count-mode and members-mode output prefixes as sets.
func platformSets(t *testing.T, k *Key, own []ident.Input) (count, members map[Prefix]bool) {
	t.Helper()
	c := make([]Prefix, len(own))
	m := make([]Prefix, len(own))
	if err := k.evaluateOwn(own, c, m); err != nil {
		t.Fatal(err)
	}
	count, members = map[Prefix]bool{}, map[Prefix]bool{}
	for i := range own {
		count[c[i]], members[m[i]] = true, true
	}
	return count, members
}

// advertiserOutputs runs the advertiser's side of one batch against k (the
// platform's per-session evaluation in between) and returns its outputs.
func advertiserOutputs(t *testing.T, k *Key, adv []ident.Input, members bool) []byte {
	t.Helper()
	if members {
		b, err := NewMembersBlinder(k.suite, k.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		blinded, err := b.Blind(adv)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := k.Evaluate(blinded, ModeMembers, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := b.Finalize(ev)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	b := NewCountBlinder(k.suite)
	blinded, err := b.Blind(adv)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := k.Evaluate(blinded, ModeCount, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Proofs != nil {
		t.Fatal("count mode returned proofs")
	}
	out, err := b.Finalize(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// matchInProcess returns how many of the advertiser's inputs are found in
// the platform's set by the real blind / evaluate / finalize path.
func matchInProcess(t *testing.T, k *Key, set map[Prefix]bool, adv []ident.Input, members bool) int {
	t.Helper()
	if len(adv) == 0 {
		return 0
	}
	out := advertiserOutputs(t, k, adv, members)
	osize := k.suite.OutputSize()
	matched := 0
	for i := 0; i < len(out); i += osize {
		if set[Prefix(out[i:i+PrefixSize])] {
			matched++
		}
	}
	return matched
}

// TestMatchEqualsIntersection: count and members results equal a plain set
// intersection on random sets of sizes 0, 1, 1000 and 100,000 with overlaps
// of 0%, 50% and 100%.
func TestMatchEqualsIntersection(t *testing.T) {
	sizes := []int{0, 1, 1000, 100000}
	if testing.Short() {
		sizes = sizes[:3]
	}
	r := rand.New(rand.NewPCG(3, 4))
	k := testKey(t, "ristretto255", false)
	for _, n := range sizes {
		own := randomInputs(r, n)
		countSet, membersSet := platformSets(t, k, own)
		for _, overlap := range []float64{0, 0.5, 1} {
			for _, members := range []bool{false, true} {
				t.Run(fmt.Sprintf("n=%d/overlap=%v/members=%v", n, overlap, members), func(t *testing.T) {
					if n >= 100000 && members && overlap != 0.5 {
						t.Skip("at this size the 50% case covers members mode (time)")
					}
					want := int(float64(n) * overlap)
					adv := append(append([]ident.Input{}, own[:want]...), randomInputs(r, n-want)...)
					r.Shuffle(len(adv), func(i, j int) { adv[i], adv[j] = adv[j], adv[i] })
					set := countSet
					if members {
						set = membersSet
					}
					if got := matchInProcess(t, k, set, adv, members); got != want {
						t.Fatalf("matched %d, want %d", got, want)
					}
				})
			}
		}
	}
}

func TestMatchP256AndVerifiable(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	own := randomInputs(r, 400)
	adv := append(append([]ident.Input{}, own[:123]...), randomInputs(r, 200)...)
	for _, suite := range []string{"ristretto255", "p256"} {
		for _, verifiable := range []bool{false, true} {
			k := testKey(t, suite, verifiable)
			countSet, membersSet := platformSets(t, k, own)
			for _, members := range []bool{false, true} {
				set := countSet
				if members {
					set = membersSet
				}
				if got := matchInProcess(t, k, set, adv, members); got != 123 {
					t.Errorf("%s verifiable=%v members=%v: matched %d, want 123", suite, verifiable, members, got)
				}
			}
		}
	}
}

// TestEvaluateRefusesMalformed: wrong lengths, non-canonical encodings and
// the identity are refused with the element's index, on both suites.
func TestEvaluateRefusesMalformed(t *testing.T) {
	for _, suite := range []string{"ristretto255", "p256"} {
		k := testKey(t, suite, false)
		size := k.suite.ElementSize()
		good, err := NewCountBlinder(k.suite).Blind(randomInputs(rand.New(rand.NewPCG(1, 1)), 3))
		if err != nil {
			t.Fatal(err)
		}
		identity := make([]byte, size)
		// ristretto255's identity has a 32-byte encoding; P-256's only
		// encoding is one zero byte, so a 33-byte frame of it is malformed.
		identityErr := ErrElementIdentity
		nonCanonical := bytes.Repeat([]byte{0xff}, size)
		if suite == "p256" {
			identity = append([]byte{0}, make([]byte, size-1)...)
			identityErr = ErrElementEncoding
			nonCanonical[0] = 0x02 // x = 2^256-1 > p
		} else {
			// p = 2^255-19 little-endian: the canonical encoding of 0 plus p.
			nonCanonical = append([]byte{0xed}, bytes.Repeat([]byte{0xff}, 30)...)
			nonCanonical = append(nonCanonical, 0x7f)
		}
		cases := []struct {
			name  string
			frame []byte
			want  error
			index int
		}{
			{"empty", nil, ErrEmptyBatch, -1},
			{"short", good[:size-1], ErrElementLength, -1},
			{"identity", append(append([]byte{}, good[:size]...), identity...), identityErr, 1},
			{"non-canonical", append(append([]byte{}, good[:2*size]...), nonCanonical...), ErrElementEncoding, 2},
		}
		if suite == "p256" {
			cases = append(cases, struct {
				name  string
				frame []byte
				want  error
				index int
			}{"uncompressed-prefix", append([]byte{0x04}, good[1:size]...), ErrElementEncoding, 0})
		}
		for _, c := range cases {
			t.Run(suite+"/"+c.name, func(t *testing.T) {
				for _, mode := range Modes {
					_, err := k.Evaluate(c.frame, mode, 0)
					if !errors.Is(err, c.want) {
						t.Fatalf("got %v, want %v", err, c.want)
					}
					var ee *ElementError
					if c.index >= 0 && (!errors.As(err, &ee) || ee.Index != c.index) {
						t.Fatalf("got %v, want element %d", err, c.index)
					}
				}
			})
		}
		if _, err := k.Evaluate(good, ModeMembers, 2); !errors.Is(err, ErrBatchTooLarge) {
			t.Fatalf("limit: got %v", err)
		}
		// The advertiser checks what it receives too.
		b := NewCountBlinder(k.suite)
		if _, err := b.Blind(randomInputs(rand.New(rand.NewPCG(1, 1)), 2)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Finalize(&Evaluation{Elements: append(append([]byte{}, good[:size]...), identity...)}); !errors.Is(err, identityErr) {
			t.Fatalf("client identity: got %v", err)
		}
		if _, err := b.Finalize(&Evaluation{Elements: good}); !errors.Is(err, ErrEvaluationCount) {
			t.Fatalf("client count: got %v", err)
		}
	}
}

// TestVerifiableRejectsWrongKey: an evaluation under another key, or with a
// tampered proof, fails verification in members mode.
func TestVerifiableRejectsWrongKey(t *testing.T) {
	k := testKey(t, "ristretto255", true)
	other, err := DeriveEpochKey(k.suite, bytes.Repeat([]byte{9}, SeedSize), "x")
	if err != nil {
		t.Fatal(err)
	}
	inputs := randomInputs(rand.New(rand.NewPCG(8, 8)), ProofChunk+10)
	b, _ := NewMembersBlinder(k.suite, k.PublicKey())
	blinded, _ := b.Blind(inputs)
	ev, err := other.Evaluate(blinded, ModeMembers, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finalize(ev); !errors.Is(err, ErrProof) {
		t.Fatalf("wrong key: got %v", err)
	}
	ev, _ = k.Evaluate(blinded, ModeMembers, 0)
	if len(ev.Proofs) != 2*k.suite.ProofSize() {
		t.Fatalf("proofs: %d bytes", len(ev.Proofs))
	}
	ev.Proofs[len(ev.Proofs)-1] ^= 1
	if _, err := b.Finalize(ev); !errors.Is(err, ErrProof) {
		t.Fatalf("tampered proof: got %v", err)
	}
	ev.Proofs = nil
	if _, err := b.Finalize(ev); !errors.Is(err, ErrProofMissing) {
		t.Fatalf("missing proof: got %v", err)
	}
}

func TestBatchInvert(t *testing.T) {
	s, _ := SuiteByName("ristretto255", false)
	for _, n := range []int{1, 2, 7, 100} {
		xs := make([]group.Scalar, n)
		for i := range xs {
			xs[i] = s.g.RandomNonZeroScalar(crand.Reader)
		}
		inv := batchInvert(s.g, xs)
		for i := range xs {
			if !s.g.NewScalar().Mul(xs[i], inv[i]).IsEqual(s.g.NewScalar().SetUint64(1)) {
				t.Fatalf("n=%d: x[%d]·inv != 1", n, i)
			}
		}
	}
}

// evaluateOwn (a test helper: BuildSet does this work from the policy
// filter's stream) computes, for each of the platform's own inputs, the prefixes
// of its count-mode output H(ctx || k·H(x)) and of its members-mode output
// (the RFC 9497 output, equal to circl's FullEvaluate), on all cores. This is
// the once-per-epoch work: one hash to group and one scalar multiplication
// per identifier.
func (k *Key) evaluateOwn(inputs []ident.Input, count, members []Prefix) error {
	return parallel(len(inputs), chunkSize, func(lo, hi int) error {
		return k.evaluateRange(inputs[lo:hi], count[lo:hi], members[lo:hi])
	})
}
