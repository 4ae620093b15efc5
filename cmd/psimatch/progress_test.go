package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// runOnTTY runs psimatch in this process with its standard output and error
// on a pseudo-terminal, as a person at a terminal would see it, and returns
// the exit status and all it printed.
func runOnTTY(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(done) }() // ends with EIO once tty is closed and drained
	status := run(t.Context(), append([]string{"psimatch"}, args...), strings.NewReader(""), tty, tty)
	tty.Close()
	<-done
	return status, out.String()
}

// TestProgressBarsOnlyOnATerminal: on a terminal the demo draws progress
// bars (carriage-return redraws with a step name); with --quiet, or when
// standard error is not a terminal, it draws none.
func TestProgressBarsOnlyOnATerminal(t *testing.T) {
	args := []string{"demo", "--platform", "8000", "--advertiser", "3000", "--mode", "count"}
	status, tty := runOnTTY(t, args...)
	if status != 0 || !strings.Contains(strings.ReplaceAll(tty, "\r\n", "\n"), "\r") || !strings.Contains(tty, "precompute platform set") {
		t.Fatalf("exit %d, no progress bar on a terminal:\n%q", status, tty)
	}
	if !strings.Contains(tty, "found: 300 ") {
		t.Fatalf("demo result missing:\n%s", tty)
	}
	status, quiet := runOnTTY(t, append(args, "--quiet")...)
	if status != 0 || strings.Contains(quiet, "precompute platform set") ||
		strings.Contains(strings.ReplaceAll(quiet, "\r\n", "\n"), "\r") { // the terminal turns \n into \r\n
		t.Fatalf("exit %d, --quiet drew a progress bar:\n%q", status, quiet)
	}
	// Standard error a pipe: a file, but not a terminal.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&errOut, r); close(copied) }()
	var out bytes.Buffer
	code := run(t.Context(), append([]string{"psimatch"}, args...), strings.NewReader(""), &out, w)
	w.Close()
	<-copied
	r.Close()
	if code != 0 || strings.Contains(out.String()+errOut.String(), "\r") || !strings.Contains(out.String(), "found: 300 ") {
		t.Fatalf("progress drawn without a terminal (exit %d):\n%q\n%q", code, out.String(), errOut.String())
	}
}
