//go:build unix

package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUnsafeDataDir: a data directory writable by group or others is
// refused, with the chmod to run.
func TestUnsafeDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	os.Chmod(dir, 0o775)
	if _, err := Open(dir); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Fatalf("group-writable data directory: %v", err)
	}
	os.Chmod(dir, 0o755)
	d, err := Open(dir)
	if err != nil {
		t.Fatalf("a 0755 data directory: %v", err)
	}
	d.Close()
}

// TestSeedFile: a shared seed must be 32 bytes, 0600, owned by the server's
// user.
func TestSeedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed")
	if _, err := ReadSeedFile(path); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
		t.Fatalf("missing seed file: %v", err)
	}
	seed := make([]byte, SeedSize)
	seed[0] = 7
	os.WriteFile(path, seed, 0o644)
	os.Chmod(path, 0o644)
	if _, err := ReadSeedFile(path); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 seed file: %v", err)
	}
	os.Chmod(path, 0o600)
	if got, err := ReadSeedFile(path); err != nil || got[0] != 7 || len(got) != SeedSize {
		t.Fatalf("good seed file: %v", err)
	}
	os.WriteFile(path, seed[:31], 0o600)
	if _, err := ReadSeedFile(path); err == nil || !strings.Contains(err.Error(), "31 bytes, want 32") {
		t.Fatalf("short seed file: %v", err)
	}
	os.Remove(path)
	os.Symlink(filepath.Join(dir, "elsewhere"), path)
	if _, err := ReadSeedFile(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlinked seed file: %v", err)
	}
}

// otherOwner is a FileInfo of a file owned by someone else.
type otherOwner struct{ os.FileInfo }

func (otherOwner) Sys() any { return &syscall.Stat_t{Uid: uint32(os.Geteuid() + 1)} }

func TestCheckOwner(t *testing.T) {
	fi, err := os.Stat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOwner("x", fi, "data directory"); err != nil {
		t.Fatalf("own directory: %v", err)
	}
	if err := checkOwner("/srv/x", otherOwner{fi}, "data directory"); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chown") {
		t.Fatalf("someone else's directory: %v", err)
	}
}
