package setcodec

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

var benchSizes = []int{1 << 16, 1 << 20}

// rate reports elems/s over wall time and elems/cpu-s over the thread's CPU
// time since start (see threadCPU); the caller has locked its OS thread.
func rate(b *testing.B, perOp uint64, start time.Duration) {
	total := float64(perOp) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "elems/s")
	if cpu := threadCPU() - start; cpu > 0 {
		b.ReportMetric(total/cpu.Seconds(), "elems/cpu-s")
	}
}

func reportSize(b *testing.B, encLen int, n uint64, L uint) {
	per := float64(encLen) / float64(n)
	b.ReportMetric(per, "bytes/elem")
	b.ReportMetric(per/EntropyBound(L, n), "ratio-to-entropy")
}

func BenchmarkEncode(b *testing.B) {
	for _, n := range benchSizes {
		L := Bits(1<<24, uint64(n))
		b.Run(fmt.Sprintf("n=%d/L=%d", n, L), func(b *testing.B) {
			src := randValues(rand.New(rand.NewPCG(1, uint64(n))), n, L)
			vs := make([]Value, n)
			var enc []byte
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := threadCPU()
			for b.Loop() {
				copy(vs, src)
				var err error
				if enc, err = Encode(vs, L); err != nil {
					b.Fatal(err)
				}
			}
			rate(b, uint64(n), start)
			reportSize(b, len(enc), uint64(n), L)
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, n := range benchSizes {
		L := Bits(1<<24, uint64(n))
		enc, err := Encode(randValues(rand.New(rand.NewPCG(2, uint64(n))), n, L), L)
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(enc, uint64(n))
		if err != nil {
			b.Fatal(err)
		}
		// All: the bare decode.
		b.Run(fmt.Sprintf("n=%d/L=%d/all", n, L), func(b *testing.B) {
			var x uint64
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := threadCPU()
			for b.Loop() {
				for v := range s.All() {
					x ^= v.Lo
				}
			}
			sink = x
			rate(b, uint64(s.Len()), start)
			reportSize(b, len(enc), s.Len(), L)
		})
		// Open: length and digest checks plus one full decode.
		b.Run(fmt.Sprintf("n=%d/L=%d/open", n, L), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := threadCPU()
			for b.Loop() {
				if _, err := Open(enc, uint64(n)); err != nil {
					b.Fatal(err)
				}
			}
			rate(b, uint64(s.Len()), start)
		})
		// Reader: streaming from an io.Reader with digest at the end.
		b.Run(fmt.Sprintf("n=%d/L=%d/reader", n, L), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := threadCPU()
			for b.Loop() {
				if err := drain(bytes.NewReader(enc), uint64(n)); err != nil {
					b.Fatal(err)
				}
			}
			rate(b, uint64(s.Len()), start)
		})
		// Match: 1000 client queries merge-joined against the set.
		b.Run(fmt.Sprintf("n=%d/L=%d/match1000", n, L), func(b *testing.B) {
			qs := randValues(rand.New(rand.NewPCG(3, 3)), 1000, L)
			qs[0] = mask(L) // forces a full decode
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := threadCPU()
			for b.Loop() {
				s.Match(qs)
			}
			rate(b, uint64(s.Len()), start)
		})
	}
}

var sink uint64

// TestDeflateDoesNotHelp records why the format does not add a general-purpose
// compressor: the body is within a fraction of a percent of the entropy
// bound, so DEFLATE (the same LZ77+Huffman family as klauspost/compress's
// flate and zstd) can only add framing.
func TestDeflateDoesNotHelp(t *testing.T) {
	const n = 1 << 16
	L := Bits(1<<24, n)
	enc, err := Encode(randValues(rand.New(rand.NewPCG(4, 4)), n, L), L)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(enc)
	w.Close()
	t.Logf("n=%d L=%d: encoded %d bytes, deflated %d bytes (%.4f×)", n, L, len(enc), buf.Len(), float64(buf.Len())/float64(len(enc)))
	if buf.Len() < len(enc) {
		t.Errorf("DEFLATE shrank the encoding from %d to %d bytes", len(enc), buf.Len())
	}
}
