package setcodec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEncoderMatchesEncode feeds sorted values to an Encoder in runs of
// random length, with repeats inside and across runs, and wants exactly
// Encode's bytes.
func TestEncoderMatchesEncode(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 1))
	for _, L := range []uint{8, 41, 64, 65, 100, 128} {
		for _, n := range []int{0, 1, 2, 300, 5000} {
			vs := randValues(rng, n, L)
			if n > 10 { // plant repeats, some of them at run boundaries
				for i := 0; i < n/10; i++ {
					vs[rng.IntN(n)] = vs[rng.IntN(n)]
				}
			}
			want, err := Encode(slices.Clone(vs), L)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(vs, Value.Compare)
			distinct := uint64(len(slices.Compact(slices.Clone(vs))))
			e, err := NewEncoder(L, distinct)
			if err != nil {
				t.Fatal(err)
			}
			for rest := vs; len(rest) > 0; {
				m := min(len(rest), 1+rng.IntN(64))
				if err := e.Add(rest[:m]); err != nil {
					t.Fatal(err)
				}
				rest = rest[m:]
			}
			if e.Len() != distinct {
				t.Fatalf("L=%d n=%d: Len %d, want %d", L, n, e.Len(), distinct)
			}
			got, err := e.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("L=%d n=%d: Encoder output differs from Encode", L, n)
			}
			if _, err := Open(got, uint64(n)); err != nil {
				t.Fatalf("L=%d n=%d: %v", L, n, err)
			}
		}
	}
}

func TestEncoderRejects(t *testing.T) {
	e, err := NewEncoder(41, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Add([]Value{{0, 5}, {0, 3}}); err == nil {
		t.Fatal("a decreasing run was accepted")
	}
	e, _ = NewEncoder(41, 2)
	if err := e.Add([]Value{{0, 1 << 41}}); !errors.Is(err, ErrValueRange) {
		t.Fatalf("a value of 42 bits: %v, want ErrValueRange", err)
	}
	// A count far from the one announced changes the Rice parameter.
	e, _ = NewEncoder(64, 1<<20)
	if err := e.Add([]Value{{0, 1}, {0, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Finish(); !errors.Is(err, ErrEncoderCount) {
		t.Fatalf("Finish: %v, want ErrEncoderCount", err)
	}
	if _, err := NewEncoder(0, 1); !errors.Is(err, ErrBits) {
		t.Fatalf("NewEncoder(0, 1): %v, want ErrBits", err)
	}
}
