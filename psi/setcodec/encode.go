package setcodec

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

// Encode returns the encoded set of values with L = nbits bits per value:
// header, body and digest. Every value must be below 2^nbits (use Truncate);
// nbits must be 1..MaxBits. Repeated values are stored once.
//
// Encode sorts values in place and, when it removes repeats, overwrites the
// tail of values; its contents are unspecified afterwards. It needs no
// memory beyond the output. The output depends only on the set of values
// and nbits.
func Encode(values []Value, nbits uint) ([]byte, error) {
	if nbits < 1 || nbits > MaxBits {
		return nil, fmt.Errorf("%w: L is %d, want 1..%d", ErrBits, nbits, MaxBits)
	}
	m := mask(nbits)
	for i, v := range values {
		if v.Hi > m.Hi || v.Hi == m.Hi && v.Lo > m.Lo {
			// The value is not shown: it is derived from an identifier.
			return nil, fmt.Errorf("%w: value at index %d is %d bits or more", ErrValueRange, i, nbits+1)
		}
	}
	sortValues(values)
	values = slices.Compact(values)
	n := uint64(len(values))
	if err := checkCount(n, nbits, MaxCount); err != nil {
		return nil, err
	}
	h := header{bits: nbits, k: RiceParam(nbits, n), count: n}
	_, maxBody := bodyBounds(nbits, n)
	// The typical body is about n·(k+2) bits; maxBody is a loose bound.
	est := min(maxBody, n*uint64(h.k+3)/8+8)
	w := bitWriter{buf: make([]byte, headerSize, headerSize+int(est)+digestSize)}
	writeBody(&w, values, h.k)
	w.flush()
	h.bodyLen = uint64(len(w.buf) - headerSize)
	h.append(w.buf[:0])
	sum := sha256.Sum256(w.buf)
	return append(w.buf, sum[:]...), nil
}

// writeBody writes the Rice codes of the gaps of the sorted distinct values.
func writeBody(w *bitWriter, values []Value, k uint) {
	var base Value // the least value the next one can take
	for _, v := range values {
		base = writeCode(w, v, base, k)
	}
}

// writeCode writes the Rice code of v's gap above base (v ≥ base) and
// returns the least value the next one can take.
func writeCode(w *bitWriter, v, base Value, k uint) Value {
	d := sub(v, base)
	q := shr(d, k).Lo // < 2^50, see bodyBounds
	for ; q >= 64; q -= 64 {
		w.write(0, 64)
	}
	w.write(1, uint(q)+1)
	low := mask(k)
	if k > 64 {
		w.write(d.Hi&low.Hi, k-64)
		w.write(d.Lo, 64)
	} else {
		w.write(d.Lo&low.Lo, k)
	}
	next, _ := add(v, Value{0, 1})
	return next
}

// sortValues sorts values in increasing order.
func sortValues(values []Value) {
	slices.SortFunc(values, Value.Compare)
}

// bitWriter appends bits to buf, most significant bit first.
type bitWriter struct {
	buf []byte
	acc uint64 // pending bits, left-aligned
	n   uint   // number of pending bits, < 64
}

// write appends the low c bits of v; c ≤ 64 and v < 2^c.
func (w *bitWriter) write(v uint64, c uint) {
	free := 64 - w.n
	if c < free {
		w.acc |= v << (free - c)
		w.n += c
		return
	}
	rem := c - free
	w.acc |= v >> rem
	w.buf = binary.BigEndian.AppendUint64(w.buf, w.acc)
	w.acc = 0
	if rem > 0 {
		w.acc = v << (64 - rem)
	}
	w.n = rem
}

// flush writes the pending bits, padding the last byte with zeros.
func (w *bitWriter) flush() {
	for ; w.n > 0; w.n -= min(w.n, 8) {
		w.buf = append(w.buf, byte(w.acc>>56))
		w.acc <<= 8
	}
}
