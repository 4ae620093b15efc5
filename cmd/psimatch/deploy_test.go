package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi"
)

// deploy is a server started in process, as on a machine of its own, with
// an advertiser's token and list.
type deploy struct {
	dir, data, token, list string
	rs                     *runningServer
	port                   string
}

func newDeploy(t *testing.T, o serveOptions) *deploy {
	t.Helper()
	d := &deploy{dir: t.TempDir()}
	cfg := synth.Config{Seed: 17, PlatformIDs: 2000, AdvertiserRows: 300}
	var inv, list bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := synth.WriteAdvertiser(&list, cfg); err != nil {
		t.Fatal(err)
	}
	d.list = filepath.Join(d.dir, "customers.csv")
	os.WriteFile(filepath.Join(d.dir, "inventory.csv"), inv.Bytes(), 0o600)
	os.WriteFile(d.list, list.Bytes(), 0o600)
	adv := filepath.Join(d.dir, "advertisers.json")
	var err error
	d.token, err = advertisers.Add(adv, advertisers.Advertiser{Name: "a", Modes: []psi.Mode{psi.ModeEstimate, psi.ModeCount, psi.ModeMembers}, MinRows: 1, MaxRows: 100000, SessionsPerDay: 1000})
	if err != nil {
		t.Fatal(err)
	}
	d.data = filepath.Join(d.dir, "data")
	o.inventory, o.dataDir, o.advertisers = filepath.Join(d.dir, "inventory.csv"), d.data, adv
	o.rotate, o.suite, o.maxClientRows, o.quiet = 24*time.Hour, "ristretto255", 1<<24, true
	var log bytes.Buffer
	d.rs, err = startServer(context.Background(), o, &log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.rs.shutdown() })
	_, d.port, _ = net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(d.rs.url, "https://"), "http://"))
	if !o.plaintext && !strings.Contains(log.String(), "fingerprint=sha256:") {
		t.Fatalf("serve did not log the certificate's fingerprint:\n%s", log.String())
	}
	return d
}

// fingerprint is the sha256:... serve logged.
func (d *deploy) fingerprint(t *testing.T) string {
	t.Helper()
	c := d.rs.http.TLSConfig.Certificates[0].Certificate[0]
	return fingerprintOf(c)
}

