package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// BenchmarkEstimate measures estimate mode beside count and members
// (ristretto255, all cores):
//
//   - precompute/first: BuildSet plus the estimate set, evaluating every
//     kept value (a new key, or a data directory without its estimate
//     state), against BuildSet alone (x-precompute) and the precompute floor
//     (x-floor; estimate-x-floor-cpu is the estimate set's own share);
//   - precompute/rebuild: the same with the previous build's cache of kept
//     positions (every reload, rotation and restart after the first);
//   - set: coded bytes per eligible identifier of each mode's set;
//   - session/<mode>: a whole in-process session per advertiser identifier
//     against the session floor.
func BenchmarkEstimate(b *testing.B) {
	s := suite(b, "ristretto255", false)
	cores := runtime.GOMAXPROCS(0)
	pre := []int{16384}
	sessions := []int{4096}
	if large {
		pre = append(pre, 65536, 262144)
		sessions = append(sessions, 16384)
	}
	for _, n := range pre {
		for _, first := range []bool{true, false} {
			name := map[bool]string{true: "first", false: "rebuild"}[first]
			b.Run(fmt.Sprintf("precompute/%s/n=%d/cores=%d", name, n, cores), func(b *testing.B) { benchEstimatePrecompute(b, s, n, cores, first) })
		}
	}
	for _, n := range pre {
		b.Run(fmt.Sprintf("set/n=%d", n), func(b *testing.B) { benchEstimateSetBytes(b, s, n) })
	}
	for _, n := range sessions {
		for _, mode := range []psi.Mode{psi.ModeCount, psi.ModeMembers, psi.ModeEstimate} {
			b.Run(fmt.Sprintf("session/%s/n=%d/cores=%d", mode, n, cores), func(b *testing.B) { benchModeSession(b, s, mode, n, cores) })
		}
	}
}

func estimateKey(b testing.TB, s *psi.Suite, eligible int) *psi.EstimateKey {
	pr, err := psi.NewEstimateParams(psi.DefaultEstimateEpsilon, eligible, 0, 1)
	check(b, err)
	k, err := psi.DeriveEstimateKey(s, benchSeed, pr)
	check(b, err)
	return k
}

// buildWithEstimate is the server's read: BuildSet with the estimate
// builder fed from the same scan, then the estimate set.
func buildWithEstimate(f *fixture, key *psi.Key, ek *psi.EstimateKey, n int, prev *psi.EstimateCache) (*psi.PlatformSet, *psi.EstimateSet, error) {
	eb := ek.NewBuilder(prev)
	ps, err := psi.BuildSet(context.Background(), key, func(yield func(inventory.Eligible) error) error {
		return f.scan(n)(func(e inventory.Eligible) error { eb.Add(e); return yield(e) })
	}, psi.BuildOptions{})
	if err != nil {
		return nil, nil, err
	}
	es, err := eb.Finish(context.Background())
	return ps, es, err
}

func benchEstimatePrecompute(b *testing.B, s *psi.Suite, n, cores int, first bool) {
	f := fixtureOf(b, 0, n)
	key := epochKey(b, s)
	ek := estimateKey(b, s, n)
	inputs := make([]ident.Input, n)
	for i, e := range f.eligible[:n] {
		inputs[i] = e.Input()
	}
	var cache *psi.EstimateCache
	if !first {
		_, es, err := buildWithEstimate(f, key, ek, n, nil)
		check(b, err)
		cache = es.Cache
	}
	setProcs(b, cores)
	fl := newFloorMeter(newGroupOps(s), precomputeFloor, inputs, cores)
	var op, base meter
	var es *psi.EstimateSet
	for b.Loop() {
		var err error
		op.measure(func() { _, es, err = buildWithEstimate(f, key, ek, n, cache) })
		check(b, err)
		b.StopTimer()
		base.measure(func() { _, err = psi.BuildSet(context.Background(), key, f.scan(n), psi.BuildOptions{}) })
		check(b, err)
		fl.step()
		b.StartTimer()
	}
	fl.report(b, &op)
	b.ReportMetric(op.ns()/base.ns(), "x-precompute")
	if base.cpuNs() > 0 {
		b.ReportMetric(op.cpuNs()/base.cpuNs(), "x-precompute-cpu")
	}
	b.ReportMetric(float64(es.Evaluated)/float64(n), "evaluated/id")
	// The estimate set's own cost: what it adds to BuildSet, against the
	// precompute floor (CPU, both on the same inputs).
	if c := fl.single.cpuNs(); c > 0 && base.cpuNs() > 0 {
		b.ReportMetric((op.cpuNs()-base.cpuNs())/c, "estimate-x-floor-cpu")
	}
}

