package setcodec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// readers returns the ways a test feeds enc to a stream decoder.
func readers(enc []byte) map[string]io.Reader {
	return map[string]io.Reader{
		"whole":   bytes.NewReader(enc),
		"onebyte": iotest.OneByteReader(bytes.NewReader(enc)),
		"half":    iotest.HalfReader(bytes.NewReader(enc)),
		"dataerr": iotest.DataErrReader(bytes.NewReader(enc)),
	}
}

// checkReaders checks that ReadSet and Reader decode enc to want and read
// exactly enc, whatever the read sizes.
func checkReaders(t *testing.T, enc []byte, want []Value) {
	t.Helper()
	tail := []byte("after")
	for name, r := range readers(append(enc[:len(enc):len(enc)], tail...)) {
		s, err := ReadSet(r, uint64(len(want)))
		if err != nil {
			t.Fatalf("%s: ReadSet: %v", name, err)
		}
		if !bytes.Equal(s.Bytes(), enc) {
			t.Fatalf("%s: ReadSet read other bytes", name)
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, tail) {
			t.Fatalf("%s: ReadSet left %q, want %q", name, rest, tail)
		}
	}
	for name, r := range readers(append(enc[:len(enc):len(enc)], tail...)) {
		sr, err := NewReader(r, uint64(len(want)))
		if err != nil {
			t.Fatalf("%s: NewReader: %v", name, err)
		}
		i := 0
		for v, ok := sr.Next(); ok; v, ok = sr.Next() {
			if i >= len(want) || v != want[i] {
				t.Fatalf("%s: Reader value %d wrong", name, i)
			}
			i++
		}
		if err := sr.Err(); err != nil || i != len(want) {
			t.Fatalf("%s: Reader: %d values, err %v", name, i, err)
		}
		if sr.Digest() != [32]byte(enc[len(enc)-32:]) {
			t.Fatalf("%s: Reader digest wrong", name)
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, tail) {
			t.Fatalf("%s: Reader left %q, want %q", name, rest, tail)
		}
	}
}

func TestReaderMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	vs := randValues(rng, 50000, 70)
	enc, err := Encode(vs, 70)
	if err != nil {
		t.Fatal(err)
	}
	qs := append(randValues(rng, 100, 70), vs[:100]...)
	for name, r := range readers(enc) {
		sr, err := NewReader(r, 50000)
		if err != nil {
			t.Fatal(err)
		}
		found, err := sr.Match(qs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range qs {
			if found[i] != (i >= 100) {
				t.Fatalf("%s: found[%d] = %v", name, i, found[i])
			}
		}
		if _, err := sr.Match(qs); err == nil {
			t.Errorf("%s: second Match succeeded", name)
		}
	}
	// A bad digest means no result, even though every value decoded.
	bad := bytes.Clone(enc)
	bad[len(bad)-1] ^= 1
	sr, _ := NewReader(bytes.NewReader(bad), 50000)
	if found, err := sr.Match(qs); !errors.Is(err, ErrDigest) || found != nil {
		t.Errorf("Match with a bad digest: %v, %v", found != nil, err)
	}
}

// fixDigest rewrites the digest of enc to match the rest, so a test reaches
// the body checks.
func fixDigest(enc []byte) []byte {
	if len(enc) >= 32 {
		sum := sha256.Sum256(enc[:len(enc)-32])
		copy(enc[len(enc)-32:], sum[:])
	}
	return enc
}

func TestRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	good, err := Encode(randValues(rng, 1000, 60), 60)
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return fixDigest(b)
	}
	// A body that decodes but whose bits are altered: each case repairs
	// the digest so the body checks are what fires.
	tests := []struct {
		name     string
		input    []byte
		maxCount uint64
		want     error
		stream   error // from ReadSet and Reader, if not want
	}{
		{"empty", nil, 1000, ErrTruncated, nil},
		{"short header", good[:23], 1000, ErrTruncated, nil},
		{"magic", hdr(func(b []byte) { b[0] = 'X' }), 1000, ErrMagic, nil},
		{"version", hdr(func(b []byte) { b[4] = 2 }), 1000, ErrVersion, nil},
		{"reserved", hdr(func(b []byte) { b[7] = 1 }), 1000, ErrHeader, nil},
		{"bits 0", hdr(func(b []byte) { b[5] = 0 }), 1000, ErrBits, nil},
		{"bits 129", hdr(func(b []byte) { b[5] = 129 }), 1000, ErrBits, nil},
		{"rice", hdr(func(b []byte) { b[6]++ }), 1000, ErrHeader, nil},
		{"over limit", good, 999, ErrTooLarge, nil},
		{"count 2^63", hdr(func(b []byte) { binary.BigEndian.PutUint64(b[8:], 1<<63) }), 1 << 63, ErrTooLarge, nil},
		{"count too big for L", hdr(func(b []byte) { b[5] = 9; b[6] = 0 }), 1000, ErrHeader, nil},
		{"body length huge", hdr(func(b []byte) { binary.BigEndian.PutUint64(b[16:], 1<<62) }), 1000, ErrLength, nil},
		{"body length short", hdr(func(b []byte) { binary.BigEndian.PutUint64(b[16:], 10) }), 1000, ErrLength, nil},
		{"truncated", good[:len(good)-1], 1000, ErrLength, ErrTruncated},
		// A stream decoder reads exactly the announced length.
		{"extra byte", append(bytes.Clone(good), 0), 1000, ErrLength, errNone},
		{"digest", hdr(func(b []byte) {})[:0:0], 1000, ErrTruncated, nil},
		{"bad digest", func() []byte { b := bytes.Clone(good); b[len(b)-5] ^= 0x10; return b }(), 1000, ErrDigest, nil},
		{"bad body bit", func() []byte { b := bytes.Clone(good); b[100] ^= 0x10; return b }(), 1000, ErrDigest, nil},
		{"count one less", hdr(func(b []byte) { binary.BigEndian.PutUint64(b[8:], 999) }), 1000, ErrCorrupt, nil},
		{"count one more", hdr(func(b []byte) { binary.BigEndian.PutUint64(b[8:], 1001) }), 1001, ErrCorrupt, nil},
		{"all ones body", hdr(func(b []byte) {
			for i := headerSize; i < len(b)-32; i++ {
				b[i] = 0xff
			}
		}), 1000, ErrCorrupt, nil},
		{"all zeros body", hdr(func(b []byte) {
			for i := headerSize; i < len(b)-32; i++ {
				b[i] = 0
			}
		}), 1000, ErrCorrupt, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.input, tt.maxCount); !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
			want := tt.want
			if tt.stream != nil {
				want = tt.stream
			}
			for name, r := range readers(tt.input) {
				if _, err := ReadSet(r, tt.maxCount); !isErr(err, want) {
					t.Errorf("%s: ReadSet: %v, want %v", name, err, want)
				}
			}
			for name, r := range readers(tt.input) {
				if err := drain(r, tt.maxCount); !isErr(err, want) {
					t.Errorf("%s: Reader: %v, want %v", name, err, want)
				}
			}
		})
	}
}

// errNone stands for a nil error in a test table.
var errNone = errors.New("no error")

func isErr(err, want error) bool {
	if want == errNone {
		return err == nil
	}
	return errors.Is(err, want)
}

// drain decodes all of r with a Reader and returns the error.
func drain(r io.Reader, maxCount uint64) error {
	sr, err := NewReader(r, maxCount)
	if err != nil {
		return err
	}
	for _, ok := sr.Next(); ok; _, ok = sr.Next() {
	}
	return sr.Err()
}

// TestPadding checks that nonzero padding bits and a trailing zero byte are
// refused, so the encoding stays canonical.
func TestPadding(t *testing.T) {
	for n := 1; n < 40; n++ {
		enc, err := Encode(randValues(rand.New(rand.NewPCG(uint64(n), 0)), n, 50), 50)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(enc, 100)
		if err != nil {
			t.Fatal(err)
		}
		var used uint64 // bits of all the codes
		prev := uint64(0)
		for v := range s.All() {
			used += (v.Lo-prev)>>RiceParam(50, s.Len()) + 1 + uint64(RiceParam(50, s.Len()))
			prev = v.Lo + 1
		}
		if pad := uint(8*(len(enc)-headerSize-32)) - uint(used); pad > 0 {
			b := bytes.Clone(enc)
			b[len(b)-33] |= 1 << (pad - 1)
			if _, err := Open(fixDigest(b), 100); !errors.Is(err, ErrCorrupt) {
				t.Errorf("n=%d: nonzero padding: %v", n, err)
			}
		}
		b := append(bytes.Clone(enc[:len(enc)-32]), make([]byte, 33)...)
		binary.BigEndian.PutUint64(b[16:], uint64(len(b)-headerSize-32))
		if _, err := Open(fixDigest(b), 100); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrLength) {
			t.Errorf("n=%d: trailing zero byte: %v", n, err)
		}
	}
}

// TestEveryPrefixAndFlip opens every prefix of a small encoding and every
// single-bit change of it (with the digest repaired): none may panic, every
// prefix is refused, and whatever is accepted re-encodes to itself.
func TestEveryPrefixAndFlip(t *testing.T) {
	for _, L := range []uint{12, 65, 128} {
		enc, err := Encode(randValues(rand.New(rand.NewPCG(13, uint64(L))), 20, L), L)
		if err != nil {
			t.Fatal(err)
		}
		for i := range enc {
			if _, err := Open(enc[:i], 100); err == nil {
				t.Fatalf("L=%d: prefix of %d bytes accepted", L, i)
			}
			if err := drain(iotest.OneByteReader(bytes.NewReader(enc[:i])), 100); err == nil {
				t.Fatalf("L=%d: Reader accepted a prefix of %d bytes", L, i)
			}
		}
		for bit := range 8 * (len(enc) - 32) {
			b := bytes.Clone(enc)
			b[bit/8] ^= 0x80 >> (bit % 8)
			fixDigest(b)
			s, err := Open(b, 100)
			if err != nil {
				continue
			}
			again, err := Encode(s.Values(), s.Bits())
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("L=%d: flip of bit %d accepted but does not re-encode", L, bit)
			}
		}
	}
}
