package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// runIn runs psimatch in this process, as `psimatch args...` with stdin,
// and returns its exit status and what it printed.
func runIn(t *testing.T, stdin string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(t.Context(), append([]string{"psimatch"}, args...), strings.NewReader(stdin), &out, &errb)
	return status, out.String(), errb.String()
}

// lineLog is a goroutine-safe standard error that keeps every line written
// and wakes up whoever waits for a line (see waitLine).
type lineLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced on each new line
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns the number of complete lines written so far.
func (l *lineLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// find returns the submatches of the first line from index from on that
// matches re, the index after it, and the channel closed on the next line.
func (l *lineLog) find(re *regexp.Regexp, from int) (m []string, next int, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.lines); i++ {
		if m := re.FindStringSubmatch(l.lines[i]); m != nil {
			return m, i + 1, nil
		}
	}
	return nil, len(l.lines), l.changed
}

// serveRun is `psimatch serve` running in this process through run, in a
// goroutine, on 127.0.0.1:0.
type serveRun struct {
	t      *testing.T
	log    *lineLog
	cancel context.CancelFunc
	done   chan struct{}
	status int // valid once done is closed
	url    string
	cert   string
}

// startServeRun starts `psimatch serve --listen 127.0.0.1:0 --quiet args...`
// in a goroutine. Call ready to wait for it to listen, or exited to wait
// for a failure. Cleanup stops it (as SIGTERM does) and waits for it.
func startServeRun(t *testing.T, args ...string) *serveRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serveRun{t: t, log: newLineLog(), cancel: cancel, done: make(chan struct{})}
	argv := append([]string{"psimatch", "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--quiet"}, args...)
	go func() {
		defer close(s.done)
		s.status = run(ctx, argv, strings.NewReader(""), &bytes.Buffer{}, s.log)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// waitTimeout only bounds how long a broken test hangs before it reports;
// nothing waits for it to pass.
const waitTimeout = 5 * time.Minute

// waitLine waits for a log line from index from on that matches re and
// returns its submatches and the index after it. It fails the test if serve
// exits first.
func (s *serveRun) waitLine(re *regexp.Regexp, from int) ([]string, int) {
	s.t.Helper()
	limit := time.NewTimer(waitTimeout)
	defer limit.Stop()
	for {
		m, next, changed := s.log.find(re, from)
		if m != nil {
			return m, next
		}
		from = next
		select {
		case <-changed:
		case <-s.done:
			if m, next, _ := s.log.find(re, from); m != nil {
				return m, next
			}
			s.t.Fatalf("serve exited with status %d before logging %q:\n%s", s.status, re, s.log)
		case <-limit.C:
			s.t.Fatalf("serve did not log %q:\n%s", re, s.log)
		}
	}
}

// ready waits until the server logs that it is serving and returns its URL.
func (s *serveRun) ready() string {
	s.t.Helper()
	m, _ := s.waitLine(servingRe, 0)
	s.url = m[1]
	if m, _, _ := s.log.find(certRe, 0); m != nil {
		s.cert = m[1]
	}
	return s.url
}

// exited waits for serve to end by itself (a start-up failure) and returns
// its status; a server that starts serving instead fails the test.
func (s *serveRun) exited() int {
	s.t.Helper()
	for from := 0; ; {
		m, next, changed := s.log.find(servingRe, from)
		if m != nil {
			s.t.Fatalf("serve started serving:\n%s", s.log)
		}
		from = next
		select {
		case <-s.done:
			return s.status
		case <-changed:
		}
	}
}

// stop cancels serve's context, as SIGINT or SIGTERM does, and returns its
// exit status.
func (s *serveRun) stop() int {
	s.cancel()
	<-s.done
	return s.status
}

// client returns an HTTP client that trusts the server's self-signed
// certificate.
func (s *serveRun) client(h2 bool) *http.Client {
	s.t.Helper()
	pem, err := os.ReadFile(s.cert)
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		s.t.Fatalf("%s: no certificate", s.cert)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	s.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestRunConcurrently runs different command lines at once, beside a
// running server, and checks each prints and returns what it does alone.
// urfave/cli writes to package variables while it parses (see parseMu);
// .ci/run runs this test under the race detector.
func TestRunConcurrently(t *testing.T) {
	dir := t.TempDir()
	flags := serveFixture(t, dir)
	s := startServeRun(t, flags...)
	s.ready()
	inv := writeInventory(t, "inventory.csv", testInventory)
	type call struct {
		stdin string
		args  []string
	}
	calls := []call{
		{"Alice.Smith+promo@GMAIL.com\nx@y@z\n", []string{"normalize", "--kind", "email"}},
		{"", []string{"version"}},
		{"", []string{"--help"}},
		{"", []string{"advertiser", "--help"}},
		{"", []string{"inventory", "check", "--inventory", inv, "--json"}},
		{"", []string{"match", "--input", filepath.Join(dir, "list.csv"), "--dry-run"}},
		{"", []string{"match", "--no-such-flag"}},
		{"", []string{"nope"}},
		{"", append([]string{"serve", "--suite", "p384"}, flags...)},
	}
	type result struct {
		status         int
		stdout, stderr string
	}
	alone := make([]result, len(calls))
	for i, c := range calls {
		status, out, errOut := runIn(t, c.stdin, c.args...)
		alone[i] = result{status, out, errOut}
	}
	const rounds = 5
	got := make([][rounds]result, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		for r := range rounds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, out, errOut := runIn(t, c.stdin, c.args...)
				got[i][r] = result{status, out, errOut}
			}()
		}
	}
	wg.Wait()
	for i, c := range calls {
		for r := range rounds {
			if got[i][r] != alone[i] {
				t.Errorf("%v at once: %+v\nalone: %+v", c.args, got[i][r], alone[i])
			}
		}
	}
	if status := s.stop(); status != 0 {
		t.Fatalf("serve exited %d:\n%s", status, s.log)
	}
}
