package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAnchorRoundTrip(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok, err := d.LoadAnchor(); ok || err != nil {
		t.Fatalf("a new directory has an anchor: %v %v", ok, err)
	}
	a := Anchor{Epoch: "20261201T000000Z"}
	for i := range a.Secret {
		a.Secret[i] = byte(i + 1)
	}
	if err := d.SaveAnchor(a); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.LoadAnchor()
	if err != nil || !ok || got != a {
		t.Fatalf("LoadAnchor = %+v, %v, %v", got, ok, err)
	}
	fi, err := os.Stat(filepath.Join(d.Path(), "ratchet"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("anchor file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// The next position replaces the previous one: its secret is gone.
	b := Anchor{Epoch: "20261202T000000Z"}
	b.Secret[0] = 9
	if err := d.SaveAnchor(b); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(d.Path(), "ratchet"))
	if strings.Contains(string(raw), string(a.Secret[:8])) {
		t.Error("the previous secret is still in the anchor file")
	}
	if got, _, _ := d.LoadAnchor(); got != b {
		t.Fatalf("after the second save: %+v", got)
	}
	if err := d.SaveAnchor(Anchor{Epoch: "../x"}); err == nil {
		t.Error("an epoch name with a slash was saved")
	}
}

func TestAnchorDamaged(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.SaveAnchor(Anchor{Epoch: "e1"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.Path(), "ratchet")
	raw, _ := os.ReadFile(path)
	for name, b := range map[string][]byte{
		"flipped": append(append([]byte{}, raw[:12]...), append([]byte{raw[12] ^ 1}, raw[13:]...)...),
		"short":   raw[:len(raw)-1],
		"empty":   {},
		"other":   []byte("not a ratchet file at all, but long enough to be read as one, really"),
	} {
		os.WriteFile(path, b, 0o600)
		if _, ok, err := d.LoadAnchor(); ok || err == nil || !strings.Contains(err.Error(), "restore it from a backup") {
			t.Errorf("%s: %v, %v; want an error saying what to do", name, ok, err)
		}
	}
	os.WriteFile(path, raw, 0o600)
	os.Chmod(path, 0o644)
	if _, _, err := d.LoadAnchor(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable anchor: %v", err)
	}
}

func TestEraseSeed(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.EraseSeed(); err != nil {
		t.Fatalf("erasing a missing seed: %v", err)
	}
	if _, _, err := d.Seed(); err != nil {
		t.Fatal(err)
	}
	if !d.HasSeed() {
		t.Fatal("no seed after Seed")
	}
	if err := d.EraseSeed(); err != nil {
		t.Fatal(err)
	}
	if d.HasSeed() {
		t.Fatal("the seed survived EraseSeed")
	}
}
