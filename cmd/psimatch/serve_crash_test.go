package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/server"
)

// serveProc is `psimatch serve` running as a child process.
type serveProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    bytes.Buffer
	url    string
	cert   string
	served chan struct{}
	exited chan struct{}
}

var (
	servingRe = regexp.MustCompile(`msg=serving url=(\S+)`)
	certRe    = regexp.MustCompile(`self-signed TLS certificate.*path=(\S+)`)
)

// startServe starts the binary's serve command; it does not wait for it to
// be ready (see ready).
func startServe(t *testing.T, bin string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{t: t, served: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--quiet"}, args...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			if m := certRe.FindStringSubmatch(line); m != nil {
				p.cert = m[1]
			}
			if m := servingRe.FindStringSubmatch(line); m != nil && p.url == "" {
				p.url = m[1]
				close(p.served)
			}
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// ready waits until the server logs its URL.
func (p *serveProc) ready(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.served:
	case <-p.exited:
		p.t.Fatalf("serve exited before serving:\n%s", p.logText())
	case <-time.After(timeout):
		p.t.Fatalf("serve not ready after %s:\n%s", timeout, p.logText())
	}
}

func (p *serveProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *serveProc) isServing() bool {
	select {
	case <-p.served:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the server (by its pid) and waits for it to exit.
func (p *serveProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Errorf("serve did not exit after SIGKILL")
	}
}

// client returns an HTTP client for the server's self-signed certificate.
func (p *serveProc) client() *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the server's own self-signed test certificate
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// openSession opens a count session and returns its answer.
func (p *serveProc) openSession(token string, n int) protocol.SessionResponse {
	p.t.Helper()
	body := fmt.Sprintf(`{"mode":"count","elements":{"email":%d}}`, n)
	req, _ := http.NewRequest("POST", p.url+protocol.PathSessions, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := p.client().Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var s protocol.SessionResponse
	if resp.StatusCode != 201 || json.Unmarshal(raw, &s) != nil {
		p.t.Fatalf("open session: %d %s", resp.StatusCode, raw)
	}
	return s
}

// fifoFeeder writes the inventory into a named pipe each time the server
// opens it, so a test knows exactly when the server is reading it and can
// kill it half way.
type fifoFeeder struct {
	path string
	data []byte
}

// feed waits for the server to open the pipe and writes the first n bytes
// of the inventory (all of it for n < 0). A full write closes the pipe; a
// partial one keeps it open, so the server blocks mid-read, until the
// returned function is called (after the kill: an open writer would let the
// next server read stale bytes).
func (ff *fifoFeeder) feed(t *testing.T, n int, timeout time.Duration) (closePipe func()) {
	t.Helper()
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(ff.path, os.O_WRONLY, 0)
		if err != nil {
			done <- result{nil, err}
			return
		}
		b := ff.data
		if n >= 0 {
			b = b[:n]
		}
		_, err = f.Write(b)
		if n < 0 {
			f.Close()
		}
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("feeding the inventory: %v", r.err)
		}
		return func() { r.f.Close() }
	case <-time.After(timeout):
		t.Fatalf("the server did not read the inventory within %s", timeout)
	}
	return nil
}

