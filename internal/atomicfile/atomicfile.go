package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempMarker is part of every temporary file name made by Write: a
// file ".NAME.tmp-RANDOM" in the directory of NAME. RemoveStaleTemp
// recognizes them by it.
const tempMarker = ".tmp-"

// WriteFile replaces the file at path with data, so that after a crash
// at any instant path holds either its old content or data, never a mix. It
// writes a temporary file in the same directory, syncs it, sets perm on it,
// renames it over path and syncs the directory. perm is applied exactly (the
// umask does not narrow it).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile for content produced by a function: write
// gets a buffered writer to the temporary file. If write returns an error,
// path is left untouched, the temporary file is removed and the error is
// returned.
func Write(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := write(bw); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		// The rename happened; only its durability is in doubt.
		return fmt.Errorf("atomicfile: write %s: sync directory: %w", path, err)
	}
	return nil
}

// SyncDir makes a rename or creation in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveStaleTemp removes the temporary files that Write left in dir
// when the process died between creating and renaming them. It must only be
// called while no other process can be writing in dir (hold its lock). It
// returns the names of the files removed.
func RemoveStaleTemp(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") || !strings.Contains(name, tempMarker) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("atomicfile: remove stale temporary file: %w", err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}
