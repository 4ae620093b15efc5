package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func openTemp(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var testMeta = SetMeta{
	Suite:         "ristretto255-SHA512",
	Size:          3,
	Bits:          62,
	MaxClientRows: 10_000_000,
	Verifiable:    true,
}

func TestSetRoundTrip(t *testing.T) {
	d := openTemp(t)
	if _, _, _, ok, err := d.LoadSet("2026-01-01"); ok || err != nil {
		t.Fatalf("missing set: ok %v, %v; want false, nil", ok, err)
	}
	count, members := []byte("count-blob"), bytes.Repeat([]byte{0, 1, 2}, 1000)
	if err := d.SaveSet("2026-01-01", testMeta, count, members); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveSet("2026-01-02", SetMeta{Suite: "P256-SHA256"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	meta, c, m, ok, err := d.LoadSet("2026-01-01")
	if err != nil || !ok {
		t.Fatalf("LoadSet: ok %v, %v", ok, err)
	}
	want := testMeta
	want.Epoch = "2026-01-01"
	if !reflect.DeepEqual(meta, want) || !bytes.Equal(c, count) || !bytes.Equal(m, members) {
		t.Errorf("round trip: meta %+v, count %q, members %d bytes", meta, c, len(m))
	}
	if cap(c) != len(c) {
		t.Errorf("count has spare capacity %d: an append would overwrite members", cap(c)-len(c))
	}
	meta, c, m, ok, err = d.LoadSet("2026-01-02")
	if err != nil || !ok || meta.Suite != "P256-SHA256" || len(c) != 0 || len(m) != 0 {
		t.Errorf("empty set: %+v %q %q %v %v", meta, c, m, ok, err)
	}
	fi, _ := os.Stat(filepath.Join(d.Path(), "sets", "2026-01-01.set"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("set file mode %04o, want 0600", fi.Mode().Perm())
	}

	epochs, err := d.Sets()
	if err != nil || !reflect.DeepEqual(epochs, []string{"2026-01-01", "2026-01-02"}) {
		t.Errorf("Sets: %v, %v", epochs, err)
	}
	if err := d.PruneSets([]string{"2026-01-02", "never-saved"}); err != nil {
		t.Fatal(err)
	}
	if epochs, _ := d.Sets(); !reflect.DeepEqual(epochs, []string{"2026-01-02"}) {
		t.Errorf("after PruneSets: %v", epochs)
	}
}

func TestSetCorruption(t *testing.T) {
	d := openTemp(t)
	if err := d.SaveSet("e", testMeta, []byte("count"), []byte("members")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.Path(), "sets", "e.set")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, _, ok, err := d.LoadSet("e")
		if ok || !errors.Is(err, ErrCorruptSet) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: ok %v, err %v; want ErrCorruptSet naming the file", what, ok, err)
		}
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		check("flipped byte", b)
	}
	for n := range len(good) {
		check("truncated", good[:n])
	}
	check("extended", append(bytes.Clone(good), 0))

	// A valid file under another epoch's name is refused too.
	os.WriteFile(path, good, 0o600)
	os.Rename(path, filepath.Join(d.Path(), "sets", "f.set"))
	if _, _, _, ok, err := d.LoadSet("f"); ok || !errors.Is(err, ErrCorruptSet) {
		t.Errorf("renamed set: ok %v, %v", ok, err)
	}
	// SaveSet replaces a corrupt file.
	os.WriteFile(path, []byte("junk"), 0o600)
	if err := d.SaveSet("e", testMeta, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok, err := d.LoadSet("e"); !ok || err != nil {
		t.Errorf("after SaveSet over junk: ok %v, %v", ok, err)
	}
}

func TestSetEpochNames(t *testing.T) {
	d := openTemp(t)
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".hidden", "a b", "é", strings.Repeat("a", 129)} {
		if err := d.SaveSet(bad, SetMeta{}, nil, nil); err == nil {
			t.Errorf("SaveSet(%q) accepted", bad)
		}
		if _, _, _, _, err := d.LoadSet(bad); err == nil {
			t.Errorf("LoadSet(%q) accepted", bad)
		}
	}
	for _, good := range []string{"e", "2026-05-01T00", "v1.epoch_7", strings.Repeat("a", 128)} {
		if err := ValidEpoch(good); err != nil {
			t.Errorf("ValidEpoch(%q): %v", good, err)
		}
	}
	if err := d.SaveSet("e1", SetMeta{Epoch: "e2"}, nil, nil); err == nil {
		t.Error("SaveSet accepted meta of another epoch")
	}
}

// FuzzParseSet checks that no file content makes the set parser panic, and
// that whatever it accepts is reproduced exactly by SaveSet's encoding.
func FuzzParseSet(f *testing.F) {
	dir := f.TempDir()
	d, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	for i, blobs := range [][2][]byte{{nil, nil}, {[]byte("c"), []byte("members")}} {
		meta := testMeta
		meta.Epoch = "e"
		if i == 0 {
			meta = SetMeta{Epoch: "e"}
		}
		if err := d.SaveSet("e", meta, blobs[0], blobs[1]); err != nil {
			f.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "sets", "e.set"))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		meta, count, members, err := parseSet(b)
		if err != nil {
			// Fix the checksum so that the fuzzer reaches the parser
			// behind it too.
			if len(b) < sha256.Size {
				return
			}
			b = bytes.Clone(b)
			sum := sha256.Sum256(b[:len(b)-sha256.Size])
			copy(b[len(b)-sha256.Size:], sum[:])
			if meta, count, members, err = parseSet(b); err != nil {
				return
			}
		}
		if meta.Epoch == "" || ValidEpoch(meta.Epoch) != nil {
			return
		}
		dd, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer dd.Close()
		if err := dd.SaveSet(meta.Epoch, meta, count, members); err != nil {
			t.Fatal(err)
		}
		again, _ := os.ReadFile(filepath.Join(dd.Path(), "sets", meta.Epoch+".set"))
		_, c2, m2, err := parseSet(again)
		if err != nil || !bytes.Equal(c2, count) || !bytes.Equal(m2, members) {
			t.Fatalf("re-encoded set does not parse back: %v", err)
		}
	})
}
