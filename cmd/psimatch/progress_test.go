package main

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// runInPTY runs the binary with its standard output and error on a
// pseudo-terminal, as a person at a terminal would, and returns all it
// printed.
func runInPTY(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer f.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, f); close(done) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out.String())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return out.String()
}

// TestProgressBarsOnlyOnATerminal: on a terminal the demo draws progress
// bars (carriage-return redraws with a step name); with --quiet, or when
// standard error is not a terminal, it draws none.
func TestProgressBarsOnlyOnATerminal(t *testing.T) {
	bin := buildBinary(t)
	args := []string{"demo", "--platform", "8000", "--advertiser", "3000", "--mode", "count"}
	tty := runInPTY(t, bin, args...)
	if !strings.Contains(tty, "\r") || !strings.Contains(tty, "precompute platform set") {
		t.Fatalf("no progress bar on a terminal:\n%q", tty)
	}
	if !strings.Contains(tty, "found: 300 ") {
		t.Fatalf("demo result missing:\n%s", tty)
	}
	quiet := runInPTY(t, bin, append(args, "--quiet")...)
	if strings.Contains(quiet, "precompute platform set") {
		t.Fatalf("--quiet drew a progress bar:\n%q", quiet)
	}
	out, errOut, code := runBin(t, bin, nil, args...)
	if code != 0 || strings.Contains(out+errOut, "\r") {
		t.Fatalf("progress drawn without a terminal (exit %d):\n%q", code, errOut)
	}
}
