package setcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

const (
	magic      = "PSIS"
	version    = 1
	headerSize = 24
	digestSize = 32

	// MaxCount is the largest number of values the format carries, whatever
	// limit the caller passes. It keeps every length computation in 64 bits.
	MaxCount = 1 << 48
)

// Errors returned by Encode, Open, ReadSet and Reader. They are wrapped with
// the position and the limit involved; test for them with errors.Is.
var (
	ErrBits       = errors.New("setcodec: bits out of range")                   // L is not 1..MaxBits
	ErrValueRange = errors.New("setcodec: value does not fit in the bits")      // Encode: a value is 2^L or more
	ErrTooLarge   = errors.New("setcodec: set too large")                       // more values than the caller's limit or MaxCount
	ErrMagic      = errors.New("setcodec: not an encoded set (bad magic)")      // the input does not start with "PSIS"
	ErrVersion    = errors.New("setcodec: unsupported version")                 // a format version this code does not know
	ErrHeader     = errors.New("setcodec: malformed header")                    // reserved byte, Rice parameter or count inconsistent
	ErrTruncated  = errors.New("setcodec: truncated input")                     // the input or stream ends early
	ErrLength     = errors.New("setcodec: wrong length")                        // the body or total length disagrees with the header
	ErrDigest     = errors.New("setcodec: digest mismatch")                     // the SHA-256 trailer does not match
	ErrCorrupt    = errors.New("setcodec: corrupt body")                        // the body does not decode to the announced set
	ErrUsed       = errors.New("setcodec: Match on a Reader already read from") // Reader.Match needs a fresh Reader
)

// header is the fixed-size header of an encoded set.
type header struct {
	bits    uint   // L
	k       uint   // Rice parameter
	count   uint64 // n
	bodyLen uint64 // bytes
}

func (h header) append(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, version, byte(h.bits), byte(h.k), 0)
	b = binary.BigEndian.AppendUint64(b, h.count)
	return binary.BigEndian.AppendUint64(b, h.bodyLen)
}

// parseHeader checks the first headerSize bytes of an encoded set against the
// format and against maxCount. It allocates nothing.
func parseHeader(b []byte, maxCount uint64) (header, error) {
	var h header
	if len(b) < headerSize {
		return h, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrTruncated, len(b), headerSize)
	}
	if string(b[:4]) != magic {
		return h, ErrMagic
	}
	if b[4] != version {
		return h, fmt.Errorf("%w: %d, want %d", ErrVersion, b[4], version)
	}
	if b[7] != 0 {
		return h, fmt.Errorf("%w: reserved byte 7 is %d, want 0", ErrHeader, b[7])
	}
	h.bits, h.k = uint(b[5]), uint(b[6])
	h.count = binary.BigEndian.Uint64(b[8:16])
	h.bodyLen = binary.BigEndian.Uint64(b[16:24])
	if h.bits < 1 || h.bits > MaxBits {
		return h, fmt.Errorf("%w: L is %d, want 1..%d", ErrBits, h.bits, MaxBits)
	}
	if err := checkCount(h.count, h.bits, maxCount); err != nil {
		return h, err
	}
	if want := RiceParam(h.bits, h.count); h.k != want {
		return h, fmt.Errorf("%w: Rice parameter %d, want %d for L=%d and n=%d", ErrHeader, h.k, want, h.bits, h.count)
	}
	lo, hi := bodyBounds(h.bits, h.count)
	if h.bodyLen < lo || h.bodyLen > hi {
		return h, fmt.Errorf("%w: body of %d bytes, want %d..%d for L=%d and n=%d", ErrLength, h.bodyLen, lo, hi, h.bits, h.count)
	}
	return h, nil
}

// checkCount checks n against the caller's limit, the format's limit and the
// number of distinct L-bit values.
func checkCount(n uint64, L uint, maxCount uint64) error {
	if n > maxCount {
		return fmt.Errorf("%w: %d values exceeds the limit of %d", ErrTooLarge, n, maxCount)
	}
	if n > MaxCount {
		return fmt.Errorf("%w: %d values exceeds the format limit of %d", ErrTooLarge, n, uint64(MaxCount))
	}
	if L < 64 && n > 1<<L {
		return fmt.Errorf("%w: %d distinct values cannot fit in %d bits", ErrHeader, n, L)
	}
	return nil
}

// RiceParam returns the Rice parameter k the format uses for n values of L
// bits: the k ≥ 0 with 2^k in [0.48, 0.96) times the mean gap 2^L/n, where
// the expected code length of geometric gaps is within about 0.12 bits of the
// entropy bound (about 0.03 bits at best). It depends only on L and n, which
// keeps the encoding canonical. RiceParam(L, 0) is 0.
func RiceParam(L uint, n uint64) uint {
	if n == 0 {
		return 0
	}
	// With 2^(b-1) ≤ n < 2^b, the mean gap 2^L/n is in (2^(L-b), 2^(L-b+1)],
	// so k is L-b if 2^(L-b) ≤ 0.96·2^L/n, that is n ≤ 0.96·2^b, else L-b-1.
	b := uint(bits.Len64(n))
	t := shl(Value{0, 24}, b)
	q, _ := bits.Div64(t.Hi, t.Lo, 25) // t.Hi ≤ 24 < 25
	k := int(L) - int(b) - 1
	if n <= q {
		k++
	}
	return uint(max(k, 0))
}

// bodyBounds returns the least and greatest body length in bytes for n
// distinct values of L bits. Every code is at least k+1 bits, and the
// quotients sum to at most (2^L - n) >> k, since the gaps sum to at most
// 2^L - n. checkCount has bounded n, so nothing overflows.
func bodyBounds(L uint, n uint64) (lo, hi uint64) {
	if n == 0 {
		return 0, 0
	}
	k := RiceParam(L, n)
	minBits := n * uint64(k+1)
	span := sub(shl(Value{0, 1}, L), Value{0, n}) // for L=128, 0 - n wraps to 2^128 - n
	q := shr(span, k)                             // k ≥ L-b-1 with n < 2^b ≤ 2^49, so q < 2^50
	maxBits := minBits + q.Lo
	return (minBits + 7) / 8, (maxBits + 7) / 8
}
