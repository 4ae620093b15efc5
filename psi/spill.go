package psi

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"unsafe"

	"github.com/psimatch/psimatch/psi/setcodec"
)

// The set build partitions the 128-bit prefixes of its two sets (count and
// members) by their top spillBucketBits bits into buckets. A bucket's
// prefixes gather in memory spillChunk at a time; a full chunk is appended
// to one temporary file and the bucket remembers the chunk's number. Once
// every identifier is evaluated, the buckets are read back in order, and
// each is truncated, sorted and coded: truncation keeps the top bits, so the
// buckets in order are the sorted set, and setcodec.Encoder codes it run by
// run.
//
// Memory, whatever the inventory: the chunks being filled (at most
// 2 · 2^spillBucketBits · spillChunk · 16 bytes = 2 MiB), one bucket being
// coded (n · 32 / 2^spillBucketBits bytes, prefixes and their truncations:
// 1.25 MiB per 10^7 identifiers) and the chunk numbers (4 bytes per chunk:
// 2 bytes per 1024 identifiers), besides the coded sets themselves. The
// file holds 32 bytes per identifier.
var (
	spillBucketBits uint = 8
	spillChunk           = 256 // prefixes per chunk (4 KiB)
)

// createSpillFile makes the spill file (a variable so a test can hand the
// build a file that fails).
var createSpillFile = func(dir string) (*os.File, error) {
	return os.CreateTemp(dir, ".psimatch-build-*.spill")
}

// spill is the partition of one set build's prefixes. It is used from one
// goroutine.
type spill struct {
	dir    string
	f      *os.File
	remove string // the file's name if it could not be removed while open
	bits   uint
	chunk  int
	fill   [2][][]Prefix // [set][bucket]: the chunk being filled
	chunks [2][][]uint32 // [set][bucket]: numbers of the bucket's full chunks
	next   uint32        // number of the next chunk in the file
	n      int           // prefixes per set
}

// newSpill creates the spill file in dir (os.TempDir if empty). The file is
// unlinked at once where the system allows it, so a killed process leaves
// nothing behind.
func newSpill(dir string) (*spill, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := createSpillFile(dir)
	if err != nil {
		return nil, fmt.Errorf("psi: creating the set build's spill file in %s: %w (give a writable directory with room for 32 bytes per identifier)", dir, err)
	}
	s := &spill{dir: dir, f: f, bits: spillBucketBits, chunk: spillChunk}
	if os.Remove(f.Name()) != nil {
		s.remove = f.Name()
	}
	for set := range 2 {
		s.fill[set] = make([][]Prefix, 1<<s.bits)
		s.chunks[set] = make([][]uint32, 1<<s.bits)
	}
	return s, nil
}

// Close closes and removes the file.
func (s *spill) Close() error {
	err := s.f.Close()
	if s.remove != "" {
		if rerr := os.Remove(s.remove); err == nil {
			err = rerr
		}
	}
	return err
}

func (s *spill) bucket(p *Prefix) int {
	return int(binary.BigEndian.Uint16(p[:2]) >> (16 - s.bits))
}

// add partitions one batch's prefixes of both sets.
func (s *spill) add(count, members []Prefix) error {
	for set, ps := range [2][]Prefix{count, members} {
		for i := range ps {
			b := s.bucket(&ps[i])
			// append grows a chunk as it fills (a small build stays small).
			s.fill[set][b] = append(s.fill[set][b], ps[i])
			if len(s.fill[set][b]) == s.chunk {
				if err := s.writeChunk(set, b); err != nil {
					return err
				}
			}
		}
	}
	s.n += len(count)
	return nil
}

// writeChunk appends the chunk being filled of bucket b to the file.
func (s *spill) writeChunk(set, b int) error {
	c := s.fill[set][b]
	if _, err := s.f.WriteAt(prefixBytes(c), int64(s.next)*int64(s.chunk)*PrefixSize); err != nil {
		return fmt.Errorf("psi: spilling the set build to %s: %w (give a writable directory with room for 32 bytes per identifier)", s.dir, err)
	}
	s.chunks[set][b] = append(s.chunks[set][b], s.next)
	s.next++
	s.fill[set][b] = c[:0]
	return nil
}

// prefixBytes views ps as bytes (Prefix is a byte array: no padding, no
// byte order).
func prefixBytes(ps []Prefix) []byte {
	if len(ps) == 0 {
		return nil
	}
	return unsafe.Slice(&ps[0][0], len(ps)*PrefixSize)
}

// encode codes set (0 count, 1 members) with values of nbits bits, bucket
// by bucket. distinct is the number of distinct values expected; the
// result's Encoder reports the true number.
func (s *spill) encode(set int, nbits uint, distinct uint64) ([]byte, uint64, error) {
	enc, err := setcodec.NewEncoder(nbits, distinct)
	if err != nil {
		return nil, 0, err
	}
	var buf []Prefix
	var vals []setcodec.Value
	for b := range 1 << s.bits {
		full := len(s.chunks[set][b]) * s.chunk
		tail := s.fill[set][b]
		buf = slices.Grow(buf[:0], full+len(tail))[:full]
		for i, c := range s.chunks[set][b] {
			dst := prefixBytes(buf[i*s.chunk : (i+1)*s.chunk])
			if _, err := s.f.ReadAt(dst, int64(c)*int64(s.chunk)*PrefixSize); err != nil {
				return nil, 0, fmt.Errorf("psi: reading back the set build's spill file in %s: %w", s.dir, err)
			}
		}
		buf = append(buf, tail...)
		vals = slices.Grow(vals[:0], len(buf))[:len(buf)]
		for i := range buf {
			vals[i] = setcodec.Truncate(buf[i][:], nbits)
		}
		slices.SortFunc(vals, setcodec.Value.Compare)
		if err := enc.Add(vals); err != nil {
			return nil, 0, err
		}
	}
	out, err := enc.Finish()
	return out, enc.Len(), err
}
