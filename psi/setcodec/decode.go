package setcodec

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/bits"
)

const (
	// chunkSize is how much of the body a stream decoder reads at a time.
	chunkSize = 64 << 10
	// margin is how many bytes past the current one the decoder may read
	// for one code without checking: 64 bits of unary, 128 of low bits and
	// the extra byte of an unaligned 64-bit load fit in 26.
	margin = 32
)

// bitReader reads bits most significant first. buf is a window on the body:
// the whole body for Open, a chunk for a stream, and at the end a copy of the
// last bytes followed by margin zero bytes, so that loads never need a bounds
// check of their own. p is the bit position in buf and end the number of
// body bits in buf; decoding checks p ≤ end after each code.
type bitReader struct {
	buf   []byte
	p     uint
	end   uint
	final bool // buf holds the end of the body and zero padding
	pad   [2 * margin]byte

	// Stream only.
	src    io.Reader
	remain uint64    // body bytes not yet read from src
	chunk  []byte    // reused window buffer
	h      hash.Hash // sees every byte read from src
	err    error     // first read error
}

// room reports whether margin bytes past p can be read.
func (r *bitReader) room() bool {
	return r.p>>3+margin <= uint(len(r.buf))
}

// ensure makes room, reading more of a stream or, at the end of the body,
// moving to the zero-padded copy.
func (r *bitReader) ensure() {
	for !r.room() && !r.final {
		i := r.p >> 3
		if r.src == nil || r.remain == 0 || r.err != nil {
			r.toPad()
			return
		}
		n := copy(r.chunk, r.buf[i:])
		c := min(r.remain, uint64(len(r.chunk)-n))
		if _, err := io.ReadFull(r.src, r.chunk[n:n+int(c)]); err != nil {
			r.err = fmt.Errorf("%w: body: %v", ErrTruncated, unexpected(err))
			continue
		}
		r.h.Write(r.chunk[n : n+int(c)])
		r.remain -= c
		r.buf = r.chunk[:n+int(c)]
		r.p -= 8 * i
		r.end = 8 * uint(len(r.buf))
	}
}

// toPad moves the unread bytes, fewer than margin, to the zero-padded copy.
func (r *bitReader) toPad() {
	i := r.p >> 3
	n := copy(r.pad[:], r.buf[i:])
	clear(r.pad[n:])
	r.buf = r.pad[:n+margin]
	r.p -= 8 * i
	r.end -= 8 * i
	r.final = true
}

// peek returns the 64 bits at p. The caller has ensured room.
func (r *bitReader) peek(p uint) uint64 {
	i, s := p>>3, p&7
	b := r.buf[i : i+9]
	return binary.BigEndian.Uint64(b)<<s | uint64(b[8])>>(8-s)
}

// decoder decodes the body of one set.
type decoder struct {
	br    bitReader
	k     uint
	limit Value  // 2^L - 1
	maxQ  uint64 // largest quotient that keeps a gap below 2^L
	left  uint64 // values not yet decoded
	index uint64 // index of the next value
	base  Value  // least value the next one can take
	full  bool   // base has passed 2^128 - 1
}

func newDecoder(h header, body []byte) decoder {
	d := decoder{
		br:    bitReader{buf: body, end: 8 * uint(len(body))},
		k:     h.k,
		limit: mask(h.bits),
		left:  h.count,
	}
	q := shr(d.limit, h.k)
	d.maxQ = q.Lo
	if q.Hi != 0 {
		d.maxQ = ^uint64(0)
	}
	return d
}

// batch is how many values the batch decoders produce at a time.
const batch = 256

