package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// SeedSize is the size of the master seed in bytes.
const SeedSize = 32

// ErrUnsafe is the error of a data directory or secret file that others
// could read or change: owned by another user, or writable by group or
// others.
var ErrUnsafe = errors.New("store: unsafe permissions")

// Dir is an open data directory. It holds the directory's lock until Close.
// Its methods are safe for concurrent use.
type Dir struct {
	path string
	lock *atomicfile.FileLock

	mu sync.Mutex // serializes creating the seed and the certificate
}

// Open opens the data directory at path, creating it with mode 0700 if it is
// missing, and takes its lock (DIR/lock) without waiting: if another process
// holds it, Open fails with an error wrapping atomicfile.ErrLocked that names the lock
// file. It then removes the temporary files a crash may have left in the
// directory and its sets/ and tls/ subdirectories.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("store: empty data directory path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: data directory %s is not a directory", path)
	}
	if err := checkOwner(path, fi, "data directory"); err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("%w: data directory %s has mode %04o, writable by group or others (who could replace the seed, the sets or the state); run 'chmod go-w %s'", ErrUnsafe, path, perm, path)
	}
	lock, err := atomicfile.LockFile(filepath.Join(path, "lock"), false)
	if err != nil {
		if errors.Is(err, atomicfile.ErrLocked) {
			return nil, fmt.Errorf("%w; another psimatch server is using data directory %s", err, path)
		}
		return nil, err
	}
	d := &Dir{path: path, lock: lock}
	for _, sub := range []string{path, d.setsDir(), d.tlsDir()} {
		if _, err := atomicfile.RemoveStaleTemp(sub); err != nil {
			lock.Close()
			return nil, err
		}
	}
	return d, nil
}

// Path returns the directory's path as given to Open.
func (d *Dir) Path() string { return d.path }

// AuditPath returns the path of the audit log in the directory, for
// audit.Open.
func (d *Dir) AuditPath() string { return filepath.Join(d.path, "audit.jsonl") }

// StateFile is the name of the embedded state store's journal in a data
// directory.
const StateFile = "state.jsonl"

// StatePath returns the path of the embedded state store's journal in the
// directory, for state.OpenJournal.
func (d *Dir) StatePath() string { return filepath.Join(d.path, StateFile) }

// Close releases the directory's lock.
func (d *Dir) Close() error { return d.lock.Close() }

func (d *Dir) seedPath() string { return filepath.Join(d.path, "seed") }

// Seed returns the master seed from DIR/seed. On the first call in a new
// directory it creates one from crypto/rand, written atomically with mode
// 0600, and reports created. It refuses a seed file that is not a regular
// file, whose permissions are wider than 0600, or whose size is not SeedSize:
// the error says what to do, because a new seed would silently change every
// epoch's key.
func (d *Dir) Seed() (seed []byte, created bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := d.seedPath()
	seed, err = readSecret(path, SeedSize, "seed")
	if err == nil {
		return seed, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	seed = make([]byte, SeedSize)
	if _, err := io.ReadFull(rand.Reader, seed); err != nil {
		return nil, false, fmt.Errorf("store: seed: %w", err)
	}
	if err := atomicfile.WriteFile(path, seed, 0o600); err != nil {
		return nil, false, err
	}
	return seed, true, nil
}

// readSecret reads a secret file, refusing anything but a regular file
// readable by its owner only and, with size > 0, of exactly size bytes. A
// missing file gives an error wrapping os.ErrNotExist.
func readSecret(path string, size int64, what string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("store: %s file %s is not a regular file; restore it from a backup", what, path)
	}
	if err := checkOwner(path, fi, what+" file"); err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s file %s has mode %04o, readable by others; run 'chmod 600 %s' and consider whether it was exposed", ErrUnsafe, what, path, perm, path)
	}
	if size > 0 && fi.Size() != size {
		return nil, fmt.Errorf("store: %s file %s is %d bytes, want %d; restore it from a backup (a new %s changes every epoch's key)", what, path, fi.Size(), size, what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	if size > 0 && int64(len(b)) != size {
		return nil, fmt.Errorf("store: %s file %s is %d bytes, want %d; restore it from a backup", what, path, len(b), size)
	}
	return b, nil
}

// ReadSecret reads a secret file of the data directory at path (such as
// the estimate root): a regular file owned by this process's user, mode
// 0600 or narrower, of exactly size bytes. A missing file gives an error
// wrapping os.ErrNotExist. what names it in errors.
func (d *Dir) ReadSecret(path string, size int64, what string) ([]byte, error) {
	return readSecret(path, size, what)
}

// ReadSeedFile reads a master seed shared by replicas (psimatch serve
// --seed-file): exactly SeedSize bytes, a regular file owned by this
// process's user with mode 0600 or narrower. Every replica given the same
// file derives the same epoch keys, so any of them can serve any session.
func ReadSeedFile(path string) ([]byte, error) {
	b, err := readSecret(path, SeedSize, "seed")
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: seed file %s does not exist; make one with 'head -c 32 /dev/urandom > %s && chmod 600 %s' and give the same file to every replica", path, path, path)
	}
	return b, err
}
