package setcodec

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// randBitmap returns a bitmap of 2^L bits, each set with probability d.
func randBitmap(rng *rand.Rand, L uint, d float64) []uint64 {
	bm := make([]uint64, BitmapWords(L))
	for v := uint64(0); v < 1<<L; v++ {
		if rng.Float64() < d {
			BitmapSet(bm, v)
		}
	}
	return bm
}

func bitmapValues(bm []uint64) []Value {
	var vs []Value
	for v := uint64(0); v < uint64(len(bm))*64; v++ {
		if BitmapHas(bm, v) {
			vs = append(vs, Value{0, v})
		}
	}
	return vs
}

// TestEncodeBitmap checks that a bitmap codes to exactly the bytes Encode
// gives for its positions, that Open accepts it and that Bitmap gives it
// back; and records the size against 2^L·H(D).
func TestEncodeBitmap(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct {
		L uint
		d float64
	}{{6, 0}, {6, 1}, {8, 0.5}, {12, 0.25}, {16, 0.28}, {16, 0.01}, {18, 0.3125}, {10, 0.9}} {
		bm := randBitmap(rng, c.L, c.d)
		enc, err := EncodeBitmap(bm, c.L)
		if err != nil {
			t.Fatal(err)
		}
		vs := bitmapValues(bm)
		want, err := Encode(vs, c.L)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, want) {
			t.Fatalf("L=%d d=%g: EncodeBitmap differs from Encode of the positions", c.L, c.d)
		}
		s, err := Open(enc, 1<<c.L)
		if err != nil {
			t.Fatal(err)
		}
		back, err := s.Bitmap()
		if err != nil {
			t.Fatal(err)
		}
		for i := range bm {
			if bm[i] != back[i] {
				t.Fatalf("L=%d d=%g: Bitmap differs at word %d", c.L, c.d, i)
			}
		}
		// Estimate sets have D from 1/4 to about 0.32 (see psi.EstimateParams);
		// Rice codes of gaps pay at least a bit per value, so a set denser
		// than 1/2 codes worse, and sets of a few hundred bits pay the padding.
		if D := float64(len(vs)) / float64(uint64(1)<<c.L); c.L >= 12 && D > 0.2 && D < 0.35 {
			h := -D*math.Log2(D) - (1-D)*math.Log2(1-D)
			bound := math.Ldexp(h, int(c.L)) / 8
			body := float64(len(enc) - headerSize - digestSize)
			t.Logf("L=%d D=%.3f: body %d bytes, 2^L·H(D) = %.0f bytes, ratio %.4f", c.L, D, int(body), bound, body/bound)
			if body > 1.03*bound {
				t.Errorf("L=%d D=%.3f: body %.0f bytes is more than 3%% over 2^L·H(D) = %.0f", c.L, D, body, bound)
			}
		}
	}
}

func TestEncodeBitmapRefuses(t *testing.T) {
	if _, err := EncodeBitmap(make([]uint64, 1), 5); err == nil {
		t.Error("L=5 accepted")
	}
	if _, err := EncodeBitmap(make([]uint64, 3), 8); err == nil {
		t.Error("a bitmap of the wrong length accepted")
	}
	enc, _ := Encode([]Value{{0, 1}}, 40)
	s, err := Open(enc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bitmap(); err == nil {
		t.Error("Bitmap of a 40-bit set accepted")
	}
}

// FuzzBitmap checks the dense path: whatever Open accepts with a small L
// decodes to a bitmap that EncodeBitmap codes back to the very same bytes.
func FuzzBitmap(f *testing.F) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, c := range []struct {
		L uint
		d float64
	}{{6, 0.25}, {8, 0.3}, {10, 0.05}, {7, 0.9}} {
		enc, err := EncodeBitmap(randBitmap(rng, c.L, c.d), c.L)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, fixDigest(bytes.Clone(data))} {
			if len(in) < digestSize {
				continue
			}
			s, err := Open(in, 1<<14)
			if err != nil || s.Bits() < MinBitmapBits || s.Bits() > 14 {
				continue
			}
			bm, err := s.Bitmap()
			if err != nil {
				t.Fatalf("Bitmap of an opened set: %v", err)
			}
			enc, err := EncodeBitmap(bm, s.Bits())
			if err != nil {
				t.Fatalf("EncodeBitmap of a decoded bitmap: %v", err)
			}
			if !bytes.Equal(enc, in) {
				t.Fatal("decode to a bitmap then EncodeBitmap changed the bytes")
			}
		}
	})
}

// TestBitmapRiceAgainstDeflate records why dense sets keep the Rice code
// of the sparse ones rather than a general-purpose compressor over the raw
// bitmap: at estimate mode's densities both land within about 1.5% of
// 2^L·H(D) (DEFLATE at its best level, the LZ77+Huffman family of
// klauspost/compress's flate and zstd, Huffman codes the bitmap's bytes
// about as well as Rice codes its gaps), so a second format would gain
// nothing, and the Rice code keeps one canonical format, one validating
// Open and a streaming lookup.
func TestBitmapRiceAgainstDeflate(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for _, d := range []float64{0.25, 0.3125} {
		const L = 18
		bm := randBitmap(rng, L, d)
		enc, err := EncodeBitmap(bm, L)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 0, len(bm)*8)
		for _, x := range bm {
			raw = binary.BigEndian.AppendUint64(raw, x)
		}
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestCompression)
		w.Write(raw)
		w.Close()
		D := float64(len(bitmapValues(bm))) / (1 << L)
		bound := (1 << L) * (-D*math.Log2(D) - (1-D)*math.Log2(1-D)) / 8
		t.Logf("L=%d D=%.4f: bitmap %d bytes, entropy %.0f, deflated %d (%.4f×), Rice coded %d (%.4f×)",
			L, D, len(raw), bound, buf.Len(), float64(buf.Len())/bound, len(enc), float64(len(enc))/bound)
		if float64(len(enc)) > 1.01*float64(buf.Len()) {
			t.Errorf("d=%v: Rice %d bytes, DEFLATE %d: the dense set wants another code", d, len(enc), buf.Len())
		}
	}
}
