package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadAllSized: whatever the expected size, the bytes read are the
// reader's, and a reader's error is returned.
func TestReadAllSized(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, size := range []int64{0, 1, 999, 10000, 10001, 1 << 20} {
		for _, r := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data)), iotest.HalfReader(bytes.NewReader(data))} {
			got, err := readAllSized(r, size)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d: %d bytes, %v", size, len(got), err)
			}
		}
	}
	boom := errors.New("boom")
	for _, size := range []int64{5, 100} {
		if _, err := readAllSized(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(boom)), size); !errors.Is(err, boom) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

// TestReadAllSizedCutShort: a body cut short reports its error, as
// io.ReadAll does, whatever the expected size.
func TestReadAllSizedCutShort(t *testing.T) {
	for _, size := range []int64{0, 5, 100} {
		got, err := readAllSized(io.MultiReader(bytes.NewReader([]byte("0123456789")), iotest.ErrReader(io.ErrUnexpectedEOF)), size)
		if !errors.Is(err, io.ErrUnexpectedEOF) || (size >= 10 && string(got) != "0123456789") {
			t.Fatalf("size %d: %q, %v", size, got, err)
		}
	}
}
