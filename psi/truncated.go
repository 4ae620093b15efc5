package psi

import (
	"fmt"

	"github.com/psimatch/psimatch/psi/setcodec"
)

// FinalizeTruncated is Finalize followed by truncating each output to bits
// bits, the set's values, without holding every full output at once: a
// count-mode batch keeps 16 bytes per element instead of OutputSize (64).
// The values are in the order Finalize's outputs would be.
func FinalizeTruncated(b Blinder, ev *Evaluation, bits uint) ([]setcodec.Value, error) {
	var s *Suite
	switch b := b.(type) {
	case *CountBlinder:
		s = b.suite
	case *MembersBlinder:
		s = b.suite
	default:
		return nil, fmt.Errorf("psi: FinalizeTruncated: unknown blinder %T", b)
	}
	if bits < 1 || bits > setcodec.MaxBits || bits > uint(8*s.OutputSize()) {
		return nil, fmt.Errorf("psi: %d-bit set values from %d-byte outputs", bits, s.OutputSize())
	}
	cb, ok := b.(*CountBlinder)
	if !ok { // members batches are bounded by the caller: truncate after
		out, err := b.Finalize(ev)
		if err != nil {
			return nil, err
		}
		osize := s.OutputSize()
		vals := make([]setcodec.Value, len(out)/osize)
		for i := range vals {
			vals[i] = setcodec.Truncate(out[i*osize:(i+1)*osize], bits)
		}
		return vals, nil
	}
	n, err := cb.checkAnswer(ev)
	if err != nil {
		return nil, err
	}
	evaluated := ev.Elements
	rInv := s.g.NewScalar().Inv(cb.r)
	size := s.ElementSize()
	vals := make([]setcodec.Value, n)
	err = parallel(n, chunkSize, func(lo, hi int) error {
		e := s.g.NewElement()
		h := s.newHash()
		for i := lo; i < hi; i++ {
			if err := s.decodeElement(e, evaluated[i*size:(i+1)*size]); err != nil {
				return &ElementError{Index: i, Err: err}
			}
			enc, err := e.Mul(e, rInv).MarshalBinaryCompress()
			if err != nil {
				return err
			}
			vals[i] = setcodec.Truncate(s.countOutput(h, enc), bits)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vals, nil
}
