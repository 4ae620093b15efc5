package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/psi"
)

func TestAdvertiserAdd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "advertisers.json")
	status, stdout, stderr := runIn(t, "", "advertiser", "add", "--advertisers", path, "--name", "acme")
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, stderr)
	}
	lines := strings.Split(stdout, "\n")
	if len(lines) != 2 || lines[1] != "" || !strings.HasPrefix(lines[0], advertisers.TokenPrefix) {
		t.Fatalf("stdout is not exactly one token line: %q", stdout)
	}
	token := lines[0]
	if strings.Contains(stderr, token) || !strings.Contains(stderr, "only this once") || !strings.Contains(stderr, "SHA-256") {
		t.Errorf("stderr:\n%s", stderr)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), token) || strings.Contains(string(b), strings.TrimPrefix(token, advertisers.TokenPrefix)) {
		t.Fatal("the registry file holds the token")
	}
	r, err := advertisers.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := r.Authenticate(token)
	if !ok || a.Name != "acme" || psi.JoinModes(a.Modes, ",") != "estimate" || a.MinRows != 1000 || a.MaxRows != 10_000_000 || a.SessionsPerDay != 10 || a.ElementsPerEpoch != 50_000_000 {
		t.Errorf("registered %+v, %v", a, ok)
	}

	status, stdout, stderr = runIn(t, "", "advertiser", "add", "--advertisers", path, "--name", "globex",
		"--modes", "count, members", "--min-rows", "10", "--max-rows", "500", "--sessions-per-day", "3", "--elements-per-epoch", "2000")
	if status != 0 || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("second add: status %d, stdout %q, stderr:\n%s", status, stdout, stderr)
	}

	status, stdout, stderr = runIn(t, "", "advertiser", "list", "--advertisers", path)
	if status != 0 {
		t.Fatalf("list: status %d, stderr:\n%s", status, stderr)
	}
	want := []string{"NAME", "acme", "estimate", "10000000", "50000000", "globex", "count,members", "2000"}
	for _, w := range want {
		if !strings.Contains(stdout, w) {
			t.Errorf("list lacks %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout, a.TokenSHA256) || strings.Contains(stdout, a.TokenSHA256[:16]) {
		t.Errorf("list shows a token hash:\n%s", stdout)
	}
}

func TestAdvertiserErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "advertisers.json")
	if status, _, stderr := runIn(t, "", "advertiser", "add", "--advertisers", path, "--name", "acme"); status != 0 {
		t.Fatal(stderr)
	}
	before, _ := os.ReadFile(path)
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte("{"), 0o600)
	tests := []struct {
		name   string
		args   []string
		status int
		want   string
	}{
		{"duplicate", []string{"add", "--advertisers", path, "--name", "acme"}, exitFailure, "name already registered"},
		{"bad name", []string{"add", "--advertisers", path, "--name", "a/b"}, exitUsage, "character 2"},
		{"bad mode", []string{"add", "--advertisers", path, "--name", "b", "--modes", "all"}, exitUsage, `"all" is not a mode`},
		{"empty modes", []string{"add", "--advertisers", path, "--name", "b", "--modes", ","}, exitUsage, "--modes"},
		{"min > max", []string{"add", "--advertisers", path, "--name", "b", "--min-rows", "10", "--max-rows", "5"}, exitUsage, "min rows 10 exceed max rows 5"},
		{"zero", []string{"add", "--advertisers", path, "--name", "b", "--sessions-per-day", "0"}, exitUsage, "--sessions-per-day must be positive"},
		{"no name", []string{"add", "--advertisers", path}, exitUsage, "name"},
		{"argument", []string{"add", "--advertisers", path, "--name", "b", "extra"}, exitUsage, "no arguments"},
		{"no directory", []string{"add", "--advertisers", filepath.Join(dir, "missing", "a.json"), "--name", "b"}, exitInput, "no such file"},
		{"junk file", []string{"add", "--advertisers", junk, "--name", "b"}, exitInput, junk},
		{"list missing", []string{"list", "--advertisers", filepath.Join(dir, "none.json")}, exitInput, "none.json"},
		{"list junk", []string{"list", "--advertisers", junk}, exitInput, junk},
	}
	for _, tt := range tests {
		status, stdout, stderr := runIn(t, "", append([]string{"advertiser"}, tt.args...)...)
		if tt.name == "no name" {
			stdout = "" // urfave/cli shows the command's help on a missing flag
		}
		if status != tt.status || stdout != "" || !strings.HasPrefix(stderr, "psimatch: error: ") || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: status %d (want %d), stdout %q, stderr:\n%s", tt.name, status, tt.status, stdout, stderr)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("refused adds changed the registry")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