// inventoryLink makes link (the path given to --inventory) a symbolic link
// to a regular file holding data, and returns how to point it at the named
// pipe or back at the file. The server reads the inventory two or three
// times per load, which a pipe cannot serve reliably; the pipe is used only
// where a test must catch the server mid-read.
func inventoryLink(t *testing.T, link string, data []byte) (toPipe, toFile func()) {
	t.Helper()
	file, fifo := link+".data", link+".fifo"
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	point := func(target string) {
		tmp := link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	point(file)
	return func() { point(fifo) }, func() { point(file) }
}

// checkDataDir checks what a crash may have left: every line of the audit
// log is a JSON object, and every set file loads (a half-written one may
// only exist as a temporary file, which opening the directory removes).
// It returns the epochs with a set file.
func checkDataDir(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := audit.ReadAll(filepath.Join(dir, "audit.jsonl")); err != nil && !os.IsNotExist(err) {
		t.Fatalf("the audit log after a crash: %v", err)
	}
	d, err := store.Open(dir)
	if err != nil {
		t.Fatalf("the data directory after a crash: %v", err)
	}
	defer d.Close()
	entries, _ := os.ReadDir(filepath.Join(dir, "sets"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("a temporary set file survived opening the directory: %s", e.Name())
		}
	}
	epochs, err := d.Sets()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range epochs {
		if _, _, _, ok, err := d.LoadSet(e); err != nil || !ok {
			t.Fatalf("set of epoch %s after a crash: ok %v, %v", e, ok, err)
		}
	}
	return epochs
}

// crashSetup makes an inventory, a customer list and an advertiser in dir,
// and returns the token and what was planted.
func crashSetup(t *testing.T, dir string, platform int) (token string, inv []byte, truth synth.Truth) {
	t.Helper()
	cfg := synth.Config{Seed: 3, PlatformIDs: platform, AdvertiserRows: 1000}
	var ib, lb bytes.Buffer
	if err := synth.WriteInventory(&ib, cfg); err != nil {
		t.Fatal(err)
	}
	truth, err := synth.WriteAdvertiser(&lb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "customers.csv"), lb.Bytes(), 0o600)
	code, out, errOut := runIn(t, "", "advertiser", "add", "--advertisers", filepath.Join(dir, "advertisers.json"),
		"--name", "crash", "--modes", "count,members", "--min-rows", "1", "--sessions-per-day", "1000")
	if code != 0 {
		t.Fatalf("advertiser add: %d %s", code, errOut)
	}
	return strings.TrimSpace(out), ib.Bytes(), truth
}

