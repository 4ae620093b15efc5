package setcodec

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// MaxBits is the largest truncation L the format carries.
const MaxBits = 128

// Value is a truncated OPRF output: the integer Hi·2^64 + Lo, holding the
// first L bits of the output right-aligned (so it is below 2^L). The zero
// Value is the integer 0. Values compare as unsigned 128-bit integers.
type Value struct {
	Hi, Lo uint64
}

// Compare returns -1, 0 or +1 as v is less than, equal to or greater than w.
func (v Value) Compare(w Value) int {
	switch {
	case v.Hi < w.Hi:
		return -1
	case v.Hi > w.Hi:
		return 1
	case v.Lo < w.Lo:
		return -1
	case v.Lo > w.Lo:
		return 1
	}
	return 0
}

// String returns v as 32 hexadecimal digits.
func (v Value) String() string {
	return fmt.Sprintf("%016x%016x", v.Hi, v.Lo)
}

// Bits returns the truncation L for a session in which the client looks up at
// most maxClientRows values against a set of at most setSize values:
// 40 + ceil(log2(maxClientRows)) + ceil(log2(max(setSize, 2))). A zero
// maxClientRows counts as 1. With that L the probability that truncation
// causes even one false match in the session is at most 2^-40.
//
// A result above MaxBits means the limits are too large for the format;
// Encode refuses it.
func Bits(maxClientRows, setSize uint64) uint {
	return 40 + ceilLog2(max(maxClientRows, 1)) + ceilLog2(max(setSize, 2))
}

// ceilLog2 returns ceil(log2(x)) for x ≥ 1.
func ceilLog2(x uint64) uint {
	return uint(bits.Len64(x - 1))
}

// Truncate returns the first nbits bits of out (read big-endian, as the hash
// output is written) as a Value. It panics if nbits > MaxBits or out is
// shorter than nbits bits: both are programming errors, since hash outputs
// have a fixed length.
func Truncate(out []byte, nbits uint) Value {
	if nbits > MaxBits {
		panic(fmt.Sprintf("setcodec: Truncate: %d bits exceeds the maximum of %d", nbits, MaxBits))
	}
	if uint(len(out))*8 < nbits {
		panic(fmt.Sprintf("setcodec: Truncate: %d bits requested from a %d-byte output", nbits, len(out)))
	}
	var b [16]byte
	copy(b[:], out)
	v := Value{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	return shr(v, 128-nbits)
}

// mask returns 2^n - 1 for n ≤ 128.
func mask(n uint) Value {
	if n == 0 {
		return Value{}
	}
	return shr(Value{^uint64(0), ^uint64(0)}, 128-n)
}

// shl returns v << s for any s (0 when s ≥ 128).
func shl(v Value, s uint) Value {
	switch {
	case s == 0:
		return v
	case s >= 128:
		return Value{}
	case s >= 64:
		return Value{v.Lo << (s - 64), 0}
	}
	return Value{v.Hi<<s | v.Lo>>(64-s), v.Lo << s}
}

// shr returns v >> s for any s (0 when s ≥ 128).
func shr(v Value, s uint) Value {
	switch {
	case s == 0:
		return v
	case s >= 128:
		return Value{}
	case s >= 64:
		return Value{0, v.Hi >> (s - 64)}
	}
	return Value{v.Hi >> s, v.Lo>>s | v.Hi<<(64-s)}
}

// add returns v + w and the carry out of bit 127.
func add(v, w Value) (Value, uint64) {
	lo, c := bits.Add64(v.Lo, w.Lo, 0)
	hi, c := bits.Add64(v.Hi, w.Hi, c)
	return Value{hi, lo}, c
}

// sub returns v - w for v ≥ w.
func sub(v, w Value) Value {
	lo, b := bits.Sub64(v.Lo, w.Lo, 0)
	hi, _ := bits.Sub64(v.Hi, w.Hi, b)
	return Value{hi, lo}
}
