package setcodec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// randValues returns n random values of L bits (possibly with repeats).
func randValues(rng *rand.Rand, n int, L uint) []Value {
	m := mask(L)
	vs := make([]Value, n)
	for i := range vs {
		vs[i] = Value{rng.Uint64() & m.Hi, rng.Uint64() & m.Lo}
	}
	return vs
}

func TestBits(t *testing.T) {
	tests := []struct {
		rows, set uint64
		want      uint
	}{
		{0, 0, 41},
		{1, 1, 41},
		{1, 2, 41},
		{2, 2, 42},
		{1 << 24, 1 << 24, 88},
		{1<<24 + 1, 1 << 24, 89},
		{1_000_000, 100_000, 40 + 20 + 17},
		{1 << 44, 1 << 44, 128},
	}
	for _, tt := range tests {
		if got := Bits(tt.rows, tt.set); got != tt.want {
			t.Errorf("Bits(%d, %d) = %d, want %d", tt.rows, tt.set, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	out := make([]byte, 32)
	for i := range out {
		out[i] = byte(0xa0 + i)
	}
	tests := []struct {
		bits uint
		want Value
	}{
		{0, Value{}},
		{1, Value{0, 1}},
		{8, Value{0, 0xa0}},
		{12, Value{0, 0xa0a}},
		{64, Value{0, 0xa0a1a2a3a4a5a6a7}},
		{65, Value{1, 0x41434547494b4d4f}},
		{88, Value{0xa0a1a2, 0xa3a4a5a6a7a8a9aa}},
		{128, Value{0xa0a1a2a3a4a5a6a7, 0xa8a9aaabacadaeaf}},
	}
	for _, tt := range tests {
		if got := Truncate(out, tt.bits); got != tt.want {
			t.Errorf("Truncate(%d) = %v, want %v", tt.bits, got, tt.want)
		}
	}
	if got := Truncate(out[:11], 88); got != (Value{0xa0a1a2, 0xa3a4a5a6a7a8a9aa}) {
		t.Errorf("Truncate of an 11-byte output to 88 bits = %v", got)
	}
}

func TestRiceParam(t *testing.T) {
	tests := []struct {
		L    uint
		n    uint64
		want uint
	}{
		{88, 0, 0},
		{88, 1, 87}, // mean gap 2^88: 2^87 = 0.5·mean
		{88, 2, 86},
		{88, 3, 86}, // mean 2^88/3: 2^86 = 0.75·mean
		{88, 1 << 24, 63},
		{88, 1<<24 + 1, 63},
		{10, 1 << 10, 0},
		{4, 16, 0},
		{128, 1, 127},
	}
	for _, tt := range tests {
		got := RiceParam(tt.L, tt.n)
		if got != tt.want {
			t.Errorf("RiceParam(%d, %d) = %d, want %d", tt.L, tt.n, got, tt.want)
		}
	}
	// Brute force: 2^k/mean is in [0.48, 0.96), or k is 0 for dense sets.
	for L := uint(1); L <= 70; L++ {
		for _, n := range []uint64{1, 2, 3, 5, 24, 25, 26, 47, 48, 49, 50, 1000, 123457} {
			if L < 64 && n > 1<<L {
				continue
			}
			k := RiceParam(L, n)
			x := float64(uint64(1)<<min(k, 63)) * float64(n) / float64(uint64(1)<<min(L, 63))
			if L > 63 {
				x /= float64(uint64(1) << (L - 63))
			}
			if k > 63 {
				x *= float64(uint64(1) << (k - 63))
			}
			if k > 0 && (x >= 0.96 || x < 0.48) {
				t.Errorf("RiceParam(%d, %d) = %d: 2^k/mean = %.3f", L, n, k, x)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, L := range []uint{1, 8, 20, 48, 64, 65, 88, 100, 128} {
		for _, n := range []int{0, 1, 2, 1000, 100000} {
			if L < 20 && n > 1000 {
				continue
			}
			vs := randValues(rng, n, L)
			want := make(map[Value]bool, n)
			for _, v := range vs {
				want[v] = true
			}
			enc, err := Encode(vs, L)
			if err != nil {
				t.Fatalf("L=%d n=%d: Encode: %v", L, n, err)
			}
			s, err := Open(enc, uint64(n))
			if err != nil {
				t.Fatalf("L=%d n=%d: Open: %v", L, n, err)
			}
			if s.Len() != uint64(len(want)) || s.Bits() != L {
				t.Fatalf("L=%d n=%d: Len %d Bits %d, want %d %d", L, n, s.Len(), s.Bits(), len(want), L)
			}
			got := s.Values()
			for i, v := range got {
				if !want[v] || i > 0 && got[i-1].Compare(v) >= 0 {
					t.Fatalf("L=%d n=%d: value %d wrong or out of order", L, n, i)
				}
			}
			if sum := sha256.Sum256(enc[:len(enc)-32]); s.Digest() != sum {
				t.Errorf("L=%d n=%d: Digest is not the SHA-256 of the rest", L, n)
			}
			// Membership: half members, half random, against a map.
			qs := append(randValues(rng, 500, L), got[:min(len(got), 500)]...)
			rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
			found := s.Match(qs)
			wantCount := 0
			for i, q := range qs {
				if found[i] != want[q] {
					t.Fatalf("L=%d n=%d: Match[%d] = %v, want %v", L, n, i, found[i], want[q])
				}
				if want[q] {
					wantCount++
				}
			}
			if c := s.Count(qs); c != wantCount {
				t.Errorf("L=%d n=%d: Count = %d, want %d", L, n, c, wantCount)
			}
			if len(got) > 0 && !s.Contains(got[len(got)/2]) {
				t.Errorf("L=%d n=%d: Contains(member) = false", L, n)
			}
			// The stream decoders agree with Open.
			checkReaders(t, enc, got)
			// Re-encoding the decoded values gives the same bytes.
			enc2, err := Encode(got, L)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Errorf("L=%d n=%d: re-encoding differs (err %v)", L, n, err)
			}
		}
	}
}

func TestDense(t *testing.T) {
	// Every value of L bits, and every second one: k is 0 and gaps are 0 or 1.
	for _, L := range []uint{1, 2, 8, 12} {
		for _, step := range []uint64{1, 2, 3} {
			var vs []Value
			for v := uint64(0); v < 1<<L; v += step {
				vs = append(vs, Value{0, v})
			}
			enc, err := Encode(vs, L)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(enc, 1<<L)
			if err != nil {
				t.Fatalf("L=%d step=%d: %v", L, step, err)
			}
			if got := s.Values(); len(got) != len(vs) || got[len(got)-1] != vs[len(vs)-1] {
				t.Errorf("L=%d step=%d: got %d values", L, step, len(got))
			}
		}
	}
	// The largest values at L=128, where base passes 2^128-1.
	top := []Value{{^uint64(0), ^uint64(0) - 1}, {^uint64(0), ^uint64(0)}, {}}
	enc, err := Encode(top, 128)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(enc, 3); err != nil || s.Len() != 3 || !s.Contains(top[1]) {
		t.Errorf("L=128 top values: %v", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Encode(nil, 0); !errors.Is(err, ErrBits) {
		t.Errorf("L=0: %v", err)
	}
	if _, err := Encode(nil, 129); !errors.Is(err, ErrBits) {
		t.Errorf("L=129: %v", err)
	}
	if _, err := Encode([]Value{{0, 1}, {0, 1 << 40}}, 40); !errors.Is(err, ErrValueRange) {
		t.Errorf("value of 41 bits at L=40: %v", err)
	}
	if _, err := Encode([]Value{{1, 0}}, 64); !errors.Is(err, ErrValueRange) {
		t.Errorf("value of 65 bits at L=64: %v", err)
	}
}

func TestSizeNearEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, L := range []uint{48, 64, 65, 88, 128} {
		for _, n := range []int{1000, 3000, 100000, 1 << 17} {
			enc, err := Encode(randValues(rng, n, L), L)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := Open(enc, uint64(n))
			per := float64(len(enc)) / float64(s.Len())
			ratio := per / EntropyBound(L, s.Len())
			t.Logf("L=%d n=%d: %.3f bytes/value, %.4f × entropy", L, s.Len(), per, ratio)
			if ratio > 1.05 {
				t.Errorf("L=%d n=%d: %.4f × entropy, want ≤ 1.05", L, n, ratio)
			}
		}
	}
}

func TestEntropyBound(t *testing.T) {
	// C(2^8, 2) = 256·255/2: log2 = 15 - 0.00565...
	if got, want := EntropyBound(8, 2)*16, 14.99435; got < want-1e-4 || got > want+1e-4 {
		t.Errorf("EntropyBound(8, 2) = %v bits in all, want %v", got, want)
	}
	// The brief's figure: about 8.3 bytes per value at 2^24 values, L=88.
	if got := EntropyBound(88, 1<<24); got < 8.17 || got > 8.19 {
		t.Errorf("EntropyBound(88, 2^24) = %v", got)
	}
}

// TestNoFalseMatch looks up 10^6 random values that are not in a set of 10^5
// values truncated to L = Bits(10^6, 10^5) = 77 bits. By the union bound the
// chance of any false match is at most 10^6·10^5·2^-77 < 2^-40, so a match
// means the truncation or the decoder is wrong.
func TestNoFalseMatch(t *testing.T) {
	const rows, size = 1_000_000, 100_000
	L := Bits(rows, size)
	rng := rand.New(rand.NewPCG(5, 6))
	hash := func(tag byte, i int) []byte {
		var b [9]byte
		b[0] = tag
		binary.BigEndian.PutUint64(b[1:], uint64(i)^rng.Uint64())
		s := sha256.Sum256(b[:])
		return s[:]
	}
	vs := make([]Value, size)
	for i := range vs {
		vs[i] = Truncate(hash('s', i), L)
	}
	enc, err := Encode(vs, L)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(enc, size)
	if err != nil {
		t.Fatal(err)
	}
	qs := make([]Value, rows)
	for i := range qs {
		qs[i] = Truncate(hash('c', i), L)
	}
	if c := s.Count(qs); c != 0 {
		t.Fatalf("%d false matches among %d lookups at L=%d", c, rows, L)
	}
	// And the set's own values all match.
	if c := s.Count(vs); c != len(vs) {
		t.Fatalf("%d of %d members matched", c, len(vs))
	}
}
