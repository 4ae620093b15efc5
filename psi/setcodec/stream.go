package setcodec

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrEncoderCount is returned by Encoder.Finish when the number of values
// added calls for another Rice parameter than the count the Encoder was made
// for: encode again with NewEncoder(nbits, Encoder.Len()).
var ErrEncoderCount = errors.New("setcodec: the values added need another Rice parameter than the encoder's count")

// Encoder codes a set whose values arrive in increasing order, a run at a
// time, so a caller that sorts its values bucket by bucket (by their top
// bits) never holds more than one bucket besides the output. Its output is
// byte for byte what Encode returns for the same values.
type Encoder struct {
	h    header
	w    bitWriter
	m    Value // 2^L - 1
	base Value // the least value the next one can take
	n    uint64
	err  error
}

// NewEncoder returns an Encoder for values of nbits bits. n is the number of
// distinct values the caller expects to add: it chooses the Rice parameter
// and sizes the output. Finish accepts another count only if it gives the
// same parameter (repeats removed by truncation do not change it except
// near a power of two).
func NewEncoder(nbits uint, n uint64) (*Encoder, error) {
	if nbits < 1 || nbits > MaxBits {
		return nil, fmt.Errorf("%w: L is %d, want 1..%d", ErrBits, nbits, MaxBits)
	}
	if err := checkCount(n, nbits, MaxCount); err != nil {
		return nil, err
	}
	h := header{bits: nbits, k: RiceParam(nbits, n)}
	_, maxBody := bodyBounds(nbits, n)
	est := min(maxBody, n*uint64(h.k+3)/8+8)
	return &Encoder{h: h, m: mask(nbits), w: bitWriter{buf: make([]byte, headerSize, headerSize+int(est)+digestSize)}}, nil
}

// Add codes values, which must be increasing and above every value added
// before, each below 2^nbits. A value equal to the last one added is a
// repeat and is skipped.
func (e *Encoder) Add(values []Value) error {
	if e.err != nil {
		return e.err
	}
	for i, v := range values {
		if v.Hi > e.m.Hi || v.Hi == e.m.Hi && v.Lo > e.m.Lo {
			// The value is not shown: it is derived from an identifier.
			e.err = fmt.Errorf("%w: value at index %d of the run is %d bits or more", ErrValueRange, i, e.h.bits+1)
			return e.err
		}
		if e.n > 0 {
			last := sub(e.base, Value{0, 1})
			if c := v.Compare(last); c == 0 {
				continue
			} else if c < 0 {
				e.err = fmt.Errorf("setcodec: Encoder.Add: value at index %d of the run is below the last value added", i)
				return e.err
			}
		}
		e.base = writeCode(&e.w, v, e.base, e.h.k)
		e.n++
	}
	return nil
}

// Len returns the number of distinct values added so far.
func (e *Encoder) Len() uint64 { return e.n }

// Finish returns the encoded set: header, body and digest. It returns an
// error wrapping ErrEncoderCount if the values added need another Rice
// parameter than the count given to NewEncoder.
func (e *Encoder) Finish() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	if err := checkCount(e.n, e.h.bits, MaxCount); err != nil {
		return nil, err
	}
	if k := RiceParam(e.h.bits, e.n); k != e.h.k {
		return nil, fmt.Errorf("%w: %d values added, parameter %d, the encoder's is %d", ErrEncoderCount, e.n, k, e.h.k)
	}
	e.w.flush()
	e.h.count = e.n
	e.h.bodyLen = uint64(len(e.w.buf) - headerSize)
	e.h.append(e.w.buf[:0])
	sum := sha256.Sum256(e.w.buf)
	e.err = errors.New("setcodec: Encoder used after Finish")
	return append(e.w.buf, sum[:]...), nil
}
