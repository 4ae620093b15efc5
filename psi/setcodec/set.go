package setcodec

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"iter"
	"slices"
)

// Set is a validated encoded set. It holds the encoded bytes and nothing
// decoded; every method decodes on the fly. A Set is safe for concurrent use.
type Set struct {
	enc    []byte
	h      header
	digest [32]byte
}

// Open checks enc, an encoded set, and returns it as a Set that refers to
// enc (which the caller must then not modify). maxCount is the most values
// the caller accepts. Open checks the header against the format and
// maxCount, the length, the digest, and that the body decodes to exactly n
// strictly increasing values below 2^L in canonical form. It never panics.
func Open(enc []byte, maxCount uint64) (*Set, error) {
	h, err := parseHeader(enc, maxCount)
	if err != nil {
		return nil, err
	}
	want := uint64(headerSize) + h.bodyLen + digestSize // bodyLen < 2^56, see bodyBounds
	if uint64(len(enc)) != want {
		return nil, fmt.Errorf("%w: %d bytes, the header announces %d", ErrLength, len(enc), want)
	}
	s := &Set{enc: enc, h: h}
	end := len(enc) - digestSize
	copy(s.digest[:], enc[end:])
	sum := sha256.Sum256(enc[:end])
	if subtle.ConstantTimeCompare(sum[:], s.digest[:]) != 1 {
		return nil, ErrDigest
	}
	d := s.decoder()
	var buf [batch]Value
	for d.left > 0 {
		if _, err := d.fill(buf[:]); err != nil {
			return nil, err
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Set) decoder() decoder {
	return newDecoder(s.h, s.enc[headerSize:len(s.enc)-digestSize])
}

// Len returns the number of values in the set.
func (s *Set) Len() uint64 { return s.h.count }

// Bits returns L, the number of bits of every value.
func (s *Set) Bits() uint { return s.h.bits }

// Digest returns the SHA-256 digest that ends the encoding, which Open has
// checked. It names the set, for example as an HTTP ETag.
func (s *Set) Digest() [32]byte { return s.digest }

// Bytes returns the encoding the set was opened from.
func (s *Set) Bytes() []byte { return s.enc }

// All returns an iterator over the values in increasing order.
func (s *Set) All() iter.Seq[Value] {
	return func(yield func(Value) bool) {
		d := s.decoder()
		var buf [batch]Value
		for d.left > 0 {
			n, err := d.fill(buf[:])
			if err != nil { // Open has checked the body
				return
			}
			for _, v := range buf[:n] {
				if !yield(v) {
					return
				}
			}
		}
	}
}

// Values decodes the whole set into a new slice, in increasing order. It uses
// 16 bytes per value; prefer All, Match or Count for large sets.
func (s *Set) Values() []Value {
	return slices.AppendSeq(make([]Value, 0, s.h.count), s.All())
}

// Match reports for each query whether it is in the set: found[i] is true if
// queries[i] is. The queries may be in any order and may repeat; Match sorts
// an index of them and merge-joins it against one streaming decode of the set,
// which stops after the largest query. Queries at or above 2^L never match.
func (s *Set) Match(queries []Value) []bool {
	d := s.decoder()
	found, _ := match(&d, queries)
	return found
}

// Count returns how many of queries are in the set, counting repeats, as
// Match does.
func (s *Set) Count(queries []Value) int {
	n := 0
	for _, f := range s.Match(queries) {
		if f {
			n++
		}
	}
	return n
}

// Contains reports whether v is in the set. It decodes up to v each time;
// use Match for more than a few values.
func (s *Set) Contains(v Value) bool {
	return s.Match([]Value{v})[0]
}

// match merge-joins the queries, sorted through an index, against d, and
// returns the decoder's first error. It stops decoding after the largest
// query.
func match(d *decoder, queries []Value) ([]bool, error) {
	found := make([]bool, len(queries))
	order := make([]int, len(queries))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return queries[a].Compare(queries[b]) })
	var buf [batch]Value
	i := 0
	for i < len(order) && d.left > 0 {
		n, err := d.fill(buf[:])
		if err != nil {
			return nil, err
		}
		// Skip the batch if the next query is past its largest value.
		if q := queries[order[i]]; q.Compare(buf[n-1]) > 0 {
			continue
		}
		for _, v := range buf[:n] {
			for i < len(order) && queries[order[i]].Compare(v) < 0 {
				i++
			}
			for i < len(order) && queries[order[i]] == v {
				found[order[i]] = true
				i++
			}
			if i == len(order) {
				break
			}
		}
	}
	return found, nil
}
