package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
)

// serveFixture writes a small inventory and an advertisers file with one
// advertiser into dir, and returns the serve flags for them.
func serveFixture(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := writeDemoData(filepath.Join(dir, "inv.csv"), filepath.Join(dir, "list.csv"), synth.Config{Seed: 1, PlatformIDs: 200, AdvertiserRows: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := advertisers.Add(filepath.Join(dir, "adv.json"), advertisers.Advertiser{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	return []string{"--inventory", filepath.Join(dir, "inv.csv"), "--data-dir", filepath.Join(dir, "data"), "--advertisers", filepath.Join(dir, "adv.json")}
}

// TestServeSpeaksHTTP2AndHTTP1: `psimatch serve` negotiates HTTP/2 over TLS
// and still answers HTTP/1.1 clients, with its self-signed certificate; a
// cancelled context (what SIGINT and SIGTERM do) stops it with status 0 and
// frees its data directory.
func TestServeSpeaksHTTP2AndHTTP1(t *testing.T) {
	dir := t.TempDir()
	s := startServeRun(t, serveFixture(t, dir)...)
	url := s.ready()
	if !strings.HasPrefix(url, "https://127.0.0.1:") || s.cert != filepath.Join(dir, "data", "tls", "cert.pem") {
		t.Fatalf("serving %s with the certificate %q", url, s.cert)
	}
	for _, h2 := range []bool{true, false} {
		resp, err := s.client(h2).Get(url + protocol.PathHealth)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want || resp.StatusCode != 200 {
			t.Fatalf("h2=%v: %s %d", h2, resp.Proto, resp.StatusCode)
		}
	}
	if status := s.stop(); status != 0 {
		t.Fatalf("serve exited %d after a graceful stop:\n%s", status, s.log)
	}
	d, err := store.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatalf("the data directory is still locked after serve stopped: %v", err)
	}
	d.Close()
}

// TestServeReloadsAdvertisers: with --reload, an advertiser added while the
// server runs is accepted after the next reload, without a restart.
func TestServeReloadsAdvertisers(t *testing.T) {
	dir := t.TempDir()
	s := startServeRun(t, append(serveFixture(t, dir), "--reload", "100ms")...)
	url := s.ready()
	cl := s.client(true)
	openSession := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", url+protocol.PathSessions, strings.NewReader(`{"mode":"count","elements":{"email":10}}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := openSession(advertisers.TokenPrefix + "unknown"); code != http.StatusUnauthorized {
		t.Fatalf("an unknown token: %d", code)
	}

	seen := s.log.count()
	status, out, errOut := runIn(t, "", "advertiser", "add", "--advertisers", filepath.Join(dir, "adv.json"), "--name", "late", "--min-rows", "1", "--modes", "count")
	if status != 0 {
		t.Fatalf("advertiser add: %d\n%s", status, errOut)
	}
	token := strings.TrimSpace(out)
	// A reload that logs its start after the add reads the new file; the
	// loop is sequential, so when the next one starts, that one is done.
	reloading := regexp.MustCompile(`re-reading the inventory and the advertisers`)
	_, next := s.waitLine(reloading, seen)
	s.waitLine(reloading, next)
	if code := openSession(token); code != http.StatusCreated {
		t.Fatalf("the advertiser added at run time: %d after a reload\n%s", code, s.log)
	}
	if status := s.stop(); status != 0 {
		t.Fatalf("serve exited %d:\n%s", status, s.log)
	}
}

// TestServeStartErrors: each start-up failure exits with its status, an
// error line and (where there is one) the hint, and never starts serving.
func TestServeStartErrors(t *testing.T) {
	dir := t.TempDir()
	flags := serveFixture(t, dir)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	junkAdv := filepath.Join(dir, "junk.json")
	os.WriteFile(junkAdv, []byte("{"), 0o600)
	with := func(extra ...string) []string { return append(append([]string{}, flags...), extra...) }
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		want   []string
	}{
		{"bad suite", with("--suite", "p384"), exitUsage, []string{"--suite: want ristretto255 or p256"}},
		{"bad region", with("--default-region", "ZZZ"), exitUsage, []string{`default region "ZZZ"`}},
		{"missing inventory", with("--inventory", filepath.Join(dir, "none.csv")), exitInput,
			[]string{"none.csv", "psimatch: hint: check the path given to --inventory"}},
		{"bad inventory format", with("--inventory-format", "xml"), exitUsage, []string{"--inventory-format: want csv or jsonl"}},
		{"unknown extension", with("--inventory", filepath.Join(dir, "adv.json")), exitUsage, []string{"psimatch: hint: pass --inventory-format"}},
		{"format with a database", with("--inventory", "postgres://u@127.0.0.1:1/db", "--inventory-format", "csv"), exitUsage,
			[]string{"--inventory-format applies to inventory files"}},
		{"junk advertisers", with("--advertisers", junkAdv), exitInput, []string{"psimatch: hint: check --inventory and --advertisers"}},
		{"address in use", with("--listen", busy.Addr().String()), exitUsage, []string{"address already in use", "psimatch: hint: ", "--listen"}},
		{"cert without key", with("--tls-cert", notPEM), exitUsage, []string{"--tls-cert", "--tls-key"}},
		{"bad certificate", with("--tls-cert", notPEM, "--tls-key", notPEM), exitInput, []string{"psimatch: hint: ", "--tls-cert"}},
		{"no data dir", []string{"--inventory", filepath.Join(dir, "inv.csv"), "--advertisers", filepath.Join(dir, "adv.json")}, exitUsage,
			[]string{`Required flag "data-dir" not set`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServeRun(t, tc.args...)
			if status := s.exited(); status != tc.status {
				t.Fatalf("status %d, want %d:\n%s", status, tc.status, s.log)
			}
			log := s.log.String()
			if !strings.Contains(log, "psimatch: error: ") {
				t.Errorf("no error line:\n%s", log)
			}
			for _, w := range tc.want {
				if !strings.Contains(log, w) {
					t.Errorf("stderr lacks %q:\n%s", w, log)
				}
			}
		})
	}
	// The failures left the data directory usable and unlocked.
	d, err := store.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}
