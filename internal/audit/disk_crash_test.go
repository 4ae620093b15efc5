package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFullAudit: on a disk that fills up, a line that does not fit is
// refused with ENOSPC and its partial bytes are cut off, so the log keeps
// only whole lines and takes new ones once there is room.
func TestDiskFullAudit(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v); TestDevFullAudit covers a refusing disk", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Write(Event{"event": "before", "n": 1}); err != nil {
		t.Fatal(err)
	}
	// Fill the disk but for a few hundred bytes.
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	for {
		if _, err := fill.Write(buf); err != nil {
			break
		}
	}
	fill.Sync()
	var werr error
	written := 0
	for i := range 1000 {
		if werr = l.Write(Event{"event": "during", "n": i, "pad": strings.Repeat("p", 300)}); werr != nil {
			break
		}
		written++
	}
	if !errors.Is(werr, syscall.ENOSPC) || !strings.Contains(werr.Error(), "audit: write during") {
		t.Fatalf("writing to a full disk: %v", werr)
	}
	t.Logf("full disk after %d more lines: %v", written, werr)
	lines, err := ReadAll(path)
	if err != nil {
		t.Fatalf("the log after a failed write: %v", err)
	}
	if len(lines) != 1+written {
		t.Fatalf("%d lines, want %d", len(lines), 1+written)
	}
	// Room again: the log takes new lines, still whole.
	fill.Close()
	os.Remove(fill.Name())
	if err := l.Write(Event{"event": "after"}); err != nil {
		t.Fatal(err)
	}
	if lines, err = ReadAll(path); err != nil || lines[len(lines)-1]["event"] != "after" {
		t.Fatalf("after freeing space: %v", err)
	}
	// And it reopens without a recovery: nothing was torn.
	l.Close()
	l2, err := Open(path)
	if err != nil || l2.Recovered() != nil {
		t.Fatalf("reopen: %v, recovered %+v", err, l2.Recovered())
	}
	l2.Close()
}

// TestDevFullAudit: a log on a device that refuses every write (/dev/full)
// gives a clear error on each Write and never a panic.
func TestDevFullAudit(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Skipf("opening /dev/full: %v", err)
	}
	defer l.Close()
	err = l.Write(Event{"event": "x"})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to /dev/full: %v", err)
	}
	t.Logf("%v", err)
}
