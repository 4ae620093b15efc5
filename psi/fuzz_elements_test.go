package psi

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
)

// The element frames are what each side receives from the other: the
// platform's Key.Evaluate reads the advertiser's blinded elements, the
// advertiser's Finalize reads the platform's evaluated elements and proofs.
// Each must refuse anything but whole, canonical, non-identity elements
// (and, in verifiable mode, proofs that verify), and never panic.

func fuzzSuites(tb testing.TB) []*Suite {
	var out []*Suite
	for _, name := range []string{"ristretto255", "p256"} {
		for _, v := range []bool{false, true} {
			s, err := SuiteByName(name, v)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, s)
		}
	}
	return out
}

func fuzzInputs(n int) []ident.Input {
	in := make([]ident.Input, n)
	for i := range in {
		in[i][0] = byte(ident.Email)
		copy(in[i][1:], fmt.Sprintf("fuzz input %d", i))
	}
	return in
}

// FuzzKeyEvaluate: Evaluate on arbitrary bytes either refuses them with a
// psi error or evaluates exactly the canonical elements it was given.
func FuzzKeyEvaluate(f *testing.F) {
	suites := fuzzSuites(f)
	keys := make([]*Key, len(suites))
	for i, s := range suites {
		k, err := DeriveEpochKey(s, make([]byte, SeedSize), "fuzz")
		if err != nil {
			f.Fatal(err)
		}
		keys[i] = k
	}
	for i, s := range suites {
		good, _ := NewCountBlinder(s).Blind(fuzzInputs(3))
		size := s.ElementSize()
		f.Add(uint8(i), false, good)
		f.Add(uint8(i), true, good)
		f.Add(uint8(i), false, good[:size])
		f.Add(uint8(i), false, good[:len(good)-1])
		f.Add(uint8(i), false, make([]byte, size))                    // zeros: the identity (ristretto255) or invalid (P-256)
		f.Add(uint8(i), false, bytes.Repeat([]byte{0xff}, size))      // above the field prime
		f.Add(uint8(i), false, append([]byte{0x04}, good[1:size]...)) // a wrong prefix
		f.Add(uint8(i), false, []byte{0})
		f.Add(uint8(i), false, []byte{})
	}
	f.Fuzz(func(t *testing.T, which uint8, shuffle bool, frames []byte) {
		s, k := suites[int(which)%len(suites)], keys[int(which)%len(suites)]
		ev, err := k.Evaluate(frames, map[bool]Mode{true: ModeCount, false: ModeMembers}[shuffle], 64)
		if err != nil {
			var ee *ElementError
			if !errors.Is(err, ErrElementLength) && !errors.Is(err, ErrEmptyBatch) && !errors.Is(err, ErrBatchTooLarge) && !errors.As(err, &ee) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if ev != nil {
				t.Fatal("an evaluation returned with an error")
			}
			return
		}
		size := s.ElementSize()
		n := len(frames) / size
		if len(frames)%size != 0 || n == 0 || len(ev.Elements) != len(frames) {
			t.Fatalf("%d bytes in, %d out", len(frames), len(ev.Elements))
		}
		// Every accepted frame is canonical and not the identity: decode
		// then encode gives it back.
		e := s.g.NewElement()
		for i := range n {
			fr := frames[i*size : (i+1)*size]
			if err := s.decodeElement(e, fr); err != nil {
				t.Fatalf("element %d accepted but does not decode: %v", i, err)
			}
			again, _ := e.MarshalBinaryCompress()
			if !bytes.Equal(again, fr) {
				t.Fatalf("element %d accepted but not canonical: %x re-encodes as %x", i, fr, again)
			}
			if err := s.decodeElement(e, ev.Elements[i*size:(i+1)*size]); err != nil {
				t.Fatalf("evaluated element %d is invalid: %v", i, err)
			}
		}
		wantProofs := 0
		if s.verifiable && !shuffle {
			wantProofs = (n + ProofChunk - 1) / ProofChunk * s.ProofSize()
		}
		if len(ev.Proofs) != wantProofs {
			t.Fatalf("%d proof bytes, want %d", len(ev.Proofs), wantProofs)
		}
	})
}

// FuzzFinalize: the advertiser's Finalize on arbitrary evaluated elements
// and proofs either refuses them or, in verifiable mode, accepts exactly the
// honest evaluation (a proof cannot be forged).
func FuzzFinalize(f *testing.F) {
	suites := fuzzSuites(f)
	const n = 3
	type state struct {
		key     *Key
		honest  *Evaluation // members-mode evaluation of blinded
		blinded []byte
		members *MembersBlinder
	}
	states := make([]state, len(suites))
	for i, s := range suites {
		k, err := DeriveEpochKey(s, make([]byte, SeedSize), "fuzz")
		if err != nil {
			f.Fatal(err)
		}
		mb, err := NewMembersBlinder(s, k.PublicKey())
		if err != nil {
			f.Fatal(err)
		}
		bl, err := mb.Blind(fuzzInputs(n))
		if err != nil {
			f.Fatal(err)
		}
		ev, err := k.Evaluate(bl, ModeMembers, 0)
		if err != nil {
			f.Fatal(err)
		}
		states[i] = state{k, ev, bl, mb}
		size := s.ElementSize()
		f.Add(uint8(i), ev.Elements, ev.Proofs)
		f.Add(uint8(i), ev.Elements[:2*size], ev.Proofs)
		f.Add(uint8(i), append(bytes.Clone(ev.Elements), 0), ev.Proofs)
		f.Add(uint8(i), bl, ev.Proofs)
		f.Add(uint8(i), ev.Elements, []byte{})
		f.Add(uint8(i), make([]byte, n*size), make([]byte, len(ev.Proofs)))
		swapped := bytes.Clone(ev.Elements)
		copy(swapped, ev.Elements[size:2*size])
		copy(swapped[size:], ev.Elements[:size])
		f.Add(uint8(i), swapped, ev.Proofs)
	}
	f.Fuzz(func(t *testing.T, which uint8, elements, proofs []byte) {
		i := int(which) % len(suites)
		s, st := suites[i], states[i]
		// Count mode: one blind for the batch; no proofs.
		cb := NewCountBlinder(s)
		if _, err := cb.Blind(fuzzInputs(n)); err != nil {
			t.Fatal(err)
		}
		out, err := cb.Finalize(&Evaluation{Elements: elements})
		if err == nil {
			if len(elements) != n*s.ElementSize() || len(out) != n*s.OutputSize() {
				t.Fatalf("count: %d bytes in, %d out", len(elements), len(out))
			}
		} else if out != nil {
			t.Fatal("count: outputs returned with an error")
		}
		// Members mode, against the blinds the honest evaluation answered.
		out, err = st.members.Finalize(&Evaluation{Elements: elements, Proofs: proofs})
		if err != nil {
			if out != nil {
				t.Fatal("members: outputs returned with an error")
			}
			return
		}
		if len(out) != n*s.OutputSize() {
			t.Fatalf("members: %d bytes out", len(out))
		}
		if s.verifiable && !bytes.Equal(elements, st.honest.Elements) {
			t.Fatalf("verifiable: a dishonest evaluation passed its proof")
		}
	})
}
