package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// smallDisk mounts a tmpfs of size bytes on a new directory and returns
// it, or skips the test where mounting is not permitted.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v); the failing-writer test covers the same path", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestDiskFullSaveSet: a set that does not fit on the disk is refused with
// ENOSPC named in the error; the previous set still loads and no temporary
// file is left.
func TestDiskFullSaveSet(t *testing.T) {
	mnt := smallDisk(t, "64k")
	d, err := Open(filepath.Join(mnt, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	meta := SetMeta{Suite: "ristretto255-SHA512", Size: 1, Bits: 60}
	if err := d.SaveSet("e1", meta, []byte("old count"), []byte("old members")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xa5}, 256<<10)
	err = d.SaveSet("e1", meta, big, big)
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("saving a set larger than the disk: %v", err)
	}
	t.Logf("disk full: %v", err)
	_, count, members, ok, err := d.LoadSet("e1")
	if err != nil || !ok || string(count) != "old count" || string(members) != "old members" {
		t.Fatalf("the previous set after a failed save: ok %v, %v", ok, err)
	}
	if tmp := tempFiles(t, d.setsDir()); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	// The space came back: a set that fits saves.
	if err := d.SaveSet("e2", meta, []byte("c"), []byte("m")); err != nil {
		t.Fatalf("after the failure: %v", err)
	}
	// The seed of a new directory on a full disk: clear error, no seed.
	fill, _ := os.Create(filepath.Join(mnt, "fill"))
	io.Copy(fill, io.LimitReader(zeros{}, 1<<20))
	fill.Close()
	d2, err := Open(filepath.Join(mnt, "data2"))
	if err == nil {
		defer d2.Close()
		if _, _, err := d2.Seed(); err == nil {
			t.Fatal("a seed was written to a full disk")
		}
		if _, err := os.Stat(filepath.Join(mnt, "data2", "seed")); err == nil {
			t.Fatal("a seed file exists after a failed write")
		}
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// TestFailingWriterSaveSet: the same failure anywhere a disk can refuse it
// (the write itself), without needing a mount.
func TestFailingWriterSaveSet(t *testing.T) {
	d := openTemp(t)
	if err := d.SaveSet("e1", SetMeta{Suite: "s"}, []byte("count"), []byte("members")); err != nil {
		t.Fatal(err)
	}
	path := d.setPath("e1")
	before, _ := os.ReadFile(path)
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), 100<<10)) // part of a file reached the disk
		return syscall.ENOSPC
	})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("a refused write: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("the previous set changed")
	}
	if tmp := tempFiles(t, d.setsDir()); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	// A directory that refuses entries (here: sets/ is a file).
	d2 := openTemp(t)
	os.WriteFile(d2.setsDir(), nil, 0o600)
	if err := d2.SaveSet("e1", SetMeta{}, nil, nil); err == nil || !strings.Contains(err.Error(), "store: save set") {
		t.Fatalf("sets/ not a directory: %v", err)
	}
}
