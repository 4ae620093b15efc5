package decompress

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/psimatch/psimatch/psi/customers"
)

const sample = "user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\n"

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zst(t *testing.T, data []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(data, nil)
}

// big is a few MiB of varied lines, so the streams span many blocks.
func big() []byte {
	var b bytes.Buffer
	for i := range 200_000 {
		b.WriteString("u")
		b.WriteString(strings.Repeat("x", i%17))
		b.WriteString(",email,someone@example.com,advertising,false\n")
	}
	return b.Bytes()
}

func TestPlainGzipZstdReadTheSame(t *testing.T) {
	for _, data := range [][]byte{[]byte(sample), big(), {}, {0x1f}, {0x28, 0xb5}} {
		inputs := map[string][]byte{"plain": data, "gzip": gz(t, data), "zstd": zst(t, data),
			"gzip, two members": append(gz(t, data[:len(data)/2]), gz(t, data[len(data)/2:])...)}
		for name, in := range inputs {
			got, err := io.ReadAll(Reader(bytes.NewReader(in), "f"))
			if err != nil {
				t.Fatalf("%s of %d bytes: %v", name, len(data), err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s of %d bytes: read %d bytes that differ", name, len(data), len(got))
			}
		}
	}
}

func TestCorruptStreamsNameTheFile(t *testing.T) {
	data := big()
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 0x55; return b }
	for name, in := range map[string][]byte{
		"gzip flipped":   flip(gz(t, data)),
		"gzip truncated": gz(t, data)[:1000],
		"zstd flipped":   flip(zst(t, data)),
		"zstd truncated": zst(t, data)[:1000],
		"gzip header":    {0x1f, 0x8b, 0, 0},
	} {
		_, err := io.ReadAll(Reader(bytes.NewReader(in), "/data/customers.csv.gz"))
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "/data/customers.csv.gz") {
			t.Errorf("%s: error %v, want ErrCorrupt naming the file", name, err)
		}
		if strings.Contains(fmtErr(err), "someone@example.com") {
			t.Errorf("%s: the error shows content", name)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestTrimExt(t *testing.T) {
	for in, want := range map[string]string{"a.csv.gz": "a.csv", "a.jsonl.ZST": "a.jsonl", "a.csv": "a.csv", ".gz": ".gz", "x.zstd": "x"} {
		if got := TrimExt(in); got != want {
			t.Errorf("TrimExt(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCustomerListsReadTheSame: an advertiser's list read through Reader
// gives the same list plain, gzip- and zstd-compressed.
func TestCustomerListsReadTheSame(t *testing.T) {
	list := []byte("email,phone\nA@Example.com,+14155550100\nb@example.com,\n,+14155550101\n")
	var want *customers.List
	for name, in := range map[string][]byte{"plain": list, "gzip": gz(t, list), "zstd": zst(t, list)} {
		got, err := customers.Read(Reader(bytes.NewReader(in), name), customers.Options{Name: name}, func(e *customers.LineError) { t.Error(e) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want == nil {
			want = got
		} else if !reflect.DeepEqual(got.Inputs, want.Inputs) || got.Rows != want.Rows {
			t.Fatalf("%s: the list differs", name)
		}
	}
}