func benchEstimateSetBytes(b *testing.B, s *psi.Suite, n int) {
	f := fixtureOf(b, 0, n)
	var ps *psi.PlatformSet
	var es *psi.EstimateSet
	for b.Loop() {
		var err error
		ps, es, err = buildWithEstimate(f, epochKey(b, s), estimateKey(b, s, n), n, nil)
		check(b, err)
	}
	b.ReportMetric(float64(len(es.Coded))/float64(n), "estimate-B/id")
	b.ReportMetric(float64(len(ps.Count))/float64(n), "count-B/id")
	b.ReportMetric(float64(len(ps.Members))/float64(n), "members-B/id")
	b.ReportMetric(float64(es.Params.Bits), "L")
	b.ReportMetric(es.Density(), "density")
}

// estimatePlatform is the default fixture's estimate set, opened.
type estimatePlatform struct {
	key *psi.EstimateKey
	set *setcodec.Set
	es  *psi.EstimateSet
}

func estimatePlatformFor(b testing.TB, s *psi.Suite, f *fixture) *estimatePlatform {
	platformsMu.Lock()
	defer platformsMu.Unlock()
	if p := estimatePlatforms[f]; p != nil {
		return p
	}
	ek := estimateKey(b, s, len(f.eligible))
	eb := ek.NewBuilder(nil)
	for _, e := range f.eligible {
		eb.Add(e)
	}
	es, err := eb.Finish(context.Background())
	check(b, err)
	set, err := setcodec.Open(es.Coded, es.Ones)
	check(b, err)
	p := &estimatePlatform{key: ek, set: set, es: es}
	estimatePlatforms[f] = p
	return p
}

var estimatePlatforms = map[*fixture]*estimatePlatform{}

// estimateSession runs an estimate-mode match in process as the client
// does: the members flow under the estimate key, one batch per kind, the
// lookups in the deniable set and the estimate.
func estimateSession(p *estimatePlatform, customers []normalized) (psi.Overlap, error) {
	key := p.key.Key()
	s := key.Suite()
	var byKind [3][]ident.Input
	for _, c := range customers {
		byKind[c.kind] = append(byKind[c.kind], c.input())
	}
	D := p.es.Density()
	var per []psi.Overlap
	for _, k := range ident.Kinds {
		if len(byKind[k]) == 0 {
			continue
		}
		mb, err := psi.NewMembersBlinder(s, key.PublicKey())
		if err != nil {
			return psi.Overlap{}, err
		}
		blinded, err := mb.Blind(byKind[k])
		if err != nil {
			return psi.Overlap{}, err
		}
		ev, err := key.Evaluate(blinded, psi.ModeEstimate, 0)
		if err != nil {
			return psi.Overlap{}, err
		}
		out, err := mb.Finalize(ev)
		if err != nil {
			return psi.Overlap{}, err
		}
		hits := 0
		for _, h := range s.Lookup(p.set, out) {
			if h {
				hits++
			}
		}
		per = append(per, psi.EstimateOverlap(len(byKind[k]), hits, p.es.Params.P, D))
	}
	return psi.CombineOverlaps(per...), nil
}

func benchModeSession(b *testing.B, s *psi.Suite, mode psi.Mode, n, cores int) {
	f := fixtureOf(b, n, 0)
	p, err := platformFor(s, f)
	check(b, err)
	var ep *estimatePlatform
	if mode == psi.ModeEstimate {
		ep = estimatePlatformFor(b, s, f)
	}
	customers := f.customers[:n]
	setProcs(b, cores)
	fl := newFloorMeter(newGroupOps(s), sessionFloor, f.inputs(n), cores)
	var op meter
	for b.Loop() {
		var err error
		op.measure(func() {
			switch mode {
			case psi.ModeCount:
				_, err = countSession(p, customers)
			case psi.ModeMembers:
				_, err = membersSession(p, customers)
			case psi.ModeEstimate:
				_, err = estimateSession(ep, customers)
			}
		})
		check(b, err)
		b.StopTimer()
		fl.step()
		b.StartTimer()
	}
	fl.report(b, &op)
	if ep != nil {
		b.ReportMetric(float64(len(ep.es.Coded))/float64(len(f.eligible)), "set-B/eligible")
	}
}
