package setcodec

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// ReadSet reads one encoded set from r and opens it as Open does. It reads
// the header first and checks it, so it allocates only for a set of at most
// maxCount values, and reads exactly the encoding's length from r, nothing
// after it.
func ReadSet(r io.Reader, maxCount uint64) (*Set, error) {
	var hb [headerSize]byte
	h, err := readHeader(r, hb[:], maxCount)
	if err != nil {
		return nil, err
	}
	enc := make([]byte, headerSize+h.bodyLen+digestSize)
	copy(enc, hb[:])
	if _, err := io.ReadFull(r, enc[headerSize:]); err != nil {
		return nil, fmt.Errorf("%w: body and digest of %d bytes: %v", ErrTruncated, h.bodyLen+digestSize, unexpected(err))
	}
	return Open(enc, maxCount)
}

func readHeader(r io.Reader, hb []byte, maxCount uint64) (header, error) {
	if _, err := io.ReadFull(r, hb); err != nil {
		return header{}, fmt.Errorf("%w: header: %v", ErrTruncated, unexpected(err))
	}
	return parseHeader(hb, maxCount)
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Reader decodes an encoded set as it reads it, holding only a 64 KiB
// buffer. The digest is checked only at the end, so a caller must not act on
// the values before Next has returned false and Err has returned nil. Match
// does this for the common case.
type Reader struct {
	h      header
	d      decoder
	buf    []Value // decoded, not yet returned
	bufAt  int
	err    error
	done   bool
	digest [32]byte
}

// NewReader reads and checks the header of an encoded set from r. maxCount
// is the most values the caller accepts. The Reader reads exactly the
// encoding's length from r, nothing after it.
func NewReader(r io.Reader, maxCount uint64) (*Reader, error) {
	var hb [headerSize]byte
	h, err := readHeader(r, hb[:], maxCount)
	if err != nil {
		return nil, err
	}
	hh := sha256.New()
	hh.Write(hb[:])
	d := newDecoder(h, nil)
	d.br.src = r
	d.br.remain = h.bodyLen
	d.br.chunk = make([]byte, min(h.bodyLen, chunkSize))
	d.br.h = hh
	return &Reader{h: h, d: d}, nil
}

// Len returns the number of values the header announces.
func (r *Reader) Len() uint64 { return r.h.count }

// Bits returns L, the number of bits of every value.
func (r *Reader) Bits() uint { return r.h.bits }

// Next returns the next value in increasing order. It returns false at the
// end of the set or on an error; then Err tells which.
func (r *Reader) Next() (Value, bool) {
	if r.bufAt < len(r.buf) {
		r.bufAt++
		return r.buf[r.bufAt-1], true
	}
	if r.err != nil || r.done {
		return Value{}, false
	}
	if r.d.left == 0 {
		r.end()
		return Value{}, false
	}
	if r.buf == nil {
		r.buf = make([]Value, batch)
	}
	n, err := r.d.fill(r.buf[:cap(r.buf)])
	if err != nil {
		r.err = err
		return Value{}, false
	}
	r.buf, r.bufAt = r.buf[:n], 1
	return r.buf[0], true
}

// end checks the padding and reads and checks the digest.
func (r *Reader) end() {
	r.done = true
	if r.err = r.d.finish(); r.err != nil {
		return
	}
	br := &r.d.br
	if _, err := io.ReadFull(br.src, r.digest[:]); err != nil {
		r.err = fmt.Errorf("%w: digest: %v", ErrTruncated, unexpected(err))
		return
	}
	if subtle.ConstantTimeCompare(br.h.Sum(nil), r.digest[:]) != 1 {
		r.err = ErrDigest
	}
}

// Err returns the first error, or nil. After Next has returned false, a nil
// Err means the whole set was read and its digest checked.
func (r *Reader) Err() error { return r.err }

// Digest returns the checked digest once Next has returned false with a nil
// Err, and the zero array before that.
func (r *Reader) Digest() [32]byte {
	if !r.done || r.err != nil {
		return [32]byte{}
	}
	return r.digest
}

// Match reports for each query whether it is in the set, as Set.Match does.
// It reads the rest of the set, checks the digest and returns no result
// unless everything checks. Call it on a fresh Reader.
func (r *Reader) Match(queries []Value) ([]bool, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.done || r.d.index > 0 {
		return nil, ErrUsed
	}
	found, err := match(&r.d, queries)
	if err != nil {
		r.err = err
		return nil, err
	}
	for {
		if _, ok := r.Next(); !ok {
			break
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return found, nil
}