// TestServeCrash kills `psimatch serve` with SIGKILL during precompute,
// during a session (mid-upload) and during a rotation, and restarts it on
// the same data directory each time.
func TestServeCrash(t *testing.T) {
	bin := buildBinary(t)
	platform := 40000
	if testing.Short() {
		platform = 8000
	}

	t.Run("precompute and session", func(t *testing.T) {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		token, inv, truth := crashSetup(t, dir, platform)
		link := filepath.Join(dir, "inventory.csv")
		toPipe, toFile := inventoryLink(t, link, inv)
		ff := &fifoFeeder{path: link + ".fifo", data: inv}
		args := []string{"--inventory", link, "--data-dir", data, "--advertisers", filepath.Join(dir, "advertisers.json")}

		// (a) Kill during precompute: half the inventory is read.
		toPipe()
		p := startServe(t, bin, args...)
		closePipe := ff.feed(t, len(inv)/2, 30*time.Second)
		time.Sleep(200 * time.Millisecond)
		if p.isServing() {
			t.Fatal("serving before the inventory was read")
		}
		p.kill()
		closePipe()
		if epochs := checkDataDir(t, data); len(epochs) != 0 {
			t.Fatalf("a set was saved from half an inventory: %v", epochs)
		}

		// Restart: the whole inventory is read (three passes) and the set
		// saved.
		toFile()
		p = startServe(t, bin, args...)
		p.ready(60 * time.Second)
		before := p.openSession(token, 100)
		// The ratchet's anchor has replaced the master seed: a stolen data
		// directory holds only the current epoch's secret.
		if _, err := os.Stat(filepath.Join(data, "seed")); !os.IsNotExist(err) {
			t.Fatalf("the master seed is still in the data directory (%v)", err)
		}
		if _, err := os.Stat(filepath.Join(data, "ratchet")); err != nil {
			t.Fatalf("no ratchet anchor in the data directory: %v", err)
		}

		// (b) Kill during a session, in the middle of an upload.
		sess := p.openSession(token, 1000)
		conn, err := tls.Dial("tcp", strings.TrimPrefix(p.url, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // the server's own test certificate
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s%s/evaluate?kind=email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
			protocol.PathSession, sess.ID, token, 1000*32)
		conn.Write(make([]byte, 500*32)) // half the body
		time.Sleep(100 * time.Millisecond)
		p.kill()
		conn.Close()
		epochs := checkDataDir(t, data)
		if len(epochs) != 1 || epochs[0] != before.Epoch {
			t.Fatalf("sets after the crash: %v, want the epoch %s", epochs, before.Epoch)
		}

		// Restart: the inventory is read again (two passes), and finding the
		// same eligible set, the server keeps the epoch's cached set and key.
		p = startServe(t, bin, args...)
		p.ready(30 * time.Second)
		after := p.openSession(token, 100)
		if now, _, _ := server.EpochID(time.Now(), 24*time.Hour); now == before.Epoch {
			if after.Epoch != before.Epoch || after.SetDigest != before.SetDigest {
				t.Fatalf("after the restart: epoch %s digest %.16s, before %s %.16s", after.Epoch, after.SetDigest, before.Epoch, before.SetDigest)
			}
		}
		if !strings.Contains(p.logText(), "epoch set loaded from the data directory") {
			t.Fatalf("the restart did not use the saved set:\n%s", p.logText())
		}
		// A correct match (run in this process) finds the planted overlap.
		report := filepath.Join(dir, "report.json")
		code, out, errOut := runIn(t, "", "match", "--server", p.url, "--token", token, "--ca-cert", p.cert, "--mode", "count",
			"--input", filepath.Join(dir, "customers.csv"), "--report", report, "--cache-dir", filepath.Join(dir, "cache"), "--quiet")
		if code != 0 {
			t.Fatalf("match after the crashes: %d\n%s\n%s", code, out, errOut)
		}
		var rep protocol.Report
		raw, _ := os.ReadFile(report)
		if json.Unmarshal(raw, &rep) != nil || rep.Matched.Email+rep.Matched.Phone != truth.Overlap {
			t.Fatalf("match after the crashes: %s, planted %d", raw, truth.Overlap)
		}
		p.kill()
		checkDataDir(t, data)
		lines, _ := audit.ReadAll(filepath.Join(data, "audit.jsonl"))
		events := map[string]int{}
		for _, l := range lines {
			events[fmt.Sprint(l["event"])]++
		}
		if events["inventory_load"] < 1 || events["session"] < 3 || events["evaluate"] < 1 {
			t.Fatalf("audit events after the crashes: %v", events)
		}
		t.Logf("audit events kept across 3 kills: %v", events)
	})

	t.Run("rotation", func(t *testing.T) {
		const rotate = 3 * time.Second
		var (
			data, link     string
			args           []string
			toPipe, toFile func()
			ff             *fifoFeeder
			p              *serveProc
			token          string
			first          protocol.SessionResponse
		)
		// The epochs are aligned to the clock: on a slow machine the start
		// may run into the first boundary, and the rotation then reads the
		// file before the test points the inventory at the pipe. That run
		// shows nothing; start again in a fresh directory (the precondition
		// is checked, not timed).
		for attempt := 0; ; attempt++ {
			dir := t.TempDir()
			data = filepath.Join(dir, "data")
			var inv []byte
			token, inv, _ = crashSetup(t, dir, platform)
			link = filepath.Join(dir, "inventory.csv")
			toPipe, toFile = inventoryLink(t, link, inv)
			ff = &fifoFeeder{path: link + ".fifo", data: inv}
			args = []string{"--inventory", link, "--data-dir", data, "--advertisers", filepath.Join(dir, "advertisers.json"), "--rotate", rotate.String()}
			p = startServe(t, bin, args...)
			p.ready(60 * time.Second)
			first = p.openSession(token, 100)
			toPipe()
			// The rotation opens the inventory at the end of first's epoch,
			// never before: if that end is still ahead, it opens the pipe.
			if now, _, _ := server.EpochID(time.Now(), rotate); now == first.Epoch {
				break
			}
			p.kill()
			if attempt == 9 {
				t.Skip("the server never started within one 3s epoch in 10 tries")
			}
		}
		// The rotation opens the inventory at the epoch's end: feed it half
		// and kill the server while it reads.
		closePipe := ff.feed(t, len(ff.data)/2, 2*rotate+30*time.Second)
		time.Sleep(200 * time.Millisecond)
		p.kill()
		closePipe()
		if strings.Contains(p.logText(), "reason=rotation") {
			t.Fatalf("the rotation finished before the kill:\n%s", p.logText())
		}
		epochs := checkDataDir(t, data)
		if len(epochs) != 1 || epochs[0] != first.Epoch {
			t.Fatalf("sets after a crash during rotation: %v, want only %s", epochs, first.Epoch)
		}
		// Restart: it builds the current epoch and serves.
		toFile()
		p = startServe(t, bin, args...)
		p.ready(60 * time.Second)
		s := p.openSession(token, 100)
		if s.Epoch == first.Epoch {
			t.Fatalf("still epoch %s after a rotation period", s.Epoch)
		}
		p.kill()
		checkDataDir(t, data)
	})
}
