package setcodec

import (
	"crypto/sha256"
	"fmt"
	"math/bits"
)

// Dense sets (estimate mode) hold a large fraction of all 2^L values; the
// platform builds them as a bitmap of 2^L bits rather than a list of
// values. EncodeBitmap codes such a bitmap in the same canonical format as
// Encode (Golomb-Rice coded gaps): a dense set of density D costs about
// 2^L·H(D) bits, and Open, ReadSet and Reader read it like any other set.

// Bitmap limits: L from MinBitmapBits to MaxBitmapBits (2^32 bits, 512 MiB).
const (
	MinBitmapBits = 6
	MaxBitmapBits = 32
)

// BitmapWords returns the number of 64-bit words of a bitmap of 2^L bits.
func BitmapWords(L uint) int { return 1 << (L - 6) }

// BitmapHas reports whether bit v of the bitmap bm is set: bit v is bit
// 63 - v%64 of word v/64 (most significant bit first).
func BitmapHas(bm []uint64, v uint64) bool {
	return bm[v>>6]>>(63-v&63)&1 == 1
}

// BitmapSet sets bit v of bm.
func BitmapSet(bm []uint64, v uint64) {
	bm[v>>6] |= 1 << (63 - v&63)
}

// EncodeBitmap returns the encoding of the set of the positions of the one
// bits of bm, a bitmap of 2^L bits laid out as BitmapHas reads it. The
// output is byte for byte what Encode gives for those positions as Values,
// and needs no memory beyond it. L must be MinBitmapBits..MaxBitmapBits and
// len(bm) must be BitmapWords(L).
func EncodeBitmap(bm []uint64, L uint) ([]byte, error) {
	if L < MinBitmapBits || L > MaxBitmapBits {
		return nil, fmt.Errorf("%w: a bitmap's L is %d, want %d..%d", ErrBits, L, MinBitmapBits, MaxBitmapBits)
	}
	if len(bm) != BitmapWords(L) {
		return nil, fmt.Errorf("%w: a bitmap of 2^%d bits has %d words, not %d", ErrLength, L, BitmapWords(L), len(bm))
	}
	var n uint64
	for _, x := range bm {
		n += uint64(bits.OnesCount64(x))
	}
	if err := checkCount(n, L, MaxCount); err != nil {
		return nil, err
	}
	h := header{bits: L, k: RiceParam(L, n), count: n}
	_, maxBody := bodyBounds(L, n)
	est := min(maxBody, n*uint64(h.k+3)/8+8)
	w := bitWriter{buf: make([]byte, headerSize, headerSize+int(est)+digestSize)}
	k := h.k
	low := uint64(1)<<k - 1
	var base uint64 // the least value the next one can take
	for i, x := range bm {
		for x != 0 {
			z := uint64(bits.LeadingZeros64(x))
			x &^= 1 << (63 - z)
			v := uint64(i)<<6 | z
			d := v - base
			base = v + 1
			q := d >> k
			for ; q >= 64; q -= 64 {
				w.write(0, 64)
			}
			w.write(1, uint(q)+1)
			w.write(d&low, k)
		}
	}
	w.flush()
	h.bodyLen = uint64(len(w.buf) - headerSize)
	h.append(w.buf[:0])
	sum := sha256.Sum256(w.buf)
	return append(w.buf, sum[:]...), nil
}

// Bitmap decodes the set into a bitmap of 2^L bits (BitmapHas reads it),
// for O(1) lookups in a dense set. It fails for L outside
// MinBitmapBits..MaxBitmapBits.
func (s *Set) Bitmap() ([]uint64, error) {
	L := s.Bits()
	if L < MinBitmapBits || L > MaxBitmapBits {
		return nil, fmt.Errorf("%w: a bitmap needs L in %d..%d, the set has %d", ErrBits, MinBitmapBits, MaxBitmapBits, L)
	}
	bm := make([]uint64, BitmapWords(L))
	for v := range s.All() {
		BitmapSet(bm, v.Lo)
	}
	return bm, nil
}
