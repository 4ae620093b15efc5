package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/state/pgtest"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
)

// stateSetup writes an inventory and registers an advertiser with the
// given daily sessions and epoch elements; it returns the serve arguments
// (without --data-dir) and the token.
func stateSetup(t *testing.T, bin, dir string, sessions, elements int) (args []string, token string) {
	t.Helper()
	var ib bytes.Buffer
	if err := synth.WriteInventory(&ib, synth.Config{Seed: 5, PlatformIDs: 4000, AdvertiserRows: 10}); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.csv")
	os.WriteFile(inv, ib.Bytes(), 0o600)
	adv := filepath.Join(dir, "advertisers.json")
	code, out, errOut := runIn(t, "", "advertiser", "add", "--advertisers", adv, "--name", "durable", "--min-rows", "1", "--modes", "count",
		"--sessions-per-day", strconv.Itoa(sessions), "--elements-per-epoch", strconv.Itoa(elements))
	if code != 0 {
		t.Fatalf("advertiser add: %d %s", code, errOut)
	}
	return []string{"--inventory", inv, "--advertisers", adv}, strings.TrimSpace(out)
}

// request sends one API request and returns the status, the reason of an
// error answer and the body.
func (p *serveProc) request(token, method, path string, body io.Reader, header map[string]string) (int, string, []byte) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.url+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.client().Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var er protocol.ErrorResponse
	json.Unmarshal(raw, &er)
	return resp.StatusCode, er.Reason, raw
}

// evaluateN sends n fresh blinded email elements in the session.
func (p *serveProc) evaluateN(token, id string, n int) (int, string) {
	p.t.Helper()
	suite, _ := psi.SuiteByName("ristretto255", false)
	inputs := make([]ident.Input, n)
	for i := range inputs {
		inputs[i][0] = byte(ident.Email)
		rand.Read(inputs[i][1:])
	}
	body, err := psi.NewCountBlinder(suite).Blind(inputs)
	if err != nil {
		p.t.Fatal(err)
	}
	status, reason, _ := p.request(token, "POST", protocol.PathSession+id+"/evaluate?kind=email", bytes.NewReader(body),
		map[string]string{protocol.HeaderElements: strconv.Itoa(n), "Content-Type": protocol.ContentElements})
	return status, reason
}

// waitLog waits until the server's log contains s n times.
func (p *serveProc) waitLog(s string, n int, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(p.logText(), s) < n {
		select {
		case <-p.exited:
			p.t.Fatalf("serve exited waiting for %q:\n%s", s, p.logText())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%q not in the log after %s:\n%s", s, timeout, p.logText())
		}
		time.Sleep(10 * time.Millisecond) // polling the log, not standing in for it
	}
}

// TestServeBudgetSurvivesKill: sessions and elements used before a SIGKILL
// still count after the restart, and a session opened before it goes on
// where it stopped.
func TestServeBudgetSurvivesKill(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	args, token := stateSetup(t, bin, dir, 2, 2500)
	data := filepath.Join(dir, "data")
	args = append(args, "--data-dir", data)
	p := startServe(t, bin, args...)
	p.ready(60 * time.Second)
	a := p.openSession(token, 1000)
	if status, reason := p.evaluateN(token, a.ID, 400); status != 200 {
		t.Fatalf("evaluate: %d %s", status, reason)
	}
	p.openSession(token, 1000)
	p.kill()

	p = startServe(t, bin, args...)
	p.ready(60 * time.Second)
	if status, reason, _ := p.request(token, "POST", protocol.PathSessions, strings.NewReader(`{"mode":"count","elements":{"email":1}}`), nil); status != 429 || reason != "quota_sessions" {
		t.Fatalf("third session after the restart: %d %s, want 429 quota_sessions", status, reason)
	}
	if status, reason := p.evaluateN(token, a.ID, 601); status != 400 || reason != "over_declared" {
		t.Fatalf("601 more in a session with 600 left: %d %s", status, reason)
	}
	if status, reason := p.evaluateN(token, a.ID, 600); status != 200 {
		t.Fatalf("the session's last 600 after the restart: %d %s", status, reason)
	}
	// advertiser list reads the usage while the server runs.
	code, out, errOut := runIn(t, "", "advertiser", "list", "--advertisers", args[3], "--data-dir", data)
	if code != 0 || !regexp.MustCompile(`durable .* active +2/2 +\d{8}T\d{6}Z +2000/2500`).MatchString(out) {
		t.Fatalf("advertiser list: %d\n%s%s", code, out, errOut)
	}
}

