package bench

import (
	"encoding/binary"
	"testing"

	"github.com/cloudflare/circl/oprf"
	"github.com/psimatch/psimatch/psi"
)

// TestFixtureMatch checks the benchmarks' fixtures and in-process sessions:
// count mode, members mode and the hashed baseline all find exactly the
// planted overlap, and none of the planted security-only identifiers.
func TestFixtureMatch(t *testing.T) {
	f, err := newFixture(2000, 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.eligible) != f.truth.Eligible {
		t.Fatalf("%d eligible identifiers, synth planted %d", len(f.eligible), f.truth.Eligible)
	}
	if len(f.customers) != f.truth.AdvertiserIDs {
		t.Fatalf("%d customer identifiers, synth planted %d", len(f.customers), f.truth.AdvertiserIDs)
	}
	if f.truth.Overlap == 0 || f.truth.SecurityOnly == 0 {
		t.Fatalf("fixture plants no overlap or no security-only identifiers: %+v", f.truth)
	}
	if got := newHashedPlatform(f.eligible).match(f.customers); got != f.truth.Overlap {
		t.Errorf("hashed baseline: %d matches, want the planted %d", got, f.truth.Overlap)
	}
	for _, name := range []string{"ristretto255", "p256"} {
		for _, verifiable := range []bool{false, true} {
			if verifiable && (testing.Short() || name == "p256") {
				continue
			}
			s, err := psi.SuiteByName(name, verifiable)
			if err != nil {
				t.Fatal(err)
			}
			p, err := platformFor(s, f)
			if err != nil {
				t.Fatal(err)
			}
			if p.set.Size != f.truth.Eligible {
				t.Errorf("%s: set of %d, want %d", s.Name(), p.set.Size, f.truth.Eligible)
			}
			n, err := countSession(p, f.customers)
			if err != nil {
				t.Fatal(err)
			}
			if n != f.truth.Overlap {
				t.Errorf("%s count mode: %d matches, want the planted %d", s.Name(), n, f.truth.Overlap)
			}
			found, err := membersSession(p, f.customers)
			if err != nil {
				t.Fatal(err)
			}
			n = 0
			for _, ok := range found {
				if ok {
					n++
				}
			}
			if n != f.truth.Overlap {
				t.Errorf("%s members mode (verifiable %v): %d matches, want the planted %d", s.Name(), verifiable, n, f.truth.Overlap)
			}
		}
	}
}

// TestFloorIsTheOPRF checks that the floor's bare group operations are the
// ones RFC 9497 does: hashing to the group with the floor's DST and
// multiplying by the key gives circl's FullEvaluate output.
func TestFloorIsTheOPRF(t *testing.T) {
	for _, name := range []string{"ristretto255", "p256"} {
		s, err := psi.SuiteByName(name, false)
		if err != nil {
			t.Fatal(err)
		}
		key, err := psi.DeriveEpochKey(s, benchSeed, "floor")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := key.OPRFKey().MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		ops := newGroupOps(s)
		if err := ops.k.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		in := randomInputs(1)[0]
		enc, err := ops.g.HashToElement(in[:], ops.dst).Mul(ops.g.HashToElement(in[:], ops.dst), ops.k).MarshalBinaryCompress()
		if err != nil {
			t.Fatal(err)
		}
		h := s.OPRF().Hash().New()
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(in))))
		h.Write(in[:])
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(enc))))
		h.Write(enc)
		h.Write([]byte("Finalize"))
		want, err := oprf.NewServer(s.OPRF(), key.OPRFKey()).FullEvaluate(in[:])
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Sum(nil); string(got) != string(want) {
			t.Errorf("%s: the floor's hash to group and multiplication do not give the RFC 9497 output", s.Name())
		}
	}
}
