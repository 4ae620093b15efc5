package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi"
)

// TestMatchHostileServer runs `psimatch match --report F` against a server
// that lies or breaks off: psimatch exits 7 (the peer sent something
// invalid) or 4 (the connection broke), says no result is claimed, and
// leaves no F.
func TestMatchHostileServer(t *testing.T) {
	dir := t.TempDir()
	cfg := synth.Config{Seed: 5, PlatformIDs: 3000, AdvertiserRows: 600}
	var inv, list bytes.Buffer
	synth.WriteInventory(&inv, cfg)
	if _, err := synth.WriteAdvertiser(&list, cfg); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "inventory.csv"), inv.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, "customers.csv"), list.Bytes(), 0o600)
	advPath := filepath.Join(dir, "advertisers.json")
	token, err := advertisers.Add(advPath, advertisers.Advertiser{Name: "a", Modes: []psi.Mode{psi.ModeCount, psi.ModeMembers}, MinRows: 1, SessionsPerDay: 1000})
	if err != nil {
		t.Fatal(err)
	}
	servers := map[bool]*runningServer{}
	for _, verifiable := range []bool{false, true} {
		rs, err := startServer(context.Background(), serveOptions{
			inventory: filepath.Join(dir, "inventory.csv"), dataDir: filepath.Join(dir, "data-"+strconv.FormatBool(verifiable)),
			advertisers: advPath, listen: "127.0.0.1:0", rotate: 24 * time.Hour, suite: "ristretto255",
			verifiable: verifiable, maxClientRows: 1 << 24, quiet: true,
		}, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.shutdown() })
		servers[verifiable] = rs
	}
	const size = 32
	body := func(on string, edit func(b []byte) []byte) func(w http.ResponseWriter, r *http.Request, rec *httptest.ResponseRecorder) {
		return func(w http.ResponseWriter, r *http.Request, rec *httptest.ResponseRecorder) {
			b := rec.Body.Bytes()
			if strings.HasSuffix(r.URL.Path, on) && rec.Code < 300 {
				b = edit(bytes.Clone(b))
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(rec.Code)
			w.Write(b)
		}
	}
	for _, tc := range []struct {
		name       string
		verifiable bool
		mode       string
		fn         func(w http.ResponseWriter, r *http.Request, rec *httptest.ResponseRecorder)
		exit       int
	}{
		{"wrong element count", false, "count", body("/evaluate", func(b []byte) []byte { return b[:len(b)-size] }), exitProtocol},
		{"identity element", false, "count", body("/evaluate", func(b []byte) []byte { clear(b[:size]); return b }), exitProtocol},
		{"malformed set", false, "count", body("/set", func(b []byte) []byte { return b[:len(b)-40] }), exitProtocol},
		{"set digest mismatch", false, "count", body("/sessions", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"set_digest":"`)) + len(`"set_digest":"`)
			b[i] = "10"[min(int(b[i]-'0'), 1)] // another hex digit, same length
			return b
		}), exitProtocol},
		{"bad proof", true, "members", body("/evaluate", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), exitProtocol},
		{"stops mid-stream", false, "count", func(w http.ResponseWriter, r *http.Request, rec *httptest.ResponseRecorder) {
			if !strings.HasSuffix(r.URL.Path, "/evaluate") {
				body("", func(b []byte) []byte { return b })(w, r, rec)
				return
			}
			b := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(200)
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		}, exitNetwork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := servers[tc.verifiable].srv.Handler()
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				inner.ServeHTTP(rec, r)
				tc.fn(w, r, rec)
			}))
			ts.Config.ErrorLog = log.New(io.Discard, "", 0)
			ts.StartTLS()
			defer ts.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)
			report := filepath.Join(t.TempDir(), "report.json")
			args := []string{"match", "--server", ts.URL, "--token", token, "--ca-cert", ca, "--input", filepath.Join(dir, "customers.csv"),
				"--mode", tc.mode, "--report", report, "--cache-dir", t.TempDir(), "--quiet"}
			if tc.mode == "members" {
				args = append(args, "--matches", report+".csv")
			}
			code, out, errOut := runIn(t, "", args...)
			if code != tc.exit {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.exit, out, errOut)
			}
			if !strings.HasPrefix(errOut, "psimatch: error: ") || !strings.Contains(errOut, "psimatch: hint: ") {
				t.Fatalf("stderr is not an error and a hint:\n%s", errOut)
			}
			if tc.exit == exitProtocol && !strings.Contains(errOut, "no result is claimed") {
				t.Fatalf("stderr does not say no result is claimed:\n%s", errOut)
			}
			for _, f := range []string{report, report + ".csv"} {
				if _, err := os.Stat(f); err == nil {
					t.Fatalf("%s was left after a failed match", filepath.Base(f))
				}
			}
			if strings.Contains(out, "matched") {
				t.Fatalf("stdout shows a result:\n%s", out)
			}
			t.Logf("exit %d: %s", code, strings.SplitN(errOut, "\n", 2)[0])
		})
	}
	// The same client against the honest server succeeds.
	ca := filepath.Join(dir, "ca.pem")
	raw, _ := os.ReadFile(servers[false].certFile)
	os.WriteFile(ca, raw, 0o600)
	report := filepath.Join(dir, "ok.json")
	if code, _, errOut := runIn(t, "", "match", "--server", servers[false].url, "--token", token, "--ca-cert", ca, "--mode", "count",
		"--input", filepath.Join(dir, "customers.csv"), "--report", report, "--cache-dir", t.TempDir(), "--quiet"); code != 0 {
		t.Fatalf("honest server: exit %d\n%s", code, errOut)
	}
}
