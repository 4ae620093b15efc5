//go:build unix

package store

import (
	"fmt"
	"os"
	"syscall"
)

// checkOwner refuses a file or directory that is not owned by the process's
// effective user: another user could have put it there, or could change it.
func checkOwner(path string, fi os.FileInfo, what string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%w: %s %s is owned by uid %d, not by this server's user (uid %d); run 'chown %d %s' or run the server as its owner",
			ErrUnsafe, what, path, st.Uid, uid, uid, path)
	}
	return nil
}