// TestServeReplicasShareState: two processes on one PostgreSQL database
// with one seed file: a session opened on one is evaluated on the other,
// and the day's sessions are shared.
func TestServeReplicasShareState(t *testing.T) {
	conn := pgtest.Database(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	args, token := stateSetup(t, bin, dir, 3, 1<<20)
	seed := filepath.Join(dir, "seed")
	b := make([]byte, 32)
	rand.Read(b)
	os.WriteFile(seed, b, 0o644)
	os.Chmod(seed, 0o644)
	bad := startServe(t, bin, append(args, "--data-dir", filepath.Join(dir, "bad"), "--seed-file", seed, "--state", conn)...)
	<-bad.exited
	if !strings.Contains(bad.logText(), "chmod 600") {
		t.Fatalf("a 0644 seed file: %s", bad.logText())
	}
	os.Chmod(seed, 0o600)
	var ps []*serveProc
	for i := range 2 {
		p := startServe(t, bin, append(args, "--data-dir", filepath.Join(dir, fmt.Sprint("data", i)), "--seed-file", seed, "--state", conn)...)
		p.ready(60 * time.Second)
		ps = append(ps, p)
	}
	s := ps[0].openSession(token, 500)
	if status, reason := ps[1].evaluateN(token, s.ID, 300); status != 200 {
		t.Fatalf("evaluate on the other replica: %d %s", status, reason)
	}
	if status, reason := ps[0].evaluateN(token, s.ID, 201); status != 400 || reason != "over_declared" {
		t.Fatalf("201 more on the first replica (200 left): %d %s", status, reason)
	}
	ps[1].openSession(token, 10)
	ps[0].openSession(token, 10)
	for _, p := range ps {
		if status, reason, _ := p.request(token, "POST", protocol.PathSessions, strings.NewReader(`{"mode":"count","elements":{"email":1}}`), nil); status != 429 || reason != "quota_sessions" {
			t.Fatalf("a fourth session (3 a day, shared): %d %s", status, reason)
		}
	}
	code, out, errOut := runIn(t, "", "advertiser", "list", "--advertisers", args[3], "--state", conn)
	if code != 0 || !strings.Contains(out, "3/3") || !strings.Contains(out, "520/1048576") {
		t.Fatalf("advertiser list --state: %d\n%s%s", code, out, errOut)
	}
}

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/PID/status")
	return 0
}

// patternReader yields n bytes without holding them.
type patternReader struct{ n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), r.n))
	for i := range k {
		p[i] = byte(i*7 + 1)
	}
	r.n -= int64(k)
	return k, nil
}

// TestServeBigBodiesBoundedMemory: 16 concurrent 32 MiB bodies on a
// 1,000-element session (with an honest count, an inflated one, none, and
// chunked) keep the server process's peak RSS (VmHWM, read from /proc)
// under 256 MiB, and leave the session's budget whole.
func TestServeBigBodiesBoundedMemory(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	args, token := stateSetup(t, bin, dir, 10, 1<<20)
	p := startServe(t, bin, append(args, "--data-dir", filepath.Join(dir, "data"))...)
	p.ready(60 * time.Second)
	s := p.openSession(token, 1000)
	pid := p.cmd.Process.Pid
	before := vmHWM(t, pid)
	path := protocol.PathSession + s.ID + "/evaluate?kind=email"
	var wg sync.WaitGroup
	statuses := make([]string, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", p.url+path, &patternReader{n: 32 << 20})
			req.Header.Set("Authorization", "Bearer "+token)
			switch i % 4 {
			case 0: // the session's count, a 32 MiB Content-Length
				req.Header.Set(protocol.HeaderElements, "1000")
				req.ContentLength = 32 << 20
			case 1: // the session's count, chunked: read up to 32,000 bytes
				req.Header.Set(protocol.HeaderElements, "1000")
			case 2: // a count to match the body
				req.Header.Set(protocol.HeaderElements, strconv.Itoa(1<<20))
			case 3: // no count
			}
			resp, err := p.client().Do(req)
			if err != nil {
				statuses[i] = "cut: " + err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = strconv.Itoa(resp.StatusCode)
		}()
	}
	wg.Wait()
	after := vmHWM(t, pid)
	t.Logf("server VmHWM %.1f MiB before, %.1f MiB after 16 concurrent 32 MiB bodies; answers %v", float64(before)/(1<<20), float64(after)/(1<<20), statuses)
	for _, st := range statuses {
		if st == "200" {
			t.Fatalf("a 32 MiB body was evaluated: %v", statuses)
		}
	}
	if after >= 256<<20 {
		t.Fatalf("server peak RSS %d MiB, want < 256 MiB", after>>20)
	}
	if status, reason := p.evaluateN(token, s.ID, 1000); status != 200 {
		t.Fatalf("the session's 1000 after the flood: %d %s", status, reason)
	}
}

// TestServeRevokeOnSIGHUP: a revoked token gets 401 after SIGHUP, with no
// restart; /metrics is served on --metrics-listen and not on the API.
func TestServeRevokeOnSIGHUP(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	args, token := stateSetup(t, bin, dir, 10, 1<<20)
	p := startServe(t, bin, append(args, "--data-dir", filepath.Join(dir, "data"))...)
	p.ready(60 * time.Second)
	p.openSession(token, 10)
	if status, _, _ := p.request(token, "GET", protocol.PathMetrics, nil, nil); status != 404 {
		t.Fatalf("/metrics on the API listener: %d, want 404", status)
	}
	m := regexp.MustCompile(`msg=metrics url=(\S+)`).FindStringSubmatch(p.logText())
	if m == nil {
		t.Fatalf("no metrics URL in the log:\n%s", p.logText())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "psimatch_sessions_total") {
		t.Fatalf("metrics listener: %d %.200s", resp.StatusCode, raw)
	}
	if code, _, errOut := runIn(t, "", "advertiser", "revoke", "--advertisers", args[3], "--name", "durable"); code != 0 {
		t.Fatalf("revoke: %d %s", code, errOut)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog("advertisers reloaded", 1, 30*time.Second)
	if status, reason, _ := p.request(token, "POST", protocol.PathSessions, strings.NewReader(`{"mode":"count","elements":{"email":10}}`), nil); status != 401 {
		t.Fatalf("revoked token after SIGHUP: %d %s, want 401", status, reason)
	}
	code, out, errOut := runIn(t, "", "advertiser", "rotate-token", "--advertisers", args[3], "--name", "durable")
	if code != 0 || !strings.HasPrefix(out, "psm_") || strings.Count(out, "\n") != 1 {
		t.Fatalf("rotate-token: %d %q %s", code, out, errOut)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog("advertisers reloaded", 2, 30*time.Second)
	p.openSession(strings.TrimSpace(out), 10)
}
