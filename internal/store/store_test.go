package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// tempFiles lists the temporary files WriteAtomic would leave in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := atomicfile.WriteFile(path, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v; want two", b, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left: %v", tf)
	}

	// A failing writer leaves the old content and no temporary file.
	boom := errors.New("boom")
	err = atomicfile.Write(path, 0o600, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("after a failed write the content is %q, want two", b)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left after a failure: %v", tf)
	}

	// A directory that does not exist is a clear error.
	if err := atomicfile.WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil || !strings.HasPrefix(err.Error(), "atomicfile: ") {
		t.Errorf("missing directory: err %v", err)
	}
}

func TestOpenRemovesStaleTemp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if _, _, err := d.Seed(); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveSet("e1", SetMeta{}, []byte("c"), []byte("m")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := d.SelfSignedCert(nil); err != nil {
		t.Fatal(err)
	}
	d.Close()

	// A crash between CreateTemp and Rename leaves files like these.
	stale := []string{
		filepath.Join(path, ".seed.tmp-123"),
		filepath.Join(path, "sets", ".e2.set.tmp-456"),
		filepath.Join(path, "tls", ".key.pem.tmp-789"),
	}
	for _, s := range stale {
		if err := os.WriteFile(s, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, s := range stale {
		if _, err := os.Stat(s); !os.IsNotExist(err) {
			t.Errorf("%s survived Open: %v", s, err)
		}
	}
	// The real files are untouched.
	if _, created, err := d.Seed(); err != nil || created {
		t.Errorf("seed after reopen: created %v, %v", created, err)
	}
	if _, _, _, ok, err := d.LoadSet("e1"); !ok || err != nil {
		t.Errorf("set after reopen: ok %v, %v", ok, err)
	}
}

func TestOpenLocked(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	if !errors.Is(err, atomicfile.ErrLocked) {
		t.Fatalf("second Open: %v, want atomicfile.ErrLocked", err)
	}
	lock := filepath.Join(path, "lock")
	if !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "another psimatch server") {
		t.Errorf("error does not name the lock %s: %v", lock, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d.Close()
}

// TestLockReleasedOnKill holds the lock in a child process, kills it with
// SIGKILL, and checks that the directory can be opened at once.
func TestLockReleasedOnKill(t *testing.T) {
	if dir := os.Getenv("PSIMATCH_STORE_HOLD"); dir != "" {
		if _, err := Open(dir); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	path := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockReleasedOnKill$")
	cmd.Env = append(os.Environ(), "PSIMATCH_STORE_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, len("locked\n"))
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child did not take the lock: %q, %v", buf, err)
	}
	_, err = Open(path)
	if !errors.Is(err, atomicfile.ErrLocked) {
		t.Fatalf("Open while the child holds the lock: %v", err)
	}
	if !strings.Contains(err.Error(), "process ") {
		t.Errorf("error does not name the holder's pid: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	d, err := Open(path)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	d.Close()
}

func TestSeed(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	seed, created, err := d.Seed()
	if err != nil || !created || len(seed) != SeedSize {
		t.Fatalf("first Seed: %d bytes, created %v, %v", len(seed), created, err)
	}
	if bytes.Equal(seed, make([]byte, SeedSize)) {
		t.Fatal("seed is all zero")
	}
	fi, err := os.Stat(filepath.Join(path, "seed"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := d.Seed()
	if err != nil || created || !bytes.Equal(again, seed) {
		t.Fatalf("second Seed: created %v, equal %v, %v", created, bytes.Equal(again, seed), err)
	}
	d.Close()
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if again, created, err := d.Seed(); err != nil || created || !bytes.Equal(again, seed) {
		t.Fatalf("Seed after reopen: created %v, equal %v, %v", created, bytes.Equal(again, seed), err)
	}
}

func TestSeedRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(path string) error
		want  string
	}{
		{"group readable", func(p string) error { return os.Chmod(p, 0o640) }, "chmod 600"},
		{"world readable", func(p string) error { return os.Chmod(p, 0o644) }, "chmod 600"},
		{"short", func(p string) error { return os.Truncate(p, 16) }, "restore it from a backup"},
		{"long", func(p string) error { return os.WriteFile(p, make([]byte, 33), 0o600) }, "restore it from a backup"},
		{"symlink", func(p string) error {
			os.Rename(p, p+".real")
			return os.Symlink(p+".real", p)
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, _, err := d.Seed(); err != nil {
				t.Fatal(err)
			}
			if err := tt.setup(filepath.Join(d.Path(), "seed")); err != nil {
				t.Fatal(err)
			}
			_, _, err = d.Seed()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
}
