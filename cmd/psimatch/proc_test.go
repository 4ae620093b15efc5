package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// buildBinary builds psimatch for the tests that are about a process (a
// SIGKILL, a terminal); every other test calls run in this process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "psimatch")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
