package psi

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/psimatch/psimatch/psi/setcodec"
)

// TestFinalizeTruncatedEqualsFinalize: for both modes, FinalizeTruncated
// gives each output of Finalize truncated, in the same order, and refuses
// what Finalize refuses (a missing element) and impossible bit lengths.
func TestFinalizeTruncatedEqualsFinalize(t *testing.T) {
	k := testKey(t, "ristretto255", false)
	in := randomInputs(rand.New(rand.NewPCG(5, 6)), 1500)
	for _, m := range []Mode{ModeCount, ModeMembers} {
		b, err := NewBlinder(k.suite, m, k.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		blinded, err := b.Blind(in)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := k.Evaluate(blinded, m, len(in))
		if err != nil {
			t.Fatal(err)
		}
		out, err := b.Finalize(ev)
		if err != nil {
			t.Fatal(err)
		}
		const bits = 81
		got, err := FinalizeTruncated(b, ev, bits)
		if err != nil {
			t.Fatal(err)
		}
		osize := k.suite.OutputSize()
		want := make([]setcodec.Value, len(in))
		for i := range want {
			want[i] = setcodec.Truncate(out[i*osize:(i+1)*osize], bits)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: the truncated outputs differ from Finalize's", m)
		}
		short := &Evaluation{Elements: ev.Elements[:len(ev.Elements)-k.suite.ElementSize()], Proofs: ev.Proofs}
		if _, err := FinalizeTruncated(b, short, bits); !errors.Is(err, ErrEvaluationCount) {
			t.Fatalf("%s: one element missing: %v, want ErrEvaluationCount", m, err)
		}
		if _, err := FinalizeTruncated(b, ev, 8*uint(osize)+1); err == nil {
			t.Fatalf("%s: %d bits from %d-byte outputs accepted", m, 8*osize+1, osize)
		}
	}
}
