package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadSet: LoadSet on arbitrary set files never panics; it loads the
// file or refuses it with ErrCorruptSet, and what it loads saves and loads
// back the same. With fixSum the fuzzer's bytes get a valid checksum
// appended, so mutations reach the parser behind the checksum.
func FuzzLoadSet(f *testing.F) {
	seedDir := f.TempDir()
	d, err := Open(seedDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, x := range []struct {
		meta           SetMeta
		count, members []byte
	}{
		{SetMeta{Suite: "ristretto255-SHA512", Size: 3, Bits: 60, MaxClientRows: 1 << 20}, []byte("count"), []byte("members")},
		{SetMeta{Suite: "P256-SHA256", Verifiable: true}, nil, nil},
	} {
		if err := d.SaveSet("e1", x.meta, x.count, x.members); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(d.setPath("e1"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b[:len(b)-sha256.Size], true)
		f.Add(b[:len(b)/2], false)
	}
	d.Close()
	f.Add([]byte("PSIMSET\x01\x00\x00\x00\x02{}"), true)
	f.Add([]byte("PSIMSET\x01\xff\xff\xff\xff"), true)
	f.Add([]byte("PSIMSET\x02"), true)
	f.Add([]byte{}, false)

	dir := f.TempDir()
	fd, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fd.Close() })
	os.MkdirAll(fd.setsDir(), 0o700)
	path := fd.setPath("e1")
	f.Fuzz(func(t *testing.T, data []byte, fixSum bool) {
		if fixSum {
			sum := sha256.Sum256(data)
			data = append(bytes.Clone(data), sum[:]...)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		meta, count, members, ok, err := fd.LoadSet("e1")
		if err != nil {
			if ok || !errors.Is(err, ErrCorruptSet) {
				t.Fatalf("ok %v with error %v (not ErrCorruptSet)", ok, err)
			}
			return
		}
		if !ok || meta.Epoch != "e1" {
			t.Fatalf("loaded without ok, or with epoch %q", meta.Epoch)
		}
		// What loads is re-encoded the same way and loads back the same.
		m2, c2, mb2, _, err := parseSetSave(t, meta, count, members)
		if err != nil || m2 != meta || !bytes.Equal(c2, count) || !bytes.Equal(mb2, members) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// parseSetSave saves a set in a scratch directory and parses it back.
func parseSetSave(t *testing.T, meta SetMeta, count, members []byte) (SetMeta, []byte, []byte, bool, error) {
	t.Helper()
	d := &Dir{path: t.TempDir()}
	if err := d.SaveSet(meta.Epoch, meta, count, members); err != nil {
		return SetMeta{}, nil, nil, false, err
	}
	b, err := os.ReadFile(filepath.Join(d.setsDir(), meta.Epoch+setSuffix))
	if err != nil {
		return SetMeta{}, nil, nil, false, err
	}
	m, c, mb, err := parseSet(b)
	return m, c, mb, err == nil, err
}
