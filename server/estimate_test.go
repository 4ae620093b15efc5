package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// TestEstimateEndToEnd runs an estimate-mode match through the real server
// and client: the report holds an estimate near the exact overlap (count
// mode's), no per-identifier result, and hit counts equal to what the
// platform's own evaluation of the same identifiers under the estimate key
// gives, so the members flow yields exactly the positions the set is built
// from.
func TestEstimateEndToEnd(t *testing.T) {
	for _, verifiable := range []bool{false, true} {
		f := newFixture(t, verifiable)
		withSeed(f, 0x61)
		f.addHostile("estimator", psi.ModeEstimate, psi.ModeCount)
		ctx := context.Background()
		c := f.client("estimator")
		exact, err := c.Match(ctx, f.list, protocol.MatchOptions{Mode: psi.ModeCount})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.Match(ctx, f.list, protocol.MatchOptions{Mode: psi.ModeEstimate, RequireVerifiable: verifiable})
		if err != nil {
			t.Fatal(err)
		}
		e := rep.EstimateReport
		if e == nil || rep.Mode != psi.ModeEstimate || rep.RowMatches != nil || rep.MatchedRows != nil || rep.Matched != (protocol.Counts{}) {
			t.Fatalf("estimate report: %+v", rep)
		}
		truth := float64(exact.Matched.Email + exact.Matched.Phone)
		t.Logf("verifiable %v: exact overlap %v; estimate %.1f ± %.1f, 95%% [%.1f, %.1f]; ε %.4f, p %.4f, set %d bytes for %d eligible (%.2f bytes each)",
			verifiable, truth, e.EstimatedMatched.Total, e.StandardError.Total, e.Interval95.Total[0], e.Interval95.Total[1],
			e.Epsilon, e.P, rep.SetBytes, f.truth.Eligible, float64(rep.SetBytes)/float64(f.truth.Eligible))
		if math.Abs(e.EstimatedMatched.Total-truth) > 5*e.StandardError.Total {
			t.Errorf("estimate %.1f is more than 5 standard errors (%.1f) from %v", e.EstimatedMatched.Total, e.StandardError.Total, truth)
		}
		if e.Epsilon > psi.DefaultEstimateEpsilon+1e-9 || e.D != psi.EstimateDecoy {
			t.Errorf("announced ε %v, d %v", e.Epsilon, e.D)
		}
		if per := float64(rep.SetBytes) / float64(f.truth.Eligible); per > 2 {
			t.Errorf("%.2f set bytes per eligible identifier, want at most 2", per)
		}
		// The report's JSON has the estimate and no matched counts.
		raw, _ := json.Marshal(rep)
		var m map[string]any
		json.Unmarshal(raw, &m)
		for _, k := range []string{"estimated_matched", "standard_error", "interval95", "epsilon", "set_bytes", "sent", "rows", "invalid"} {
			if _, ok := m[k]; !ok {
				t.Errorf("report JSON lacks %s", k)
			}
		}
		for _, k := range []string{"matched", "matched_rows", "server_set_size"} {
			if _, ok := m[k]; ok {
				t.Errorf("estimate report JSON has %s", k)
			}
		}
		// A second session in the epoch takes the set from the client's cache.
		again, err := c.Match(ctx, f.list, protocol.MatchOptions{Mode: psi.ModeEstimate})
		if err != nil || !again.SetFromCache || again.EstimateReport.Hits != e.Hits {
			t.Fatalf("second session: cache %v, err %v", again != nil && again.SetFromCache, err)
		}
		// The platform's direct evaluation gives the same hits.
		st := f.srv.current.Load()
		bm := bitmapOf(t, st.est.set.Coded)
		for _, k := range ident.Kinds {
			hits := 0
			for _, in := range f.list.Inputs.Get(k) {
				if setcodec.BitmapHas(bm, st.est.key.Position(in)) {
					hits++
				}
			}
			if hits != e.Hits.Get(k) {
				t.Errorf("%s: the client counted %d hits, the platform's own evaluation %d", k, e.Hits.Get(k), hits)
			}
		}
	}
}

// withSeed restarts f's server with a fixed master seed and no data
// directory, so that a statistical test sees the same set on every run.
func withSeed(f *fixture, b byte) {
	f.close()
	f.cfg.Seed = bytes.Repeat([]byte{b}, psi.SeedSize)
	f.cfg.Dir, f.cfg.Audit = nil, nil
	f.start()
}

