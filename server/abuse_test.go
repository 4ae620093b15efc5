package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// TestRefusalFloodBoundsAuditLog: 3,000 refused session requests, each
// with a 4 KB random mode string, grow the audit log by less than 256 KiB
// and put none of the client's strings in it; past the allowance they are
// answered 429 refusals_limited, and one summary line counts them.
func TestRefusalFloodBoundsAuditLog(t *testing.T) {
	f := newFixture(t, false)
	h := f.srv.Handler()
	path := f.store.AuditPath()
	before, _ := os.Stat(path)
	var modes []string
	statuses := map[string]int{}
	for range 3000 {
		b := make([]byte, 3072)
		rand.Read(b)
		mode := base64.StdEncoding.EncodeToString(b) // 4,096 characters
		modes = append(modes, mode)
		body, _ := json.Marshal(map[string]any{"mode": mode, "elements": map[string]int{"email": 100}})
		rec := do(h, f.tokens["counter"], "POST", protocol.PathSessions, body, nil)
		var er protocol.ErrorResponse
		json.Unmarshal(rec.Body.Bytes(), &er)
		statuses[fmt.Sprint(rec.Code, " ", er.Reason)]++
	}
	f.srv.Close() // writes the window's summary
	if statuses["400 bad_mode"] != 20 || statuses["429 refusals_limited"] != 2980 {
		t.Fatalf("answers: %v, want 20 bad_mode then 2980 refusals_limited", statuses)
	}
	after, _ := os.Stat(path)
	growth := after.Size() - before.Size()
	t.Logf("3000 refusals grew the audit log by %d bytes", growth)
	if growth >= 256<<10 {
		t.Fatalf("the audit log grew %d bytes, want < 256 KiB", growth)
	}
	raw, _ := os.ReadFile(path)
	for _, m := range modes {
		if bytes.Contains(raw, []byte(m[:16])) {
			t.Fatal("a client's mode string is in the audit log")
		}
	}
	lines, err := audit.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	var summary map[string]any
	for _, l := range lines {
		if l["event"] == "refusals_suppressed" {
			summary = l
		}
	}
	if summary == nil || summary["refusals"] != float64(2980) || summary["advertiser"] != "counter" {
		t.Fatalf("summary line: %v", summary)
	}
	// The advertiser's valid requests are still served.
	rec := do(h, f.tokens["counter"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":100}}`), nil)
	if rec.Code != 201 {
		t.Fatalf("a valid session after the flood: %d %s", rec.Code, rec.Body)
	}
}

// TestRevokeAndReload: a revoked token gets 401 after ReloadAdvertisers and
// after the reload interval's check, with no restart; changed limits apply
// to the next session.
func TestRevokeAndReload(t *testing.T) {
	f := newFixture(t, false)
	h := f.srv.Handler()
	open := func(name string) int {
		return do(h, f.tokens[name], "POST", protocol.PathSessions, []byte(`{"mode":"members","elements":{"email":100}}`), nil).Code
	}
	if c := open("member"); c != 201 {
		t.Fatalf("before: %d", c)
	}
	if err := advertisers.Revoke(f.cfg.Advertisers, "member"); err != nil {
		t.Fatal(err)
	}
	if c := open("member"); c != 201 {
		t.Fatalf("revoked but not reloaded yet: %d", c)
	}
	if err := f.srv.ReloadAdvertisers(); err != nil {
		t.Fatal(err)
	}
	if c := open("member"); c != 401 {
		t.Fatalf("revoked token after the reload: %d, want 401", c)
	}
	// The interval's check sees the file change.
	tok, err := advertisers.RotateToken(f.cfg.Advertisers, "member")
	if err != nil {
		t.Fatal(err)
	}
	old := f.tokens["member"]
	f.tokens["member"] = tok
	f.srv.reloadAdvertisersIfChanged()
	if c := open("member"); c != 201 {
		t.Fatalf("rotated token after the interval's check: %d", c)
	}
	if c := do(h, old, "POST", protocol.PathSessions, []byte(`{}`), nil).Code; c != 401 {
		t.Fatalf("the old token after rotation: %d", c)
	}
	advertisers.Update(f.cfg.Advertisers, "member", func(a *advertisers.Advertiser) { a.Modes = []psi.Mode{psi.ModeCount} })
	f.srv.reloadAdvertisersIfChanged()
	if c := open("member"); c != 403 {
		t.Fatalf("members mode after it was taken away: %d, want 403", c)
	}
}

// TestQuotaElementsCostsNoSession: a session refused for its elements does
// not use one of the day's sessions.
func TestQuotaElementsCostsNoSession(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("small", psi.ModeCount)
	advertisers.Update(f.cfg.Advertisers, "small", func(a *advertisers.Advertiser) { a.SessionsPerDay, a.ElementsPerEpoch = 1, 100 })
	f.srv.ReloadAdvertisers()
	h := f.srv.Handler()
	for range 5 {
		rec := do(h, f.tokens["small"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":101}}`), nil)
		if rec.Code != 429 || !strings.Contains(rec.Body.String(), "quota_elements") {
			t.Fatalf("over the element budget: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := do(h, f.tokens["small"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":100}}`), nil); rec.Code != 201 {
		t.Fatalf("the day's only session after element refusals: %d %s", rec.Code, rec.Body)
	}
}

// blockingBody is a request body that blocks until released, so a test
// holds evaluations in flight.
type blockingBody struct {
	data    []byte
	release chan struct{}
	read    chan struct{}
	once    sync.Once
}

func (b *blockingBody) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.read) })
	<-b.release
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// TestEvaluationsInFlight: an advertiser's fifth concurrent evaluation is
// refused 429 before its body is read; the others complete.
func TestEvaluationsInFlight(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("busy", psi.ModeCount)
	h := f.srv.Handler()
	rec := do(h, f.tokens["busy"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":50}}`), nil)
	var s protocol.SessionResponse
	json.Unmarshal(rec.Body.Bytes(), &s)
	path := protocol.PathSession + s.ID + "/evaluate?kind=email"
	release := make(chan struct{})
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range 4 {
		b := &blockingBody{data: blinded(t, false, 10), release: release, read: make(chan struct{})}
		req := httptest.NewRequest("POST", path, b)
		req.Header.Set("Authorization", "Bearer "+f.tokens["busy"])
		req.Header.Set(protocol.HeaderElements, "10")
		req.ContentLength = -1
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes[i] = rec.Code
		}()
		<-b.read // the handler holds its slot and waits for the body
	}
	rec = do(h, f.tokens["busy"], "POST", path, blinded(t, false, 10), elements(10))
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "too_many_in_flight") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("fifth evaluation in flight: %d %s", rec.Code, rec.Body)
	}
	// Another advertiser is not affected.
	rec = do(h, f.tokens["member"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":10}}`), nil)
	if rec.Code != 201 {
		t.Fatalf("another advertiser: %d", rec.Code)
	}
	close(release)
	wg.Wait()
	if fmt.Sprint(codes) != "[200 200 200 200]" {
		t.Fatalf("the four in flight: %v", codes)
	}
	// The refused one reserved nothing: the last 10 still go.
	if rec := do(h, f.tokens["busy"], "POST", path, blinded(t, false, 10), elements(10)); rec.Code != 200 {
		t.Fatalf("the session's last 10: %d %s", rec.Code, rec.Body)
	}
}
