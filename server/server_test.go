package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
)

// fixture is a real server over TLS on loopback with a synthetic inventory.
type fixture struct {
	t        *testing.T
	dir      string
	cfg      Config
	srv      *Server
	ts       *httptest.Server
	tokens   map[string]string
	truth    synth.Truth
	list     *customers.List
	now      atomic.Pointer[time.Time]
	invPath  string
	auditLog *audit.Log
	store    *store.Dir
}

func newFixture(t *testing.T, verifiable bool) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), tokens: map[string]string{}}
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	f.now.Store(&start)
	syn := synth.Config{Seed: 7, PlatformIDs: 4000, AdvertiserRows: 1200, Overlap: 250, SecurityOnly: 100}
	f.invPath = filepath.Join(f.dir, "inventory.csv")
	var inv, list bytes.Buffer
	if err := synth.WriteInventory(&inv, syn); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.invPath, inv.Bytes(), 0o600)
	var err error
	if f.truth, err = synth.WriteAdvertiser(&list, syn); err != nil {
		t.Fatal(err)
	}
	if f.list, err = customers.Read(&list, customers.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	advPath := filepath.Join(f.dir, "advertisers.json")
	for _, a := range []advertisers.Advertiser{
		{Name: "counter", Modes: []psi.Mode{psi.ModeCount}, MinRows: 10, MaxRows: 100000, SessionsPerDay: 3, ElementsPerEpoch: 1000000},
		{Name: "member", Modes: []psi.Mode{psi.ModeCount, psi.ModeMembers}, MinRows: 10, MaxRows: 100000, SessionsPerDay: 10, ElementsPerEpoch: 1000000},
	} {
		tok, err := advertisers.Add(advPath, a)
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[a.Name] = tok
	}
	suite, _ := psi.SuiteByName("ristretto255", verifiable)
	policy, _ := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	f.store, err = store.Open(filepath.Join(f.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	seed, _, err := f.store.Seed()
	if err != nil {
		t.Fatal(err)
	}
	f.auditLog, err = audit.Open(f.store.AuditPath())
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = Config{
		Suite: suite, Seed: seed, Dir: f.store, Audit: f.auditLog, Advertisers: advPath,
		OpenInventory: func(ctx context.Context) (inventory.Source, func() error, error) {
			file, err := os.Open(f.invPath)
			if err != nil {
				return nil, nil, err
			}
			src, err := inventory.NewSource(file, "inventory.csv", inventory.CSV)
			return src, file.Close, err
		},
		Policy: policy, Rotate: time.Hour, MaxClientRows: 1 << 20, MaxBatch: 500,
		Now: func() time.Time { return *f.now.Load() },
	}
	f.start()
	t.Cleanup(f.close)
	return f
}

func (f *fixture) start() {
	var err error
	if f.srv, err = New(context.Background(), f.cfg); err != nil {
		f.t.Fatal(err)
	}
	f.ts = httptest.NewUnstartedServer(f.srv.Handler())
	f.ts.EnableHTTP2 = true
	f.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are tested on purpose
	f.ts.StartTLS()
}

func (f *fixture) close() {
	if f.ts != nil {
		f.ts.Close()
		f.ts = nil
	}
	if f.auditLog != nil {
		f.auditLog.Close()
		f.auditLog = nil
	}
	if f.store != nil {
		f.store.Close()
		f.store = nil
	}
}

func (f *fixture) client(name string) *protocol.Client {
	return &protocol.Client{Server: f.ts.URL, Token: f.tokens[name], HTTP: f.ts.Client(), CacheDir: filepath.Join(f.dir, "cache-"+name)}
}

func (f *fixture) advance(d time.Duration) {
	n := f.now.Load().Add(d)
	f.now.Store(&n)
}

func TestEndToEndCountAndMembers(t *testing.T) {
	f := newFixture(t, false)
	rep, err := f.client("counter").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeCount})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched.Email != f.truth.OverlapKinds["email"] || rep.Matched.Phone != f.truth.OverlapKinds["phone"] {
		t.Fatalf("count: matched %+v, planted %v (security-only planted: %d)", rep.Matched, f.truth.OverlapKinds, f.truth.SecurityOnly)
	}
	if rep.ServerSetSize != f.truth.Eligible || rep.Sent.Email+rep.Sent.Phone != f.truth.AdvertiserIDs {
		t.Fatalf("report %+v", rep)
	}
	perID := float64(rep.BytesSent) / float64(rep.Sent.Email+rep.Sent.Phone)
	if perID > 40 {
		t.Fatalf("%.1f bytes sent per identifier", perID)
	}
	rep, err = f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers})
	if err != nil {
		t.Fatal(err)
	}
	if rep.MatchedRows == nil || *rep.MatchedRows != f.truth.Overlap {
		t.Fatalf("members: %+v", rep)
	}
	// A second run in the same epoch downloads no set.
	rep2, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers})
	if err != nil || !rep2.SetFromCache || rep2.BytesReceived >= rep.BytesReceived {
		t.Fatalf("second run: cache %v, received %d then %d, err %v", rep2.SetFromCache, rep.BytesReceived, rep2.BytesReceived, err)
	}
	// The audit log records sessions and inventory loads, and no value.
	f.auditLog.Close()
	f.auditLog = nil
	raw, _ := os.ReadFile(f.store.AuditPath())
	for _, s := range []string{`"inventory_load"`, `"session"`, `"evaluate"`} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("audit log has no %s event", s)
		}
	}
	for _, v := range []string{"@example", "+1"} {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("audit log contains %q", v)
		}
	}
}