func bitmapOf(t *testing.T, coded []byte) []uint64 {
	t.Helper()
	s, err := setcodec.Open(coded, 1<<32)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := s.Bitmap()
	if err != nil {
		t.Fatal(err)
	}
	return bm
}

// askBits plays a deviating advertiser: it opens an estimate session and
// learns, through the members flow's per-element blinds, the bit of each
// target.
func askBits(t *testing.T, f *fixture, targets []ident.Input) ([]bool, string) {
	t.Helper()
	ctx := context.Background()
	kind := targets[0].Kind()
	var declared protocol.Counts
	*declared.At(kind) = len(targets)
	sess, err := f.client("estimator").Open(ctx, psi.ModeEstimate, declared)
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := sess.Set(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var bits []bool
	for lo := 0; lo < len(targets); lo += sess.Info.MaxBatch {
		got, err := sess.Batch(ctx, set, kind, targets[lo:min(len(targets), lo+sess.Info.MaxBatch)])
		if err != nil {
			t.Fatal(err)
		}
		bits = append(bits, got...)
	}
	return bits, sess.Info.Epoch
}

// TestEstimateBitsArePermanent asks the same 1,000 targets in five
// sessions: before and after a reload, after a restart (from the data
// directory, without reading the inventory), after an epoch rotation, and
// after a restart that lost the estimate state and rebuilt it from the
// inventory. Every session returns the same 1,000 bits.
func TestEstimateBitsArePermanent(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("estimator", psi.ModeEstimate)
	ctx := context.Background()
	// Half the list's emails (some eligible) and made-up ones, 1,000 in all.
	targets := slices.Clone(f.list.Inputs.Email[:min(500, len(f.list.Inputs.Email))])
	for i := 0; len(targets) < 1000; i++ {
		targets = append(targets, ident.FromNormalized(ident.Email, "stranger"+string(rune('a'+i%26))+time.Duration(i).String()+"@example.net"))
	}
	first, epoch0 := askBits(t, f, targets)
	same := func(step string) {
		t.Helper()
		got, epoch := askBits(t, f, targets)
		if !slices.Equal(got, first) {
			n := 0
			for i := range got {
				if got[i] != first[i] {
					n++
				}
			}
			t.Fatalf("%s (epoch %s): %d of %d bits differ", step, epoch, n, len(got))
		}
	}
	if err := f.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	same("after a reload")

	restart := func() {
		f.close()
		var err error
		if f.store, err = store.Open(filepath.Join(f.dir, "data")); err != nil {
			t.Fatal(err)
		}
		f.cfg.Dir, f.cfg.Audit = f.store, nil
		f.start()
	}
	restart() // reads the inventory again (issue 14) and keeps the estimate set
	same("after a restart")

	f.advance(time.Hour)
	if err := f.srv.rebuild(ctx, "rotation"); err != nil {
		t.Fatal(err)
	}
	if f.srv.Epoch() == epoch0 {
		t.Fatal("no rotation")
	}
	same("after an epoch rotation")

	os.Remove(filepath.Join(f.dir, "data", "estimate", "state"))
	restart()
	if ev := f.srv.current.Load().est.set; ev.Evaluated != ev.Kept {
		t.Fatalf("a restart without the estimate state evaluated %d of %d kept values", ev.Evaluated, ev.Kept)
	}
	same("after a restart that rebuilt the estimate set")
}

// TestEstimateReloadEvaluatesOnlyNew: a reload takes the kept values'
// positions from the previous build; a pinned L other than the stored one
// is a new key.
func TestEstimateReloadEvaluatesOnlyNew(t *testing.T) {
	f := newFixture(t, false)
	first := f.srv.current.Load().est
	if first.set.Evaluated != first.set.Kept || first.set.Kept == 0 {
		t.Fatalf("first build: evaluated %d of %d kept", first.set.Evaluated, first.set.Kept)
	}
	// A reload of an unchanged inventory keeps the set; one with a new
	// eligible value rebuilds it and evaluates only that value (if kept).
	if err := f.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.srv.current.Load().est != first {
		t.Fatal("a reload of an unchanged inventory rebuilt the estimate set")
	}
	inv, err := os.OpenFile(f.invPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(inv, "u-new,email,brand.new@example.com,advertising,false")
	inv.Close()
	if err := f.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := f.srv.current.Load().est
	if again == first || again.set.Evaluated > 1 || again.set.Kept < first.set.Kept {
		t.Fatalf("reload with one new value: evaluated %d, kept %d (was %d)", again.set.Evaluated, again.set.Kept, first.set.Kept)
	}
	first = again
	// The session announces the parameters; L stays as stored.
	h := newHardened(t, f)
	f.addHostile("estimator", psi.ModeEstimate)
	resp := h.open(t, f.tokens["estimator"], psi.ModeEstimate, 10, 0)
	if resp.Estimate == nil || resp.Estimate.Bits != first.set.Params.Bits || resp.SetBits != resp.Estimate.Bits ||
		uint64(resp.SetSize) != first.set.Ones || resp.Estimate.Key != first.set.Params.Label() {
		t.Fatalf("session announces %+v (set bits %d, size %d)", resp.Estimate, resp.SetBits, resp.SetSize)
	}
	if resp.PublicKey == "" || resp.SetDigest != first.digest {
		t.Fatalf("public key %q, digest %s", resp.PublicKey, resp.SetDigest)
	}
	// A restart with another L pinned is a re-key: new label, every kept
	// value evaluated again, another set.
	f.close()
	if f.store, err = store.Open(filepath.Join(f.dir, "data")); err != nil {
		t.Fatal(err)
	}
	f.cfg.Dir, f.cfg.Audit = f.store, nil
	f.cfg.Estimate.Bits = first.set.Params.Bits + 1
	f.start()
	rekeyed := f.srv.current.Load().est
	if rekeyed.set.Params.Label() == first.set.Params.Label() || rekeyed.set.Evaluated != rekeyed.set.Kept || rekeyed.digest == first.digest {
		t.Fatalf("re-key: label %q, evaluated %d of %d", rekeyed.set.Params.Label(), rekeyed.set.Evaluated, rekeyed.set.Kept)
	}
}

// TestEstimateAttackerEndToEnd plays a deviating advertiser against the real
// server: it reads the inventory file (as if it knew it), asks, with
// per-element blinds, the bits of eligible, security-only, opted-out and
// never-seen identifiers, and compares the rates: the eligible ones hit at
// p + (1-p)·D, every other class at D, and the observed likelihood ratios
// stay within e^ε up to three standard errors.
func TestEstimateAttackerEndToEnd(t *testing.T) {
	f := newFixture(t, false)
	withSeed(f, 0x16)
	f.addHostile("estimator", psi.ModeEstimate)
	raw, err := os.ReadFile(f.invPath)
	if err != nil {
		t.Fatal(err)
	}
	// Classes by record; a value held under several records is left out.
	classes := map[string][]ident.Input{}
	seen := map[ident.Input]int{}
	type rec struct {
		class string
		in    ident.Input
	}
	var recs []rec
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		c := strings.Split(line, ",")
		kind, err := ident.ParseKind(c[1])
		if err != nil {
			continue
		}
		v, err := normalize.Value(kind, c[2], "")
		if err != nil {
			continue
		}
		class := "eligible"
		switch {
		case c[4] == "true":
			class = "opted-out"
		case c[3] == "security":
			class = "security-only"
		case !strings.Contains(c[3], "advertising"):
			continue
		}
		in := ident.FromNormalized(kind, v)
		seen[in]++
		recs = append(recs, rec{class + " " + kind.String(), in})
	}
	for _, r := range recs {
		if seen[r.in] == 1 && len(classes[r.class]) < 600 {
			classes[r.class] = append(classes[r.class], r.in)
		}
	}
	for i := range 600 {
		classes["never-seen email"] = append(classes["never-seen email"], ident.FromNormalized(ident.Email, "nobody"+strconv.Itoa(i)+"@example.net"))
		classes["never-seen phone"] = append(classes["never-seen phone"], ident.FromNormalized(ident.Phone, "+4420794"+strconv.Itoa(10000+i)))
	}
	for _, c := range []string{"eligible email", "eligible phone", "security-only phone", "opted-out email", "opted-out phone"} {
		if len(classes[c]) < 100 {
			t.Fatalf("only %d %s targets in the inventory", len(classes[c]), c)
		}
	}
	rate := map[string]float64{}
	for class, targets := range classes {
		bits, _ := askBits(t, f, targets)
		hits := 0
		for _, b := range bits {
			if b {
				hits++
			}
		}
		rate[class] = float64(hits) / float64(len(bits))
	}
	es := f.srv.current.Load().est.set
	D, p, eps := es.Density(), es.Params.P, es.Params.Epsilon()
	q := p + (1-p)*D
	for class, r := range rate {
		want := D
		if strings.HasPrefix(class, "eligible") {
			want = q
		}
		n := float64(len(classes[class]))
		t.Logf("%-19s %4.0f targets: hit rate %.3f (construction: %.3f)", class, n, r, want)
		if math.Abs(r-want) > 4*math.Sqrt(want*(1-want)/n) {
			t.Errorf("%s: hit rate %.3f, the construction says %.3f", class, r, want)
		}
	}
	// The attacker's best case: all its eligible against all its never-seen targets.
	nEl := float64(len(classes["eligible email"]) + len(classes["eligible phone"]))
	rEl := (rate["eligible email"]*float64(len(classes["eligible email"])) + rate["eligible phone"]*float64(len(classes["eligible phone"]))) / nEl
	rNon := (rate["never-seen email"] + rate["never-seen phone"]) / 2
	n := min(nEl, 1200)
	hitLR, missLR := math.Log(rEl/rNon), math.Log((1-rNon)/(1-rEl))
	hitSE := math.Sqrt((1-rEl)/(n*rEl) + (1-rNon)/(n*rNon))
	missSE := math.Sqrt(rEl/(n*(1-rEl)) + rNon/(n*(1-rNon)))
	t.Logf("ln LR of a hit %.3f ± %.3f, of a miss %.3f ± %.3f; ε %.4f", hitLR, hitSE, missLR, missSE, eps)
	if hitLR > eps+3*hitSE || missLR > eps+3*missSE {
		t.Errorf("a likelihood ratio exceeds e^ε beyond sampling error")
	}
}

// TestEstimateRootOutlivesTheSeed: the estimate root is kept in the data
// directory (0600) at the first start, so a server that no longer has the
// master seed (the epoch keys' ratchet lets it erase it) derives the same
// estimate key; a server with neither refuses estimate sessions with 503
// and serves the other modes.
func TestEstimateRootOutlivesTheSeed(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("estimator", psi.ModeEstimate, psi.ModeCount)
	path := filepath.Join(f.dir, "data", "estimate", "root")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != psi.EstimateRootSize {
		t.Fatalf("estimate root file: %v %v", fi, err)
	}
	want, _ := psi.EstimateRoot(f.cfg.Seed)
	seedless := &Server{cfg: Config{Dir: f.store}, log: f.srv.log}
	if err := seedless.initEstimate(); err != nil || !bytes.Equal(seedless.est.root, want) {
		t.Fatalf("a server without the seed read root %x, err %v", seedless.est.root, err)
	}
	none := &Server{cfg: Config{}, log: f.srv.log}
	if err := none.initEstimate(); err != nil || none.est.root != nil {
		t.Fatalf("no seed, no directory: root %x, err %v", none.est.root, err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if err := seedless.initEstimate(); err == nil {
		t.Fatal("a 5-byte estimate root accepted")
	}

	// Without a root, a reload builds no estimate set, and estimate
	// sessions are refused while count sessions go on.
	f.srv.est.mu.Lock()
	f.srv.est.root, f.srv.est.key = nil, nil
	f.srv.est.mu.Unlock()
	inv, err := os.OpenFile(f.invPath, os.O_APPEND|os.O_WRONLY, 0) // a change, so the reload rebuilds
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(inv, "u-new,email,brand.new@example.com,advertising,false")
	inv.Close()
	if err := f.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = f.client("estimator").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeEstimate})
	if status, reason := statusOf(err); status != http.StatusServiceUnavailable || reason != "estimate_unavailable" {
		t.Fatalf("estimate session without a root: %v", err)
	}
	if _, err := f.client("estimator").Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeCount}); err != nil {
		t.Fatalf("count session without an estimate root: %v", err)
	}
}

// TestEstimateRootIsASecret: the estimate root is read like the seed: a
// copy others can read is refused, not used.
func TestEstimateRootIsASecret(t *testing.T) {
	f := newFixture(t, false)
	path := filepath.Join(f.dir, "data", "estimate", "root")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	seedless := &Server{cfg: Config{Dir: f.store}, log: f.srv.log}
	if err := seedless.initEstimate(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable estimate root: %v", err)
	}
}
