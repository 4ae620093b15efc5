package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// TestDemoAndPieces runs `psimatch demo --keep DIR`, then reruns the pieces
// by hand as the demo prints them: `psimatch serve` on the kept data
// directory and `psimatch match` against it. It checks the exit statuses,
// outputs and files of the failure classes a user meets. Everything runs in
// this process through run.
func TestDemoAndPieces(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runIn(t, "", "demo", "--platform", "3000", "--advertiser", "800", "--mode", "members", "--keep", dir)
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
	m := regexp.MustCompile(`--token (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not print the token for the match command:\n%s", out)
	}
	token := m[1]
	customers := filepath.Join(dir, "customers.csv")

	// Dry run: counts, no server.
	code, out, _ = runIn(t, "", "match", "--input", customers, "--dry-run")
	if code != 0 || !strings.Contains(out, "nothing was sent") || !strings.Contains(out, "rows: 800") {
		t.Fatalf("dry run exit %d:\n%s", code, out)
	}
	// A missing identifier column names --email-column and lists the columns.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("name,address\nx,y@example.com\n"), 0o600)
	code, _, errOut = runIn(t, "", "match", "--input", bad, "--dry-run")
	if code != exitInput || !strings.Contains(errOut, "--email-column") || !strings.Contains(errOut, "name, address") {
		t.Fatalf("missing column exit %d:\n%s", code, errOut)
	}
	// An unreachable server names the URL.
	code, _, errOut = runIn(t, "", "match", "--input", customers, "--server", "https://127.0.0.1:1", "--token", "x", "--quiet")
	if code != exitNetwork || !strings.Contains(errOut, "https://127.0.0.1:1") {
		t.Fatalf("unreachable exit %d:\n%s", code, errOut)
	}

	// The server, rerun on the kept data directory, keeps the epoch's set.
	s := startServeRun(t, "--inventory", filepath.Join(dir, "inventory.csv"), "--data-dir", filepath.Join(dir, "data"),
		"--advertisers", filepath.Join(dir, "advertisers.json"))
	url := s.ready()
	base := []string{"match", "--server", url, "--input", customers, "--cache-dir", t.TempDir(), "--quiet"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	ca := filepath.Join(dir, "data", "tls", "cert.pem")
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		want   []string
	}{
		{"no CA", with("--token", token), exitNetwork, []string{"unknown authority", "psimatch: hint: ", "--ca-cert"}},
		{"missing CA file", with("--token", token, "--ca-cert", filepath.Join(dir, "none.pem")), exitInput, []string{"none.pem", "--ca-cert"}},
		{"CA not PEM", with("--token", token, "--ca-cert", customers), exitInput, []string{"no PEM certificate"}},
		{"wrong token", with("--token", "psm_wrong", "--ca-cert", ca), exitAuth, []string{"psimatch: hint: the server refused the token"}},
		{"no token", with("--ca-cert", ca), exitUsage, []string{"--token, --token-file or PSIMATCH_TOKEN is required"}},
		{"no server", []string{"match", "--input", customers}, exitUsage, []string{"--server is required"}},
		{"bad mode", with("--mode", "all"), exitUsage, []string{"--mode: want estimate, count or members"}},
		{"verifiable count", with("--verifiable", "--mode", "count"), exitUsage, []string{"--verifiable needs --mode members"}},
		{"matches in count mode", with("--matches", filepath.Join(dir, "m.csv")), exitUsage, []string{"--matches needs --mode members"}},
		{"bad region", with("--default-region", "ZZZ"), exitUsage, []string{"--default-region"}},
		{"missing input", []string{"match", "--input", filepath.Join(dir, "none.csv"), "--dry-run"}, exitInput, []string{"none.csv", "--input"}},
	} {
		code, out, errOut := runIn(t, "", tc.args...)
		if code != tc.status || out != "" || !strings.HasPrefix(errOut, "psimatch: error: ") {
			t.Errorf("%s: exit %d, want %d\n%s\n%s", tc.name, code, tc.status, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, errOut)
			}
		}
	}

	// The token from the environment, a members match with the matched rows.
	t.Setenv("PSIMATCH_TOKEN", token)
	report := filepath.Join(dir, "again.json")
	code, out, errOut = runIn(t, "", with("--ca-cert", ca, "--mode", "members", "--verifiable", "--report", report, "--matches", report+".csv")...)
	if code != exitProtocol || !strings.Contains(errOut, "serve --verifiable") {
		t.Fatalf("--verifiable against a server without proofs: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(report); err == nil {
		t.Fatal("a refused match left a report")
	}
	code, out, errOut = runIn(t, "", with("--ca-cert", ca, "--mode", "members", "--report", report, "--matches", report+".csv")...)
	if code != 0 || !strings.Contains(out, "rows matched: 80") || !strings.Contains(out, "report written to "+report) {
		t.Fatalf("match against the rerun server: exit %d\n%s\n%s", code, out, errOut)
	}
	var again protocol.Report
	raw, _ = os.ReadFile(report)
	if json.Unmarshal(raw, &again) != nil || again.ServerSetSize != rep.ServerSetSize ||
		again.Matched != rep.Matched || again.MatchedRows == nil || *again.MatchedRows != 80 {
		t.Fatalf("the rerun's report differs from the demo's:\n%s", raw)
	}
	if again2, _ := os.ReadFile(report + ".csv"); string(again2) != string(matches) {
		t.Fatal("the rerun's matched rows differ from the demo's")
	}
	// Unless the epoch changed (midnight UTC) in between, the set came from
	// the data directory the demo left.
	if again.Epoch == rep.Epoch && !strings.Contains(s.log.String(), "epoch set loaded from the data directory") {
		t.Errorf("the rerun server did not load the demo's set:\n%s", s.log)
	}
	if status := s.stop(); status != 0 {
		t.Fatalf("serve exited %d:\n%s", status, s.log)
	}
}

// TestDemoEstimate: the default demo runs estimate mode and sets its answer
// beside the planted overlap; the report has an estimate, no matched count,
// and --matches is refused in estimate mode.
func TestDemoEstimate(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runIn(t, "", "demo", "--platform", "3000", "--advertiser", "800", "--keep", dir, "--quiet")
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
	code, _, errOut = runIn(t, "", "match", "--token", "x", "--input", filepath.Join(dir, "customers.csv"),
		"--server", "https://127.0.0.1:1", "--matches", filepath.Join(dir, "m.csv"))
	if code != exitUsage || !strings.Contains(errOut, "estimate mode never says which rows matched") {
		t.Fatalf("--matches in estimate mode: exit %d\n%s", code, errOut)
	}
}

// TestDemoPointsToNoDeletedFile: without --keep the demo's files are deleted
// when it ends, so its output names none of them as written.
func TestDemoPointsToNoDeletedFile(t *testing.T) {
	code, out, errOut := runIn(t, "", "demo", "--platform", "3000", "--advertiser", "800", "--mode", "members", "--quiet")
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out, "written to") || !strings.Contains(out, "deleted when the demo ends") {
		t.Fatalf("the demo points to a file it deletes:\n%s", out)
	}
	code, out, _ = runIn(t, "", "demo", "--platform", "3000", "--advertiser", "800", "--mode", "members", "--quiet", "--keep", t.TempDir())
	if code != 0 || !strings.Contains(out, "report written to ") || !strings.Contains(out, "matched rows written to ") {
		t.Fatalf("with --keep the files it keeps are named:\n%s", out)
	}
}