// fill decodes min(len(dst), left) values into dst and returns how many. It
// is next with the state in registers for the common case, a quotient
// below 64, and falls back to next for the rest.
func (d *decoder) fill(dst []Value) (int, error) {
	n := int(min(uint64(len(dst)), d.left))
	dst = dst[:n]
	k, maxQ, limit := d.k, d.maxQ, d.limit
	i := 0
	for i < n {
		r := &d.br
		if !r.room() {
			r.ensure()
		}
		if !r.room() || d.full {
			v, err := d.next()
			if err != nil {
				return i, err
			}
			dst[i] = v
			i++
			continue
		}
		buf, p, end, base := r.buf, r.p, r.end, d.base
		lim := uint(len(buf)) - margin // room while p>>3 ≤ lim
		j := i
		for ; j < n && p>>3 <= lim; j++ {
			w := peekAt(buf, p)
			if w == 0 {
				break // a long quotient: next handles it
			}
			z := uint(bits.LeadingZeros64(w))
			q := uint64(z)
			p += z + 1
			var g Value
			if k <= 64 {
				g.Lo = peekAt(buf, p)>>(64-k) | q<<k
				g.Hi = q >> (64 - k) // 0 when k is 0
				p += k
			} else {
				g.Hi = peekAt(buf, p)>>(128-k) | q<<(k-64)
				g.Lo = peekAt(buf, p+k-64)
				p += k
			}
			if p > end {
				r.p = p
				d.index += uint64(j - i)
				return j, d.truncated()
			}
			lo, c := bits.Add64(base.Lo, g.Lo, 0)
			hi, c := bits.Add64(base.Hi, g.Hi, c)
			if q > maxQ || c != 0 || hi > limit.Hi || hi == limit.Hi && lo > limit.Lo {
				d.index += uint64(j - i)
				return j, d.corrupt(true)
			}
			dst[j] = Value{hi, lo}
			base.Lo, c = bits.Add64(lo, 1, 0)
			base.Hi, c = bits.Add64(hi, 0, c)
			if c != 0 {
				// Only 2^128 - 1 itself gets here; next handles what follows.
				d.full = true
				j++
				break
			}
		}
		r.p, d.base = p, base
		d.left -= uint64(j - i)
		d.index += uint64(j - i)
		i = j
		if d.full || j == n {
			continue
		}
		if p>>3 <= lim {
			// A long quotient.
			v, err := d.next()
			if err != nil {
				return i, err
			}
			dst[i] = v
			i++
		}
	}
	return i, nil
}

// peekAt returns the 64 bits at bit p of buf; buf has 9 bytes from p>>3.
func peekAt(buf []byte, p uint) uint64 {
	i, s := p>>3, p&7
	b := buf[i : i+9]
	return binary.BigEndian.Uint64(b)<<s | uint64(b[8])>>(8-s)
}

// next decodes the next value; the caller checks left > 0.
func (d *decoder) next() (Value, error) {
	r := &d.br
	if !r.room() {
		r.ensure()
	}
	// Unary quotient: q zero bits, then a one bit.
	p := r.p
	w := r.peek(p)
	q := uint64(0)
	for w == 0 {
		q += 64
		p += 64
		if p > r.end || q > d.maxQ {
			r.p = p
			return Value{}, d.corrupt(q > d.maxQ)
		}
		r.p = p
		r.ensure()
		p = r.p
		w = r.peek(p)
	}
	z := uint(bits.LeadingZeros64(w))
	q += uint64(z)
	p += z + 1
	if q > d.maxQ {
		return Value{}, d.corrupt(true)
	}
	// Low k bits and the gap g = q<<k | low.
	var g Value
	k := d.k
	if k <= 64 {
		g.Lo = r.peek(p) >> (64 - k) // 0 when k is 0
		p += k
		g.Lo |= q << k
		g.Hi = q >> (64 - k) // 0 when k is 0
	} else {
		g.Hi = r.peek(p)>>(128-k) | q<<(k-64)
		p += k - 64
		g.Lo = r.peek(p)
		p += 64
	}
	r.p = p
	if p > r.end {
		return Value{}, d.truncated()
	}
	v, carry := add(d.base, g)
	if d.full || carry != 0 || v.Hi > d.limit.Hi || v.Hi == d.limit.Hi && v.Lo > d.limit.Lo {
		return Value{}, d.corrupt(true)
	}
	d.base.Lo, carry = bits.Add64(v.Lo, 1, 0)
	d.base.Hi, carry = bits.Add64(v.Hi, 0, carry)
	d.full = carry != 0
	d.left--
	d.index++
	return v, nil
}

// finish checks that the body ends right after the last code, with zero
// padding. The caller calls it once left is 0.
func (d *decoder) finish() error {
	r := &d.br
	if r.remain > 0 && r.err == nil {
		return fmt.Errorf("%w: bytes after the last value", ErrCorrupt)
	}
	if r.err != nil {
		return r.err
	}
	rest := r.end - r.p
	if rest >= 8 {
		return fmt.Errorf("%w: bytes after the last value", ErrCorrupt)
	}
	if !r.final {
		r.toPad()
	}
	if rest > 0 && r.peek(r.p)>>(64-rest) != 0 {
		return fmt.Errorf("%w: nonzero padding bits", ErrCorrupt)
	}
	return nil
}

func (d *decoder) corrupt(overflow bool) error {
	if !overflow {
		return d.truncated()
	}
	return fmt.Errorf("%w: value %d exceeds the bits", ErrCorrupt, d.index)
}

func (d *decoder) truncated() error {
	if d.br.err != nil {
		return d.br.err
	}
	return fmt.Errorf("%w: body ends inside value %d", ErrCorrupt, d.index)
}
