//go:build !unix

package atomicfile

import (
	"errors"
	"fmt"
	"runtime"
)

// FileLock is an exclusive advisory lock on a lock file. It is not
// implemented on this system.
type FileLock struct{}

// ErrLocked is returned (wrapped) by LockFile without wait (and so by
// store.Open) when another holder has the lock.
var ErrLocked = errors.New("atomicfile: locked by another process")

// LockFile fails on this system: file locking needs flock, so a data
// directory could be shared by two servers unnoticed.
func LockFile(path string, wait bool) (*FileLock, error) {
	return nil, fmt.Errorf("atomicfile: lock %s: file locking is not supported on %s", path, runtime.GOOS)
}

// Close does nothing.
func (l *FileLock) Close() error { return nil }
