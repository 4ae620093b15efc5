package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// buildBinary builds psimatch once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "psimatch")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBin runs the binary as a user would and returns stdout, stderr and the
// exit status.
func runBin(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestDemoAndPieces runs `psimatch demo --keep DIR` from the built binary,
// then reruns the client by hand against a `psimatch serve` it starts, and
// checks the exit statuses, outputs and files of the failure classes a user
// meets.
func TestDemoAndPieces(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	out, errOut, code := runBin(t, bin, nil, "demo", "--platform", "3000", "--advertiser", "800", "--mode", "members", "--keep", dir)
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"planted overlap: 80 ", "found: 80 ", "security-only platform phones planted in the list: 16; matched: 0", "psimatch serve --inventory"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	var rep protocol.Report
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("report.json: %v", err)
	}
	if rep.Mode != psi.ModeMembers || rep.MatchedRows == nil || *rep.MatchedRows != 80 || rep.Rows != 800 {
		t.Fatalf("report %+v", rep)
	}
	matches, _ := os.ReadFile(filepath.Join(dir, "matches.csv"))
	if lines := strings.Count(string(matches), "\n"); !strings.HasPrefix(string(matches), "row,matched\n") || lines != 81 {
		t.Fatalf("matches.csv has %d lines", lines)
	}

	// Dry run: counts, no server.
	out, _, code = runBin(t, bin, nil, "match", "--input", filepath.Join(dir, "customers.csv"), "--dry-run")
	if code != 0 || !strings.Contains(out, "nothing was sent") || !strings.Contains(out, "rows: 800") {
		t.Fatalf("dry run exit %d:\n%s", code, out)
	}
	// A missing identifier column names --email-column and lists the columns.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("name,mail\nx,y@example.com\n"), 0o600)
	_, errOut, code = runBin(t, bin, nil, "match", "--input", bad, "--dry-run")
	if code != exitInput || !strings.Contains(errOut, "--email-column") || !strings.Contains(errOut, "name, mail") {
		t.Fatalf("missing column exit %d:\n%s", code, errOut)
	}
	// An unreachable server names the URL.
	_, errOut, code = runBin(t, bin, []string{"PSIMATCH_TOKEN=x"}, "match", "--input", filepath.Join(dir, "customers.csv"), "--server", "https://127.0.0.1:1", "--quiet")
	if code != exitNetwork || !strings.Contains(errOut, "https://127.0.0.1:1") {
		t.Fatalf("unreachable exit %d:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing.json")); err == nil {
		t.Fatal("a report was left after a failure")
	}
}

// TestDemoEstimate: the default demo runs estimate mode and sets its answer
// beside the planted overlap; the report has an estimate, no matched count,
// and --matches is refused in estimate mode.
func TestDemoEstimate(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	out, errOut, code := runBin(t, bin, nil, "demo", "--platform", "3000", "--advertiser", "800", "--keep", dir, "--quiet")
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"psimatch estimate match", "about ", "(95%: ", "planted", "estimate mode's answer", "ε = 1.099"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["mode"] != "estimate" || m["estimated_matched"] == nil || m["interval95"] == nil || m["matched"] != nil || m["matched_rows"] != nil {
		t.Fatalf("report.json: %s", raw)
	}
	_, errOut, code = runBin(t, bin, []string{"PSIMATCH_TOKEN=x"}, "match", "--input", filepath.Join(dir, "customers.csv"),
		"--server", "https://127.0.0.1:1", "--matches", filepath.Join(dir, "m.csv"))
	if code != exitUsage || !strings.Contains(errOut, "estimate mode never says which rows matched") {
		t.Fatalf("--matches in estimate mode: exit %d\n%s", code, errOut)
	}
}
