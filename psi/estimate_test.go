package psi

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cloudflare/circl/oprf"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/psi/setcodec"
)

func TestEstimateParams(t *testing.T) {
	pr, err := NewEstimateParams(DefaultEstimateEpsilon, 1000, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// ln 3: p = 2/3 rounded down to 2^-20, d = 1/4, both ratios 3.
	if pr.D != 0.25 || math.Abs(pr.P-2.0/3) > 1e-6 || pr.P > 2.0/3 {
		t.Errorf("ln 3: p = %v, d = %v; want 2/3 and 1/4", pr.P, pr.D)
	}
	if eps := pr.Epsilon(); eps > DefaultEstimateEpsilon || eps < DefaultEstimateEpsilon-1e-5 {
		t.Errorf("ln 3: ε = %v", eps)
	}
	for _, eps := range []float64{0.1, 0.5, 1, 1.5, 3} {
		pr, err := NewEstimateParams(eps, 1000, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := pr.Epsilon(); got > eps || got < eps-1e-4 {
			t.Errorf("target ε %v: parameters give %v (p %v)", eps, got, pr.P)
		}
	}
	for _, eps := range []float64{0, -1, 0.01, 6, math.NaN()} {
		if _, err := NewEstimateParams(eps, 1000, 0, 1); err == nil {
			t.Errorf("ε %v accepted", eps)
		}
	}
	// L: ceil(log2(n/d)) + 1.
	for _, c := range []struct {
		n    int
		want uint
	}{{0, 12}, {1000, 13}, {1024, 13}, {1025, 14}, {1 << 20, 23}, {1 << 40, 32}} {
		if got := EstimateBitsFor(c.n); got != c.want {
			t.Errorf("EstimateBitsFor(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	if _, err := NewEstimateParams(1, 10, 40, 1); err == nil {
		t.Error("L = 40 accepted")
	}
}

// eligibleEmails runs the purpose policy over advertising records of the
// given addresses and returns what it lets through.
func eligibleEmails(t testing.TB, emails []string) []inventory.Eligible {
	t.Helper()
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("user_id,kind,value,purposes,opted_out\n")
	for i, e := range emails {
		fmt.Fprintf(&csv, "u%d,email,%s,advertising,false\n", i, e)
	}
	out := make([]inventory.Eligible, 0, len(emails))
	sum, err := inventory.Scan(context.Background(), strings.NewReader(csv.String()), "inventory.csv", inventory.CSV, policy,
		func(e inventory.Eligible) error { out = append(out, e); return nil }, nil)
	if err != nil || len(out) != len(emails) {
		t.Fatalf("the policy let %d of %d through: %v %+v", len(out), len(emails), err, sum)
	}
	return out
}

func emailInput(e string) ident.Input { return ident.FromNormalized(ident.Email, e) }

// simulated gives k a position function of SHA-256 in place of the OPRF,
// so that hundreds of sets build in a second. Keep and decoys stay real.
func simulated(k *EstimateKey, salt uint64) *EstimateKey {
	L := k.params.Bits
	k.position = func(in ident.Input) uint64 {
		var b [8 + len(in)]byte
		binary.BigEndian.PutUint64(b[:], salt)
		copy(b[8:], in[:])
		h := sha256.Sum256(b[:])
		return binary.BigEndian.Uint64(h[:8]) >> (64 - L)
	}
	return k
}

// buildEstimate builds an estimate set of the eligible values and returns
// it with its decoded bitmap.
func buildEstimate(t testing.TB, k *EstimateKey, els []inventory.Eligible, prev *EstimateCache) (*EstimateSet, []uint64) {
	t.Helper()
	b := k.NewBuilder(prev)
	for _, e := range els {
		b.Add(e)
	}
	es, err := b.Finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := setcodec.Open(es.Coded, 1<<k.params.Bits)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != es.Ones || s.Bits() != k.params.Bits {
		t.Fatalf("coded set: %d values of %d bits, want %d of %d", s.Len(), s.Bits(), es.Ones, k.params.Bits)
	}
	bm, err := s.Bitmap()
	if err != nil {
		t.Fatal(err)
	}
	return es, bm
}

func randomSeed(rng *rand.Rand) []byte {
	seed := make([]byte, SeedSize)
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	return seed
}

// TestEstimateAccuracy: over 400 sets (four shapes of platform, list and
// overlap, 100 seeds each) the 95% interval covers the true overlap in 93
// to 97% of trials, and the reported standard error matches the spread of
// the estimates.
func TestEstimateAccuracy(t *testing.T) {
	suite, _ := SuiteByName("ristretto255", false)
	shapes := []struct{ platform, list, overlap int }{
		{2000, 1000, 300},
		{20000, 4000, 2000},
		{6000, 5000, 4500},
		{12000, 3000, 150},
	}
	const trials = 100
	rng := rand.New(rand.NewPCG(16, 16))
	covered := 0
	for si, sh := range shapes {
		platform := make([]string, sh.platform)
		for i := range platform {
			platform[i] = fmt.Sprintf("p%d.%d@example.com", si, i)
		}
		els := eligibleEmails(t, platform)
		// The list: overlap values from the platform, the rest unknown to it.
		list := make([]ident.Input, 0, sh.list)
		for i := range sh.overlap {
			list = append(list, emailInput(platform[i]))
		}
		for i := sh.overlap; i < sh.list; i++ {
			list = append(list, emailInput(fmt.Sprintf("c%d.%d@example.org", si, i)))
		}
		var sum, sumSq, seSum float64
		for trial := range trials {
			pr, err := NewEstimateParams(DefaultEstimateEpsilon, sh.platform, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			k, err := DeriveEstimateKey(suite, randomSeed(rng), pr)
			if err != nil {
				t.Fatal(err)
			}
			simulated(k, uint64(trial))
			es, bm := buildEstimate(t, k, els, nil)
			hits := 0
			for _, in := range list {
				if setcodec.BitmapHas(bm, k.Position(in)) {
					hits++
				}
			}
			o := EstimateOverlap(len(list), hits, pr.P, es.Density())
			if float64(sh.overlap) >= o.Low && float64(sh.overlap) <= o.High {
				covered++
			}
			sum += o.Estimate
			sumSq += o.Estimate * o.Estimate
			seSum += o.StdErr
		}
		mean := sum / trials
		sd := math.Sqrt((sumSq - trials*mean*mean) / (trials - 1))
		se := seSum / trials
		t.Logf("platform %d, list %d, overlap %d: mean estimate %.1f, observed sd %.1f, mean reported se %.1f",
			sh.platform, sh.list, sh.overlap, mean, sd, se)
		// The mean of 100 estimates is within 4 standard errors of the truth.
		if math.Abs(mean-float64(sh.overlap)) > 4*se/math.Sqrt(trials) {
			t.Errorf("overlap %d: mean estimate %.1f is biased (se of the mean %.1f)", sh.overlap, mean, se/math.Sqrt(trials))
		}
		// The sd of 100 draws is within about ±15% (2 sd of its sampling error).
		if r := sd / se; r < 0.8 || r > 1.2 {
			t.Errorf("overlap %d: observed sd %.1f against reported se %.1f (ratio %.2f)", sh.overlap, sd, se, r)
		}
	}
	total := trials * len(shapes)
	t.Logf("95%% interval covered the overlap in %d of %d trials (%.1f%%)", covered, total, 100*float64(covered)/float64(total))
	if c := float64(covered) / float64(total); c < 0.93 || c > 0.97 {
		t.Errorf("coverage %.1f%%, want 93–97%%", 100*c)
	}
}

func TestEstimateOverlapCombines(t *testing.T) {
	a := EstimateOverlap(1000, 400, 2.0/3, 0.28)
	b := EstimateOverlap(500, 100, 2.0/3, 0.28)
	c := CombineOverlaps(a, b)
	if math.Abs(c.Estimate-(a.Estimate+b.Estimate)) > 1e-9 || math.Abs(c.StdErr-math.Hypot(a.StdErr, b.StdErr)) > 1e-9 || c.N != 1500 {
		t.Errorf("combined %+v from %+v and %+v", c, a, b)
	}
	if c.Low < 0 || c.High > 1500 || c.Low > c.Estimate || c.High < c.Estimate {
		t.Errorf("interval %v..%v around %v", c.Low, c.High, c.Estimate)
	}
	// No hit beyond the decoys: the estimate is about 0 and the interval
	// starts at 0.
	z := EstimateOverlap(1000, 280, 2.0/3, 0.28)
	if math.Abs(z.Estimate) > 1e-9 || z.Low != 0 || z.High <= 0 {
		t.Errorf("no overlap: %+v", z)
	}
	if e := EstimateOverlap(0, 0, 2.0/3, 0.28); e.Estimate != 0 || e.High != 0 {
		t.Errorf("empty list: %+v", e)
	}
}

// TestEstimatePrivacy plays the attacker with the real estimate set and the
// real OPRF: it holds 20,000 targets the platform has as eligible and 20,000
// it has not, learns each one's position (the members flow gives exactly
// Position; TestEstimateEndToEnd checks that through the server), and
// reads the bits. The observed likelihood ratios of a hit and of a miss stay
// within e^ε up to three standard errors of their logarithms.
func TestEstimatePrivacy(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 5000
	}
	suite, _ := SuiteByName("ristretto255", false)
	eligible := make([]string, n)
	others := make([]string, n)
	for i := range n {
		eligible[i] = fmt.Sprintf("target%d@example.com", i)
		others[i] = fmt.Sprintf("stranger%d@example.com", i)
	}
	pr, err := NewEstimateParams(DefaultEstimateEpsilon, n, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	k, err := DeriveEstimateKey(suite, bytes.Repeat([]byte{7}, SeedSize), pr)
	if err != nil {
		t.Fatal(err)
	}
	es, bm := buildEstimate(t, k, eligibleEmails(t, eligible), nil)
	rate := func(emails []string) float64 {
		pos := make([]uint64, len(emails))
		parallel(len(emails), chunkSize, func(lo, hi int) error {
			for i := lo; i < hi; i++ {
				pos[i] = k.Position(emailInput(emails[i]))
			}
			return nil
		})
		hits := 0
		for _, p := range pos {
			if setcodec.BitmapHas(bm, p) {
				hits++
			}
		}
		return float64(hits) / float64(len(emails))
	}
	rEl, rNon := rate(eligible), rate(others)
	D := es.Density()
	eps := pr.Epsilon()
	fn := float64(n)
	hitLR, missLR := math.Log(rEl/rNon), math.Log((1-rNon)/(1-rEl))
	hitSE := math.Sqrt((1-rEl)/(fn*rEl) + (1-rNon)/(fn*rNon))
	missSE := math.Sqrt(rEl/(fn*(1-rEl)) + rNon/(fn*(1-rNon)))
	t.Logf("p %.4f, d %.2f, L %d, set density D %.4f, ε %.4f", pr.P, pr.D, pr.Bits, D, eps)
	t.Logf("eligible hit rate %.4f (theory %.4f), other %.4f (theory %.4f)", rEl, pr.P+(1-pr.P)*D, rNon, D)
	t.Logf("ln LR of a hit %.4f ± %.4f, of a miss %.4f ± %.4f; bound ε = %.4f", hitLR, hitSE, missLR, missSE, eps)
	if hitLR > eps+3*hitSE || missLR > eps+3*missSE {
		t.Errorf("a likelihood ratio exceeds e^ε beyond sampling error")
	}
	// And the rates are what the construction says, so the test can fail.
	if math.Abs(rEl-(pr.P+(1-pr.P)*D)) > 4*math.Sqrt(rEl*(1-rEl)/fn) || math.Abs(rNon-D) > 4*math.Sqrt(D*(1-D)/fn) {
		t.Errorf("hit rates %.4f and %.4f are not p + (1-p)D and D", rEl, rNon)
	}
}

// TestEstimatePermanent: the same values give the same set, and so the same
// bits, whatever the order, with or without the cache, and after a value
// joins and leaves again; a different seed or ε gives another set.
func TestEstimatePermanent(t *testing.T) {
	suite, _ := SuiteByName("ristretto255", false)
	emails := make([]string, 3000)
	for i := range emails {
		emails[i] = fmt.Sprintf("perm%d@example.com", i)
	}
	els := eligibleEmails(t, emails)
	seed := bytes.Repeat([]byte{9}, SeedSize)
	pr, _ := NewEstimateParams(DefaultEstimateEpsilon, len(els), 0, 1)
	k, err := DeriveEstimateKey(suite, seed, pr)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := buildEstimate(t, k, els, nil)
	if first.Evaluated != first.Kept || first.Kept == 0 {
		t.Fatalf("first build evaluated %d of %d kept", first.Evaluated, first.Kept)
	}
	// A fresh key from the same seed (a restart, a replica), the values in
	// reverse order, and the previous build's cache.
	k2, _ := DeriveEstimateKey(suite, seed, pr)
	rev := make([]inventory.Eligible, len(els))
	for i, e := range els {
		rev[len(els)-1-i] = e
	}
	again, _ := buildEstimate(t, k2, rev, first.Cache)
	if !bytes.Equal(first.Coded, again.Coded) {
		t.Fatal("the same eligible values built a different set")
	}
	if again.Evaluated != 0 {
		t.Errorf("a rebuild with the cache evaluated %d values again", again.Evaluated)
	}
	// The cache survives encoding and refuses another key.
	cb, _ := first.Cache.MarshalBinary()
	c2, err := k2.UnmarshalEstimateCache(cb)
	if err != nil || c2.Len() != first.Cache.Len() {
		t.Fatalf("cache round trip: %v", err)
	}
	// A value leaves (opts out) and comes back: the set returns to the same bytes.
	without, _ := buildEstimate(t, k2, els[1:], c2)
	back, _ := buildEstimate(t, k2, els, without.Cache)
	if !bytes.Equal(back.Coded, first.Coded) {
		t.Error("after a value left and came back the set differs")
	}
	// Another seed and another ε are other keys.
	k3, _ := DeriveEstimateKey(suite, bytes.Repeat([]byte{8}, SeedSize), pr)
	other, _ := buildEstimate(t, k3, els, nil)
	if bytes.Equal(other.Coded, first.Coded) {
		t.Error("another seed gave the same set")
	}
	pr2, _ := NewEstimateParams(1.5, len(els), 0, 1)
	k4, _ := DeriveEstimateKey(suite, seed, pr2)
	if _, err := k4.UnmarshalEstimateCache(cb); err == nil {
		t.Error("a cache of another ε accepted")
	}
}

// TestEstimateExcludedLikeUnknown: security-only and opted-out values never
// reach the builder, so an inventory that holds them builds the very same
// set as one that does not; they hit at the rate of values never seen.
func TestEstimateExcludedLikeUnknown(t *testing.T) {
	suite, _ := SuiteByName("ristretto255", false)
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4000
	var base, full strings.Builder
	base.WriteString("user_id,kind,value,purposes,opted_out\n")
	for i := range n {
		fmt.Fprintf(&base, "u%d,email,ad%d@example.com,advertising,false\n", i, i)
	}
	full.WriteString(base.String())
	for i := range n {
		fmt.Fprintf(&full, "s%d,email,sec%d@example.com,security,false\n", i, i)
		fmt.Fprintf(&full, "o%d,email,out%d@example.com,advertising,true\n", i, i)
	}
	pr, _ := NewEstimateParams(DefaultEstimateEpsilon, n, 0, 1)
	k, err := DeriveEstimateKey(suite, bytes.Repeat([]byte{5}, SeedSize), pr)
	if err != nil {
		t.Fatal(err)
	}
	build := func(csv string) *EstimateSet {
		b := k.NewBuilder(nil)
		_, err := inventory.Scan(context.Background(), strings.NewReader(csv), "inventory.csv", inventory.CSV, policy,
			func(e inventory.Eligible) error { b.Add(e); return nil }, nil)
		if err != nil {
			t.Fatal(err)
		}
		es, err := b.Finish(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	a, b := build(base.String()), build(full.String())
	if !bytes.Equal(a.Coded, b.Coded) || a.Eligible != n || b.Eligible != n {
		t.Fatalf("security-only and opted-out records changed the set (eligible %d and %d)", a.Eligible, b.Eligible)
	}
	s, _ := setcodec.Open(b.Coded, 1<<pr.Bits)
	bm, _ := s.Bitmap()
	rate := func(format string) float64 {
		hits := 0
		for i := range n {
			if setcodec.BitmapHas(bm, k.Position(emailInput(fmt.Sprintf(format, i)))) {
				hits++
			}
		}
		return float64(hits) / n
	}
	D := b.Density()
	sd := math.Sqrt(D * (1 - D) / n)
	for _, f := range []string{"sec%d@example.com", "out%d@example.com", "never%d@example.com"} {
		r := rate(f)
		t.Logf("%s: hit rate %.4f, set density %.4f", f, r, D)
		if math.Abs(r-D) > 4*sd {
			t.Errorf("%s: hit rate %.4f, want the density %.4f ± %.4f", f, r, D, 4*sd)
		}
	}
}

// TestEstimateMatchesSpec re-derives estimate mode from the text of
// protocol/README.md ("Estimate mode") with the standard library and circl
// alone, as a client or auditor in another language would, and checks the
// keep decisions, the decoy bitmap and the positions against this package.
func TestEstimateMatchesSpec(t *testing.T) {
	suite, _ := SuiteByName("ristretto255", false)
	seed := bytes.Repeat([]byte{0x42}, SeedSize)
	pr, _ := NewEstimateParams(DefaultEstimateEpsilon, 3000, 0, 1)
	root, err := EstimateRoot(seed)
	if err != nil {
		t.Fatal(err)
	}
	k, err := DeriveEstimateKey(suite, root, pr)
	if err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("v1 version=1 L=%d p=%d/2^20 d=1/4", pr.Bits, int64(pr.P*(1<<20)))
	if pr.Label() != label {
		t.Fatalf("label %q, the spec gives %q", pr.Label(), label)
	}
	mac := func(key []byte, msg []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		return m.Sum(nil)
	}
	// The root: HMAC(seed, "psimatch estimate root v1").
	if !bytes.Equal(root, mac(seed, []byte("psimatch estimate root v1"))) {
		t.Fatal("the estimate root differs from the spec")
	}
	// Keep: first 8 bytes of HMAC(keep key, x) below p·2^64.
	keepKey := mac(root, []byte("psimatch estimate keep "+label))
	threshold := uint64(pr.P*(1<<20)) << 44
	kept := 0
	for i := range 2000 {
		x := emailInput(fmt.Sprintf("spec%d@example.com", i))
		want := binary.BigEndian.Uint64(mac(keepKey, x[:])[:8]) < threshold
		if k.Keep(x) != want {
			t.Fatalf("keep decision %d differs from the spec", i)
		}
		if want {
			kept++
		}
	}
	if kept < 1200 || kept > 1470 {
		t.Errorf("%d of 2000 kept, want about 2/3", kept)
	}
	// Decoys: AES-256-CTR from a zero counter block, word i = w_2i AND w_2i+1.
	block, _ := aes.NewCipher(mac(root, []byte("psimatch estimate decoys "+label)))
	var ctr, ks [16]byte
	bm := k.Decoys()
	for i := range bm {
		block.Encrypt(ks[:], ctr[:])
		for j := 15; j >= 0; j-- { // increment the 128-bit big-endian counter
			if ctr[j]++; ctr[j] != 0 {
				break
			}
		}
		if want := binary.BigEndian.Uint64(ks[:8]) & binary.BigEndian.Uint64(ks[8:]); bm[i] != want {
			t.Fatalf("decoy word %d differs from the spec", i)
		}
	}
	// Position: first L bits of the RFC 9497 output under
	// DeriveKeyPair(root, "psimatch estimate key " || label), through
	// circl's own client and server, in both suites.
	for _, cs := range []oprf.Suite{oprf.SuiteRistretto255, oprf.SuiteP256} {
		s, _ := SuiteByName(cs.Identifier(), false)
		k, err := DeriveEstimateKey(s, root, pr)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := oprf.DeriveKey(cs, oprf.BaseMode, root, []byte("psimatch estimate key "+label))
		if err != nil {
			t.Fatal(err)
		}
		client, server := oprf.NewClient(cs), oprf.NewServer(cs, sk)
		var inputs [][]byte
		for i := range 20 {
			x := emailInput(fmt.Sprintf("spec%d@example.com", i))
			inputs = append(inputs, x[:])
		}
		fin, req, err := client.Blind(inputs)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := server.Evaluate(req)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := client.Finalize(fin, ev)
		if err != nil {
			t.Fatal(err)
		}
		for i, out := range outs {
			if got, want := k.Position(ident.Input(inputs[i])), binary.BigEndian.Uint64(out[:8])>>(64-pr.Bits); got != want {
				t.Fatalf("%s: position %d: %d, the spec gives %d", cs.Identifier(), i, got, want)
			}
		}
	}
}

// FuzzEstimateCache: the cache file's decoder never panics, and whatever it
// accepts encodes back to the same bytes.
func FuzzEstimateCache(f *testing.F) {
	suite, _ := SuiteByName("ristretto255", false)
	pr, _ := NewEstimateParams(DefaultEstimateEpsilon, 100, 0, 1)
	k, err := DeriveEstimateKey(suite, bytes.Repeat([]byte{3}, SeedSize), pr)
	if err != nil {
		f.Fatal(err)
	}
	simulated(k, 1)
	emails := make([]string, 50)
	for i := range emails {
		emails[i] = fmt.Sprintf("fuzz%d@example.com", i)
	}
	es, _ := buildEstimate(f, k, eligibleEmails(f, emails), nil)
	good, _ := es.Cache.MarshalBinary()
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := k.UnmarshalEstimateCache(b)
		if err != nil {
			return
		}
		again, _ := c.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("decode then encode changed the cache")
		}
	})
}
