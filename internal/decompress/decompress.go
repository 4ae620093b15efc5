// Package decompress reads inputs that may be shipped compressed: a gzip or
// zstd stream is recognised by its magic bytes and decoded with
// github.com/klauspost/compress; anything else is passed through as it is.
// Inventories and advertiser lists go through it on every input path,
// files and standard input alike.
package decompress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ErrCorrupt is wrapped by every error of a compressed stream that does not
// decode: corrupt, truncated or over the window limit.
var ErrCorrupt = errors.New("decompress: the compressed input does not decode")

// MaxZstdWindow bounds the memory a zstd stream may ask for (its window):
// 128 MiB, what `zstd --long` uses; streams made with larger windows are
// refused.
const MaxZstdWindow = 128 << 20

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Format names what a stream turned out to be.
type Format string

// The formats Reader recognises.
const (
	Plain Format = "plain"
	Gzip  Format = "gzip"
	Zstd  Format = "zstd"
)

// Reader reads r, decompressing it if it starts with the gzip or zstd magic
// bytes. name (a file's path, or "standard input") is used in errors. The
// format is detected at the first Read, so opening never fails; a stream
// that does not decode gives an error wrapping ErrCorrupt that names the
// input and the format. The decoder's resources are released at the end of
// the stream or at its first error.
func Reader(r io.Reader, name string) io.Reader {
	return &reader{src: bufio.NewReaderSize(r, 64<<10), name: name}
}

type reader struct {
	src    *bufio.Reader
	name   string
	format Format
	dec    io.Reader
	close  func()
	err    error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.dec == nil {
		if err := r.open(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n, err := r.dec.Read(p)
	if err != nil {
		if err != io.EOF && r.format != Plain {
			err = fmt.Errorf("%w: %s: %s stream: %v (is the file complete? check it with `%s -t`)", ErrCorrupt, r.name, r.format, err, r.format)
		}
		r.err = err
		if r.close != nil {
			r.close()
			r.close = nil
		}
	}
	return n, err
}

// open detects the format and makes the decoder.
func (r *reader) open() error {
	head, err := r.src.Peek(4)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		r.format = Gzip
		zr, err := gzip.NewReader(r.src) // reads concatenated members, as gunzip does
		if err != nil {
			return fmt.Errorf("%w: %s: gzip header: %v", ErrCorrupt, r.name, err)
		}
		r.dec, r.close = zr, func() { zr.Close() }
	case bytes.HasPrefix(head, zstdMagic):
		r.format = Zstd
		zr, err := zstd.NewReader(r.src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxZstdWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return fmt.Errorf("%w: %s: zstd: %v", ErrCorrupt, r.name, err)
		}
		r.dec, r.close = zr, zr.Close
	default:
		r.format, r.dec = Plain, r.src
	}
	return nil
}

// TrimExt returns name without a trailing .gz, .gzip, .zst or .zstd, so
// the extension underneath (inventory.csv.gz: .csv) can tell the format.
func TrimExt(name string) string {
	for _, ext := range []string{".gz", ".gzip", ".zst", ".zstd"} {
		if len(name) > len(ext) && strings.EqualFold(name[len(name)-len(ext):], ext) {
			return name[:len(name)-len(ext)]
		}
	}
	return name
}