// sessionsInAudit counts the session events in the server's audit log.
func (d *deploy) sessionsInAudit(t *testing.T) int {
	b, err := os.ReadFile(filepath.Join(d.data, "audit.jsonl"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"event":"session"`)
}

// TestRemoteDeployment: a server listening on all interfaces is matched by
// the name localhost and by an address added with --tls-host (127.0.0.2, a
// loopback address on Linux) with --ca-cert, and by --server-fingerprint
// with no CA at all. Only loopback addresses are dialled.
func TestRemoteDeployment(t *testing.T) {
	d := newDeploy(t, serveOptions{listen: "0.0.0.0:0", tlsHosts: []string{"127.0.0.2", "psi.test"}})
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not a loopback address here: %v", err)
	} else {
		ln.Close()
	}
	match := func(server string, trust ...string) (int, string, string) {
		args := append([]string{"match", "--server", server, "--token", d.token, "--input", d.list, "--quiet",
			"--cache-dir", filepath.Join(d.dir, "cache")}, trust...)
		return runIn(t, "", args...)
	}
	for _, c := range []struct {
		name, server string
		trust        []string
	}{
		{"localhost with --ca-cert", "https://localhost:" + d.port, []string{"--ca-cert", d.rs.certFile}},
		{"--tls-host address with --ca-cert", "https://127.0.0.2:" + d.port, []string{"--ca-cert", d.rs.certFile}},
		{"--server-fingerprint", "https://127.0.0.2:" + d.port, []string{"--server-fingerprint", d.fingerprint(t)}},
		{"--server-fingerprint in upper case with colons", "https://127.0.0.1:" + d.port, []string{"--server-fingerprint", "SHA256:" + colons(strings.ToUpper(strings.TrimPrefix(d.fingerprint(t), "sha256:")))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := match(c.server, c.trust...)
			if code != 0 || !strings.Contains(out, "rows read: 300") {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
		})
	}
	t.Run("another fingerprint", func(t *testing.T) {
		other := "sha256:" + strings.Repeat("ab", 32)
		code, _, errs := match("https://127.0.0.1:"+d.port, "--server-fingerprint", other)
		if code != exitNetwork || !strings.Contains(errs, "fingerprint") {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	})
	t.Run("a name the certificate lacks", func(t *testing.T) {
		// 127.0.0.3 is loopback too, but was not given with --tls-host.
		code, _, errs := match("https://127.0.0.3:"+d.port, "--ca-cert", d.rs.certFile)
		if code != exitNetwork || !strings.Contains(errs, "--tls-host 127.0.0.3") {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	})
	t.Run("http to a TLS server", func(t *testing.T) {
		code, _, errs := match("http://127.0.0.1:" + d.port)
		if code != exitNetwork || !strings.Contains(errs, "hint: the server speaks TLS: use --server https://127.0.0.1:"+d.port) {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	})
	t.Run("no scheme", func(t *testing.T) {
		code, _, errs := match("127.0.0.1:"+d.port, "--ca-cert", d.rs.certFile)
		if code != exitUsage || !strings.Contains(errs, "https://HOST:PORT") {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	})
	t.Run("token with CR LF, and --token-file", func(t *testing.T) {
		code, out, errs := runIn(t, "", "match", "--server", "https://localhost:"+d.port, "--token", d.token+"\r\n", "--input", d.list,
			"--quiet", "--ca-cert", d.rs.certFile)
		if code != 0 {
			t.Fatalf("token with CR LF: exit %d\n%s%s", code, out, errs)
		}
		tf := filepath.Join(d.dir, "token")
		os.WriteFile(tf, []byte(d.token+"\r\n"), 0o600)
		code, out, errs = runIn(t, "", "match", "--server", "https://localhost:"+d.port, "--token-file", tf, "--input", d.list,
			"--quiet", "--ca-cert", d.rs.certFile)
		if code != 0 {
			t.Fatalf("--token-file: exit %d\n%s%s", code, out, errs)
		}
		code, _, errs = runIn(t, "", "match", "--server", "https://localhost:"+d.port, "--token", "psm_a\nb", "--input", d.list, "--ca-cert", d.rs.certFile)
		if code != exitUsage || !strings.Contains(errs, "line break") || strings.Contains(errs, "psm_a") {
			t.Fatalf("token with an inner LF: exit %d\n%s", code, errs)
		}
	})
	t.Run("unwritable --report", func(t *testing.T) {
		before := d.sessionsInAudit(t)
		for _, path := range []string{filepath.Join(d.dir, "no-such-dir", "report.json"), d.dir} {
			code, _, errs := match("https://localhost:"+d.port, "--ca-cert", d.rs.certFile, "--report", path)
			if code != exitInput || !strings.Contains(errs, "--report") {
				t.Fatalf("%s: exit %d\n%s", path, code, errs)
			}
		}
		code, _, errs := match("https://localhost:"+d.port, "--ca-cert", d.rs.certFile, "--mode", "members", "--matches", filepath.Join(d.dir, "nope", "m.csv"))
		if code != exitInput || !strings.Contains(errs, "--matches") {
			t.Fatalf("--matches: exit %d\n%s", code, errs)
		}
		if after := d.sessionsInAudit(t); after != before {
			t.Fatalf("%d sessions were opened for runs that could not write their output", after-before)
		}
	})
	t.Run("header-only list", func(t *testing.T) {
		before := d.sessionsInAudit(t)
		p := filepath.Join(d.dir, "header.csv")
		os.WriteFile(p, []byte("email,phone\n"), 0o600)
		code, _, errs := runIn(t, "", "match", "--server", "https://localhost:"+d.port, "--token", d.token, "--input", p, "--ca-cert", d.rs.certFile)
		if code != exitInput || !strings.Contains(errs, "no data rows") || d.sessionsInAudit(t) != before {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	})
	t.Run("row limits", func(t *testing.T) {
		adv := filepath.Join(d.dir, "advertisers.json")
		small, err := advertisers.Add(adv, advertisers.Advertiser{Name: "small", Modes: []psi.Mode{psi.ModeEstimate, psi.ModeCount}, MinRows: 1000, MaxRows: 5000, SessionsPerDay: 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.rs.srv.ReloadAdvertisers(); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runIn(t, "", "match", "--server", "https://localhost:"+d.port, "--token", small, "--input", d.list, "--quiet", "--ca-cert", d.rs.certFile)
		if code != exitInput || !strings.Contains(errs, "minimum is 1000") || !strings.Contains(errs, "hint: the platform sets each advertiser's row limits") {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	})
	t.Run("members with --id-column", func(t *testing.T) {
		p := filepath.Join(d.dir, "matches.csv")
		code, out, errs := match("https://localhost:"+d.port, "--ca-cert", d.rs.certFile, "--mode", "members", "--matches", p, "--id-column", "customer_id")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		b, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if lines[0] != "row,customer_id,matched" || len(lines) < 2 {
			t.Fatalf("matches:\n%s", b)
		}
	})
}

// TestPlaintextServerHint: https:// to a plain-http server exits 4 and says
// the server does not speak TLS; a token sent over http to a loopback
// address draws no warning.
func TestPlaintextServerHint(t *testing.T) {
	d := newDeploy(t, serveOptions{listen: "127.0.0.1:0", plaintext: true})
	code, _, errs := runIn(t, "", "match", "--server", "https://127.0.0.1:"+d.port, "--token", d.token, "--input", d.list, "--quiet")
	if code != exitNetwork || !strings.Contains(errs, "does not speak TLS") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	code, _, errs = runIn(t, "", "match", "--server", "http://127.0.0.1:"+d.port, "--token", d.token, "--input", d.list, "--quiet")
	if code != 0 || strings.Contains(errs, "warning") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
}

// TestPlainHTTPWarning: a token about to travel over plain http to a host
// that is not loopback is warned about (the run then fails to connect:
// the address is reserved for documentation and never dialled for real
// because the list is header-only... so the check stops before).
func TestPlainHTTPWarning(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.csv")
	os.WriteFile(p, []byte("email\n"), 0o600)
	code, _, errs := runIn(t, "", "match", "--server", "http://psi.example.com:8080", "--token", "psm_x", "--input", p)
	if code != exitInput || !strings.Contains(errs, "warning: psi.example.com:8080 is plain http") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
}

// TestListFormatsDryRun: the same list as plain CSV, a spreadsheet export
// (BOM, every field quoted, CRLF, "Email Address"/"Phone Number"), and
// ';'- and tab-separated files dry-runs to identical counts; a wrong
// --email-column exits 3 naming the columns found; --input - reads stdin.
func TestListFormatsDryRun(t *testing.T) {
	dir := t.TempDir()
	rows := [][]string{
		{"id", "email", "phone"},
		{"1", "Alice@Example.com", "+1 415 555 0132"},
		{"2", "bob@example.com", ""},
		{"3", "not-an-email", "+44 20 7946 0018"},
		{"4", "ALICE@example.com", "+1 (415) 555-0132"},
		{"5", "", "+33 1 23 45 67 89"},
	}
	render := func(delim, eol string, quote, bom bool, header []string) string {
		var b strings.Builder
		if bom {
			b.WriteString("\ufeff")
		}
		for i, r := range rows {
			if i == 0 && header != nil {
				r = header
			}
			for j, f := range r {
				if j > 0 {
					b.WriteString(delim)
				}
				if quote {
					f = `"` + f + `"`
				}
				b.WriteString(f)
			}
			b.WriteString(eol)
		}
		return b.String()
	}
	files := map[string]string{
		"plain.csv":       render(",", "\n", false, false, nil),
		"export.csv":      render(",", "\r\n", true, true, []string{"ID", "Email Address", "Phone Number"}),
		"semicolon.csv":   render(";", "\n", false, false, []string{"id", "E-mail", "Mobile"}),
		"tab.tsv":         render("\t", "\n", false, false, []string{"id", "email", "phone"}),
		"spreadsheet.txt": render("\t", "\r\n", true, true, []string{"Customer", "Email Address", "Phone Number"}),
	}
	var want string
	for name, text := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		code, out, errs := runIn(t, "", "match", "--dry-run", "--input", p)
		if code != 0 || !strings.Contains(out, "rows: 5") {
			t.Fatalf("%s: exit %d\n%s%s", name, code, out, errs)
		}
		if want == "" {
			want = out
		} else if out != want {
			t.Errorf("%s:\n%s\nwant\n%s", name, out, want)
		}
	}
	code, out, errs := runIn(t, files["export.csv"], "match", "--dry-run", "--input", "-")
	if code != 0 || out != want {
		t.Errorf("--input -: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = runIn(t, "", "match", "--dry-run", "--input", filepath.Join(dir, "export.csv"), "--email-column", "mail_addr")
	if code != exitInput || !strings.Contains(errs, "found columns ID, Email Address, Phone Number") || !strings.Contains(errs, "--email-column") {
		t.Errorf("wrong --email-column: exit %d\n%s", code, errs)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("email\nx@y.co\na\"b@example.com\n"), 0o600)
	code, _, errs = runIn(t, "", "match", "--dry-run", "--input", bad)
	if code != exitInput || !strings.Contains(errs, "bad.csv: line 3") || strings.Contains(errs, "example") {
		t.Errorf("malformed quote: exit %d\n%s", code, errs)
	}
}

// TestHelpAndRegionHints: `psimatch help match` prints the command's help;
// --default-region UK suggests GB.
func TestHelpAndRegionHints(t *testing.T) {
	code, out, errs := runIn(t, "", "help", "match")
	if code != 0 || !strings.Contains(out, "--server-fingerprint") {
		t.Fatalf("help match: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = runIn(t, "", "match", "--dry-run", "--input", "x.csv", "--default-region", "UK")
	if code != exitUsage || !strings.Contains(errs, "did you mean --default-region GB?") {
		t.Fatalf("--default-region UK: exit %d\n%s", code, errs)
	}
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func fingerprintOf(der []byte) string { return store.Fingerprint(der) }
