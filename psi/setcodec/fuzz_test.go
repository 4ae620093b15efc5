package setcodec

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// FuzzOpen checks that Open never panics, that whatever it accepts re-encodes
// to the same bytes, and that ReadSet and Reader agree with it. The target
// runs each input twice: as given, and with its digest repaired, so that the
// fuzzer gets past the digest into the header and body checks.
func FuzzOpen(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		n int
		L uint
	}{{0, 41}, {1, 48}, {2, 64}, {3, 65}, {20, 88}, {40, 128}, {64, 8}, {200, 10}, {5, 1}} {
		enc, err := Encode(randValues(rng, c.n, c.L), c.L)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte("PSIS"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoders(t, data)
		if len(data) >= digestSize {
			checkDecoders(t, fixDigest(bytes.Clone(data)))
		}
	})
}

func checkDecoders(t *testing.T, data []byte) {
	const limit = 1 << 16
	s, err := Open(data, limit)
	// The stream decoders read only the announced length, so they agree
	// with Open on that prefix of data.
	if h, herr := parseHeader(data, limit); herr == nil {
		total := uint64(headerSize) + h.bodyLen + digestSize
		if uint64(len(data)) >= total {
			_, perr := Open(data[:total], limit)
			if _, rerr := ReadSet(bytes.NewReader(data), limit); (perr == nil) != (rerr == nil) {
				t.Fatalf("Open of the prefix: %v; ReadSet: %v", perr, rerr)
			}
			if rerr := drain(bytes.NewReader(data), limit); (perr == nil) != (rerr == nil) {
				t.Fatalf("Open of the prefix: %v; Reader: %v", perr, rerr)
			}
		}
	}
	if err != nil {
		return
	}
	vs := s.Values()
	enc, err := Encode(vs, s.Bits())
	if err != nil {
		t.Fatalf("Encode of decoded values: %v", err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("decode then encode changed the bytes")
	}
	if len(vs) > 0 && s.Count(vs) != len(vs) {
		t.Fatalf("a decoded value does not match")
	}
	var got []Value
	r, err := NewReader(bytes.NewReader(data), limit)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	for v, ok := r.Next(); ok; v, ok = r.Next() {
		got = append(got, v)
	}
	if r.Err() != nil || !slices.Equal(got, vs) {
		t.Fatalf("Reader disagrees with Open: %v", r.Err())
	}
}
