package psi

import (
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
)

// Errors for elements received from the other party. ElementError wraps one
// of them with the element's position.
var (
	ErrElementLength   = errors.New("psi: element frame length is not a multiple of the element size")
	ErrElementEncoding = errors.New("psi: element is not a canonical encoding of a group element")
	ErrElementIdentity = errors.New("psi: element is the identity")
	ErrEmptyBatch      = errors.New("psi: empty batch")
	ErrBatchTooLarge   = errors.New("psi: batch larger than the limit")
)

// ElementError reports which element of a batch was refused and why.
type ElementError struct {
	Index int   // 0-based position in the batch
	Err   error // ErrElementEncoding or ErrElementIdentity
}

func (e *ElementError) Error() string { return fmt.Sprintf("element %d: %v", e.Index, e.Err) }
func (e *ElementError) Unwrap() error { return e.Err }

// CountElements checks that frames is a whole number of elements, between 1
// and limit, and returns how many there are.
func (s *Suite) CountElements(frames []byte, limit int) (int, error) {
	size := s.ElementSize()
	if len(frames)%size != 0 {
		return 0, fmt.Errorf("%w (%d bytes, element size %d)", ErrElementLength, len(frames), size)
	}
	n := len(frames) / size
	if n == 0 {
		return 0, ErrEmptyBatch
	}
	if limit > 0 && n > limit {
		return 0, fmt.Errorf("%w: %d elements, limit %d", ErrBatchTooLarge, n, limit)
	}
	return n, nil
}

// decodeElement decodes one compressed element received from the other
// party, refusing every encoding but the canonical compressed one, and the
// identity. circl's ristretto255 decoder rejects non-canonical encodings; for
// P-256 only the 33-byte compressed form with x < p is accepted (circl would
// also take the one-byte identity and the uncompressed form).
func (s *Suite) decodeElement(e group.Element, b []byte) error {
	if len(b) != s.ElementSize() {
		return ErrElementEncoding
	}
	if s.weier && b[0] != 0x02 && b[0] != 0x03 {
		return ErrElementEncoding
	}
	if err := e.UnmarshalBinary(b); err != nil {
		return ErrElementEncoding
	}
	if e.IsIdentity() {
		return ErrElementIdentity
	}
	return nil
}

// putElement encodes e into dst, which has room for exactly one element.
func putElement(dst []byte, e group.Element) error {
	b, err := e.MarshalBinaryCompress()
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("psi: encoded element has %d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}
