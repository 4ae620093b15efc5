package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/state"
	"github.com/psimatch/psimatch/internal/state/pgtest"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// replicas starts n servers on one PostgreSQL state database with the
// fixture's seed, inventory and advertisers, each with its own store handle
// (its own connection pool) and no set cache: each builds its own set.
func replicas(t *testing.T, f *fixture, conn string, n int) []*Server {
	t.Helper()
	var out []*Server
	for range n {
		st, err := state.OpenPostgres(context.Background(), conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		cfg := f.cfg
		cfg.State, cfg.Dir, cfg.Audit, cfg.SharedSeed = st, nil, nil, true
		srv, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, srv)
	}
	return out
}

// roundRobin is a load balancer: each request goes to the next server.
func roundRobin(srvs []*Server) http.Handler {
	var n atomic.Uint64
	hs := make([]http.Handler, len(srvs))
	for i, s := range srvs {
		hs[i] = s.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs[n.Add(1)%uint64(len(hs))].ServeHTTP(w, r)
	})
}

func do(h http.Handler, token, method, path string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestReplicasSharePostgres: two replicas behind a round-robin balancer on
// one PostgreSQL database serve whole matches (every session opened on one
// and evaluated on both), never grant more than the budget under 32
// concurrent opens split across them, and a replica holding another set
// answers a retryable 503.
func TestReplicasSharePostgres(t *testing.T) {
	conn := pgtest.Database(t)
	f := newFixture(t, false)
	f.addHostile("budget", psi.ModeCount)
	if err := advertisers.Update(f.cfg.Advertisers, "budget", func(a *advertisers.Advertiser) { a.ElementsPerEpoch = 5000 }); err != nil {
		t.Fatal(err)
	}
	srvs := replicas(t, f, conn, 2)
	lb := roundRobin(srvs)

	// A whole match through the balancer: the session is opened on one
	// replica and its set and batches are served by both.
	ts := httptest.NewTLSServer(lb)
	defer ts.Close()
	c := &protocol.Client{Server: ts.URL, Token: f.tokens["member"], HTTP: ts.Client(), CacheDir: filepath.Join(f.dir, "cache-lb")}
	for _, mode := range []psi.Mode{psi.ModeCount, psi.ModeMembers} {
		rep, err := c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: mode})
		if err != nil {
			t.Fatalf("%s match across replicas: %v", mode, err)
		}
		if got := rep.Matched.Email + rep.Matched.Phone; got != f.truth.Overlap {
			t.Fatalf("%s match across replicas: %d matched, planted %d", mode, got, f.truth.Overlap)
		}
	}
	// Explicitly: opened on replica 0, evaluated on replica 1.
	rec := do(srvs[0].Handler(), f.tokens["member"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":10}}`), nil)
	var s protocol.SessionResponse
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &s) != nil {
		t.Fatalf("open on replica 0: %d %s", rec.Code, rec.Body)
	}
	rec = do(srvs[1].Handler(), f.tokens["member"], "POST", protocol.PathSession+s.ID+"/evaluate?kind=email", blinded(t, false, 10), elements(10))
	if rec.Code != 200 || rec.Body.Len() != 320 {
		t.Fatalf("evaluate on replica 1: %d %s", rec.Code, rec.Body)
	}
	rec = do(srvs[0].Handler(), f.tokens["member"], "POST", protocol.PathSession+s.ID+"/evaluate?kind=email", blinded(t, false, 1), elements(1))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "over_declared") {
		t.Fatalf("replica 0 after replica 1 evaluated all 10: %d %s", rec.Code, rec.Body)
	}

	// 32 concurrent opens split across the replicas: exactly the budget.
	race := func(token, body string) (granted int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := do(srvs[i%2].Handler(), token, "POST", protocol.PathSessions, []byte(body), nil)
				mu.Lock()
				defer mu.Unlock()
				switch rec.Code {
				case 201:
					granted++
				case 429:
				default:
					t.Errorf("open: %d %s", rec.Code, rec.Body)
				}
			}()
		}
		wg.Wait()
		return granted
	}
	if n := race(f.tokens["counter"], `{"mode":"count","elements":{"email":10}}`); n != 3 {
		t.Fatalf("%d sessions granted to counter across two replicas; its budget is 3 a day", n)
	}
	if n := race(f.tokens["budget"], `{"mode":"count","elements":{"email":1000}}`); n != 5 {
		t.Fatalf("%d sessions of 1000 elements granted to budget across two replicas; its budget is 5000 elements", n)
	}

	// A replica that built another set (its inventory changed) cannot
	// serve the session: 503 set_unavailable, with Retry-After.
	rec = do(srvs[0].Handler(), f.tokens["member"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":10}}`), nil)
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &s) != nil {
		t.Fatalf("open: %d %s", rec.Code, rec.Body)
	}
	inv, _ := os.ReadFile(f.invPath)
	lines := strings.SplitAfter(string(inv), "\n")
	os.WriteFile(f.invPath, []byte(strings.Join(lines[:len(lines)/2], "")), 0o600)
	other := replicas(t, f, conn, 1)[0]
	rec = do(other.Handler(), f.tokens["member"], "GET", protocol.PathSession+s.ID+"/set", nil, nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"reason":"set_unavailable"`) || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a replica with another set: %d %s (Retry-After %q)", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}

	// A replica that loses its database answers a retryable 503 and
	// grants nothing.
	srvs[1].cfg.State.Close()
	rec = do(srvs[1].Handler(), f.tokens["member"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":10}}`), nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"reason":"state_unavailable"`) || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a replica without its database: %d %s", rec.Code, rec.Body)
	}
}

// TestSharedSeedReplicasAgreeAcrossEpochs: replicas sharing a --seed-file
// derive every epoch's key from the seed, so a replica that has served
// since an earlier epoch and one started in the current epoch publish the
// same public key. Two servers that each keep their own ratchet in their own
// data directory do not (which is why --seed-file switches the ratchet off).
func TestSharedSeedReplicasAgreeAcrossEpochs(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	start := func(shared bool) *Server {
		cfg := f.cfg
		cfg.SharedSeed, cfg.Dir, cfg.Audit, cfg.State = shared, nil, nil, state.NewMemory()
		srv, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	pub := func(s *Server) string { return string(s.current.Load().key.PublicKey()) }
	early, earlyRatchet := start(true), start(false)
	f.advance(time.Hour)
	for _, s := range []*Server{early, earlyRatchet} {
		if err := s.rebuild(ctx, "rotation"); err != nil {
			t.Fatal(err)
		}
	}
	late, lateRatchet := start(true), start(false)
	if early.Epoch() != late.Epoch() {
		t.Fatalf("epochs %s and %s", early.Epoch(), late.Epoch())
	}
	if pub(early) != pub(late) {
		t.Error("two replicas sharing a seed publish different keys for one epoch")
	}
	if pub(earlyRatchet) == pub(lateRatchet) {
		t.Error("ratchets started in different epochs agree: the test no longer shows why --seed-file derives from the seed")
	}
	if pub(early) == pub(earlyRatchet) {
		t.Error("the shared-seed key equals the ratchet's one epoch later")
	}
}
