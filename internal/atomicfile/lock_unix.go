//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// FileLock is an exclusive advisory lock (flock) on a lock file. It is held
// by an open file description, so it also excludes other FileLocks in the
// same process, and the kernel releases it when the process dies.
type FileLock struct {
	f *os.File
}

// ErrLocked is returned (wrapped) by LockFile without wait (and so by
// store.Open) when another holder has the lock.
var ErrLocked = errors.New("atomicfile: locked by another process")

// LockFile takes an exclusive lock on the file at path, creating it (mode
// 0600) if needed, and writes the process id into it for the error message
// of the next contender. With wait it blocks until the lock is free;
// without, it fails at once with an error wrapping ErrLocked.
func LockFile(path string, wait bool) (*FileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("atomicfile: lock: %w", err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = fmt.Sprintf(" (process %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w%s: %s is held", ErrLocked, holder, path)
		}
		return nil, fmt.Errorf("atomicfile: lock %s: %w", path, err)
	}
	// Best effort: the pid only improves the next contender's message.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &FileLock{f: f}, nil
}

// Close releases the lock. The lock file stays, empty of meaning.
func (l *FileLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("atomicfile: unlock: %w", err)
	}
	return nil
}
