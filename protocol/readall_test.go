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