func TestVerifiableMembers(t *testing.T) {
	f := newFixture(t, true)
	rep, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers})
	if err != nil {
		t.Fatal(err)
	}
	if *rep.MatchedRows != f.truth.Overlap || !rep.Verifiable {
		t.Fatalf("%+v", rep)
	}
	rep, err = f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers, RequireVerifiable: true})
	if err != nil || !rep.Verifiable {
		t.Fatalf("required and given: %v", err)
	}
}

func TestRequireVerifiableRefusesBaseServer(t *testing.T) {
	f := newFixture(t, false)
	_, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers, RequireVerifiable: true})
	if !errors.Is(err, protocol.ErrNotVerifiable) {
		t.Fatalf("got %v", err)
	}
}

func statusOf(err error) (int, string) {
	var se *protocol.StatusError
	if errors.As(err, &se) {
		return se.Status, se.Reason
	}
	return 0, ""
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	bad := f.client("counter")
	bad.Token = "psm_wrong"
	if _, err := bad.Match(ctx, f.list, protocol.MatchOptions{}); !isStatus(err, 401) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := f.client("counter").Match(ctx, f.list, protocol.MatchOptions{Mode: psi.ModeMembers}); !isStatus(err, 403) {
		t.Fatalf("members not allowed: %v", err)
	}
	for i := range 3 { // the quota is 3 sessions a day
		if _, err := f.client("counter").Match(ctx, f.list, protocol.MatchOptions{}); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	_, err := f.client("counter").Match(ctx, f.list, protocol.MatchOptions{})
	var se *protocol.StatusError
	if !errors.As(err, &se) || se.Status != 429 || se.RetryAfter <= 0 || se.RetryAfter > 24*time.Hour {
		t.Fatalf("quota: %v", err)
	}
	// Raw requests: malformed body, unknown session, over-declared batch.
	do := func(method, path, body string) *http.Response {
		req, _ := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.tokens["member"])
		resp, err := f.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := do("POST", protocol.PathSessions, "{not json"); r.StatusCode != 400 {
		t.Fatalf("malformed: %d", r.StatusCode)
	}
	if r := do("POST", protocol.PathSession+"0123/evaluate?kind=email", "x"); r.StatusCode != 404 {
		t.Fatalf("unknown session: %d", r.StatusCode)
	}
	if r := do("POST", protocol.PathSessions, `{"mode":"count","elements":{"email":1}}`); r.StatusCode != 400 {
		t.Fatalf("below min rows: %d", r.StatusCode)
	}
	resp, err := http.Get(f.ts.URL + protocol.PathHealth)
	if err == nil {
		resp.Body.Close()
	}
	// /metrics is not on the API's listener: it has a handler of its own
	// (served on --metrics-listen, loopback by default).
	req, _ := http.NewRequest("GET", f.ts.URL+protocol.PathMetrics, nil)
	mresp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mresp.Body.Close()
	if mresp.StatusCode != 404 {
		t.Fatalf("metrics on the API listener: %d, want 404", mresp.StatusCode)
	}
	mrec := httptest.NewRecorder()
	f.srv.MetricsHandler().ServeHTTP(mrec, httptest.NewRequest("GET", protocol.PathMetrics, nil))
	buf := mrec.Body
	for _, m := range []string{"psimatch_sessions_total", "psimatch_refusals_total{reason=\"unauthorized\"}", "psimatch_set_size", "psimatch_epoch_age_seconds"} {
		if !strings.Contains(buf.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func isStatus(err error, status int) bool {
	s, _ := statusOf(err)
	return s == status
}

// TestRestartKeepsEpoch: a restart on the same data directory reads the
// inventory again and, finding the same eligible set, reuses the ratchet and
// the cached set: same epoch, same digest, same key.
func TestRestartKeepsEpoch(t *testing.T) {
	f := newFixture(t, false)
	epoch := f.srv.Epoch()
	_, digest := f.srv.current.Load().setFor(psi.ModeCount)
	pk := f.srv.current.Load().key.PublicKey()
	f.close()
	var err error
	if f.store, err = store.Open(filepath.Join(f.dir, "data")); err != nil {
		t.Fatal(err)
	}
	f.cfg.Dir = f.store
	f.cfg.Audit = nil
	f.start()
	if f.srv.Epoch() != epoch {
		t.Fatalf("epoch %s, was %s", f.srv.Epoch(), epoch)
	}
	if _, d := f.srv.current.Load().setFor(psi.ModeCount); d != digest {
		t.Fatal("the set changed across a restart")
	}
	if !bytes.Equal(f.srv.current.Load().key.PublicKey(), pk) {
		t.Fatal("the key changed across a restart with the same inventory")
	}
	rep, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{})
	if err != nil || rep.Matched.Email+rep.Matched.Phone != f.truth.Overlap {
		t.Fatalf("after restart: %v %+v", err, rep)
	}
}

// TestRotationMidSession: a session opened before a rotation finishes on
// its own epoch; a new session gets the new epoch.
func TestRotationAndReload(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	c := f.client("member")
	// Open a session by hand, then rotate, then finish it.
	sess, err := c.Open(ctx, psi.ModeCount, protocol.Counts{Email: f.list.Sent(ident.Email)})
	if err != nil {
		t.Fatal(err)
	}
	old := f.srv.Epoch()
	f.advance(time.Hour)
	if err := f.srv.rebuild(ctx, "rotation"); err != nil {
		t.Fatal(err)
	}
	if f.srv.Epoch() == old {
		t.Fatal("no rotation")
	}
	set, _, err := sess.Set(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	inputs := f.list.Inputs.Email
	for lo := 0; lo < len(inputs); lo += sess.Info.MaxBatch {
		found, err := sess.Batch(ctx, set, ident.Email, inputs[lo:min(len(inputs), lo+sess.Info.MaxBatch)])
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range found {
			if x {
				n++
			}
		}
	}
	if n != f.truth.OverlapKinds["email"] {
		t.Fatalf("old-epoch session matched %d, want %d", n, f.truth.OverlapKinds["email"])
	}
	rep, err := c.Match(ctx, f.list, protocol.MatchOptions{})
	if err != nil || rep.Epoch == old || rep.Matched.Email+rep.Matched.Phone != f.truth.Overlap {
		t.Fatalf("new session: %v %+v", err, rep)
	}
	// Reload after opting everyone out: the next session matches nothing.
	raw, _ := os.ReadFile(f.invPath)
	os.WriteFile(f.invPath, bytes.ReplaceAll(raw, []byte(",false\n"), []byte(",true\n")), 0o600)
	if err := f.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err = c.Match(ctx, f.list, protocol.MatchOptions{})
	if err != nil || rep.Matched.Email+rep.Matched.Phone != 0 || rep.ServerSetSize != 0 {
		t.Fatalf("after opt-out reload: %v %+v", err, rep)
	}
}

func TestUnknownAuthority(t *testing.T) {
	f := newFixture(t, false)
	c := f.client("counter")
	c.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	_, err := c.Match(context.Background(), f.list, protocol.MatchOptions{})
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("got %v", err)
	}
}
