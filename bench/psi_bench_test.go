package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// BenchmarkPSI measures both sides of a match for each suite, each against
// its floor measured in the same benchmark. Names are suite/side/step/n=/cores=.
func BenchmarkPSI(b *testing.B) {
	for _, name := range []string{"ristretto255", "p256"} {
		b.Run(name, func(b *testing.B) {
			s := suite(b, name, false)
			// P-256 in circl goes through math/big (hash to group costs two
			// scalar multiplications): by default it gets the smaller
			// batches, on all cores only, and no precompute, speed-up or
			// session steps (they run with PSIMATCH_BENCH_LARGE=1).
			full := name == "ristretto255" || large
			batches, precompute, speedup := []int{1024}, []int{4096}, []int{4096}
			cores, precomputeCores := coreCounts()[len(coreCounts())-1:], []int{1}
			if full {
				batches, precompute, cores = []int{1024, 4096}, []int{4096, 16384}, coreCounts()
				precomputeCores = cores
			}
			if large {
				batches = append(batches, 16384, 65536)
				precompute = append(precompute, 65536, 262144, 1<<20)
				speedup = append(speedup, 16384, 65536)
			}
			b.Run("floor", func(b *testing.B) {
				if !full {
					// The P-256 steps below measure their own floors; the
					// primitive table runs with PSIMATCH_BENCH_LARGE=1.
					b.Skip("P-256 primitives run with PSIMATCH_BENCH_LARGE=1")
				}
				runFloorPrimitives(b, s)
			})
			b.Run("advertiser", func(b *testing.B) {
				for _, mode := range []string{"count", "members"} {
					forSizes(b, mode, batches, cores, func(b *testing.B, n, c int) { benchAdvertiser(b, s, mode, n, c) })
				}
				if full {
					forSizes(b, "members-verifiable", batches, cores[len(cores)-1:], func(b *testing.B, n, c int) { benchVerifiableAdvertiser(b, name, n, c) })
				}
			})
			b.Run("platform", func(b *testing.B) {
				for _, mode := range []string{"count", "members"} {
					forSizes(b, mode, batches, cores, func(b *testing.B, n, c int) { benchPlatform(b, s, mode, n, c) })
				}
				if full {
					forSizes(b, "members-verifiable", batches, cores[len(cores)-1:], func(b *testing.B, n, c int) { benchVerifiablePlatform(b, name, n, c) })
				}
				if !full {
					return // P-256 by default: the per-session steps only (time budget of the default run)
				}
				forSizes(b, "precompute", precompute, precomputeCores, func(b *testing.B, n, c int) { benchPrecompute(b, s, n, c) })
				if runtime.GOMAXPROCS(0) > 1 {
					forSizes(b, "speedup", speedup, cores[len(cores)-1:], func(b *testing.B, n, _ int) { benchSpeedup(b, s, n) })
				}
			})
			b.Run("session", func(b *testing.B) {
				if !full {
					b.Skip("P-256 sessions run with PSIMATCH_BENCH_LARGE=1")
				}
				sizes := batches[:min(len(batches), 2)]
				if large {
					sizes = []int{65536}
				}
				forSizes(b, "count", sizes, cores[len(cores)-1:], func(b *testing.B, n, c int) { benchSession(b, s, n, c) })
			})
		})
	}
}

// forSizes runs fn as step/n=N/cores=C for each batch size and core count;
// only the smallest batch runs on one core as well, unless
// PSIMATCH_BENCH_LARGE is set.
func forSizes(b *testing.B, step string, sizes, cores []int, fn func(b *testing.B, n, cores int)) {
	for i, n := range sizes {
		for _, c := range cores {
			if c == 1 && i > 0 && len(cores) > 1 && !large {
				continue
			}
			b.Run(fmt.Sprintf("%s/n=%d/cores=%d", step, n, c), func(b *testing.B) { fn(b, n, c) })
		}
	}
}

func suite(b testing.TB, name string, verifiable bool) *psi.Suite {
	s, err := psi.SuiteByName(name, verifiable)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func epochKey(b testing.TB, s *psi.Suite) *psi.Key {
	k, err := psi.DeriveEpochKey(s, benchSeed, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// fixtureOf returns the default fixture (4096 customers, 16800 eligible
// identifiers) or, when that is too small, the large one.
func fixtureOf(b testing.TB, customers, eligible int) *fixture {
	get := defaultFixture
	if customers > 4096 || eligible > 16800 {
		get = largeFixture
	}
	f, err := get()
	check(b, err)
	if len(f.customers) < customers || len(f.eligible) < eligible {
		b.Fatalf("fixture has %d customers and %d eligible identifiers, want %d and %d", len(f.customers), len(f.eligible), customers, eligible)
	}
	return f
}

// customersFor returns the PRF inputs of n customers.
func customersFor(b testing.TB, n int) []ident.Input { return fixtureOf(b, n, 0).inputs(n) }

// benchAdvertiser measures the advertiser's side of one batch: blinder,
// Blind and Finalize, the platform's Evaluate excluded.
func benchAdvertiser(b *testing.B, s *psi.Suite, mode string, n, cores int) {
	key := epochKey(b, s)
	inputs := customersFor(b, n)
	setProcs(b, cores)
	fl := newFloorMeter(newGroupOps(s), advertiserFloor, inputs, cores)
	var op meter
	for b.Loop() {
		var err error
		switch mode {
		case "count":
			var cb *psi.CountBlinder
			var blinded []byte
			op.add(func() {
				cb = psi.NewCountBlinder(s)
				blinded, err = cb.Blind(inputs)
			})
			check(b, err)
			b.StopTimer()
			ev, err := key.Evaluate(blinded, psi.ModeCount, 0)
			check(b, err)
			b.StartTimer()
			op.add(func() { _, err = cb.Finalize(ev) })
		case "members":
			var mb *psi.MembersBlinder
			var blinded []byte
			op.add(func() {
				if mb, err = psi.NewMembersBlinder(s, key.PublicKey()); err == nil {
					blinded, err = mb.Blind(inputs)
				}
			})
			check(b, err)
			b.StopTimer()
			ev, err := key.Evaluate(blinded, psi.ModeMembers, 0)
			check(b, err)
			b.StartTimer()
			op.add(func() { _, err = mb.Finalize(ev) })
		}
		check(b, err)
		op.runs++
		b.StopTimer()
		fl.step()
		b.StartTimer()
	}
	fl.report(b, &op)
}

// blindFor returns n blinded customer elements for mode.
func blindFor(b testing.TB, key *psi.Key, mode string, n int) []byte {
	inputs := customersFor(b, n)
	var blinded []byte
	var err error
	if mode == "count" {
		blinded, err = psi.NewCountBlinder(key.Suite()).Blind(inputs)
	} else {
		var mb *psi.MembersBlinder
		if mb, err = psi.NewMembersBlinder(key.Suite(), key.PublicKey()); err == nil {
			blinded, err = mb.Blind(inputs)
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	return blinded
}

// benchPlatform measures Key.Evaluate per advertiser identifier: with the
// shuffle in count mode, without in members mode.
func benchPlatform(b *testing.B, s *psi.Suite, mode string, n, cores int) {
	key := epochKey(b, s)
	blinded := blindFor(b, key, mode, n)
	setProcs(b, cores)
	fl := newFloorMeter(newGroupOps(s), platformFloor, customersFor(b, n), cores)
	var op meter
	for b.Loop() {
		var err error
		op.measure(func() { _, err = key.Evaluate(blinded, modeOf(mode), 0) })
		check(b, err)
		b.StopTimer()
		fl.step()
		b.StartTimer()
	}
	fl.report(b, &op)
}

// benchPrecompute measures psi.BuildSet per own identifier over eligible
// identifiers already collected by the inventory scan, and the share of it
// that coding the two sets takes (two setcodec.Encode calls of n values,
// measured beside it).
func benchPrecompute(b *testing.B, s *psi.Suite, n, cores int) {
	f := fixtureOf(b, 0, n)
	key := epochKey(b, s)
	inputs := make([]ident.Input, n)
	for i, e := range f.eligible[:n] {
		inputs[i] = e.Input()
	}
	L := setcodec.Bits(psi.DefaultMaxClientRows, uint64(n))
	vals, tmp := randomValues(n, L, 1), make([]setcodec.Value, n)
	setProcs(b, cores)
	fl := newFloorMeter(newGroupOps(s), precomputeFloor, inputs, cores)
	var op, enc meter
	for b.Loop() {
		var err error
		op.measure(func() { _, err = psi.BuildSet(context.Background(), key, f.scan(n), psi.BuildOptions{}) })
		check(b, err)
		b.StopTimer()
		fl.step()
		enc.measure(func() {
			for range 2 {
				copy(tmp, vals)
				if _, err = setcodec.Encode(tmp, L); err != nil {
					return
				}
			}
		})
		check(b, err)
		b.StartTimer()
	}
	fl.report(b, &op)
	b.ReportMetric(enc.ns()/op.ns(), "encode-share")
}

// benchSpeedup measures Key.Evaluate (count mode) at GOMAXPROCS=1 and at
// all cores, beside the machine's own scaling of bare scalar multiplications
// measured in the same iterations.
func benchSpeedup(b *testing.B, s *psi.Suite, n int) {
	key := epochKey(b, s)
	blinded := blindFor(b, key, "count", n)
	ops := newGroupOps(s)
	p := runtime.GOMAXPROCS(0)
	var one, all, mul1, mulP meter
	for b.Loop() {
		var err error
		all.measure(func() { _, err = key.Evaluate(blinded, psi.ModeCount, 0) })
		check(b, err)
		b.StopTimer()
		runtime.GOMAXPROCS(1)
		one.measure(func() { _, err = key.Evaluate(blinded, psi.ModeCount, 0) })
		runtime.GOMAXPROCS(p)
		check(b, err)
		mul1.measure(func() { ops.mulBatch(n, 1) })
		mulP.measure(func() { ops.mulBatch(n, p) })
		b.StartTimer()
	}
	speedup, scaling := one.ns()/all.ns(), mul1.ns()/mulP.ns()
	b.ReportMetric(all.ns()/float64(n), "ns/id")
	b.ReportMetric(one.ns()/float64(n), "ns/id-1core")
	b.ReportMetric(speedup, "speedup")
	b.ReportMetric(scaling, "scaling")
	b.ReportMetric(speedup/scaling, "x-scaling")
	b.ReportMetric(float64(p), "cores")
}

// benchVerifiableAdvertiser measures a members-mode batch in verifiable mode
// (proofs checked) against the same batch in base mode, interleaved.
func benchVerifiableAdvertiser(b *testing.B, name string, n, cores int) {
	inputs := customersFor(b, n)
	setProcs(b, cores)
	type side struct {
		s   *psi.Suite
		key *psi.Key
	}
	sv, sb := suite(b, name, true), suite(b, name, false)
	ver, base := side{sv, epochKey(b, sv)}, side{sb, epochKey(b, sb)}
	run := func(sd side, m *meter) error {
		var mb *psi.MembersBlinder
		var blinded []byte
		var err error
		m.add(func() {
			if mb, err = psi.NewMembersBlinder(sd.s, sd.key.PublicKey()); err == nil {
				blinded, err = mb.Blind(inputs)
			}
		})
		if err != nil {
			return err
		}
		b.StopTimer()
		ev, err := sd.key.Evaluate(blinded, psi.ModeMembers, 0)
		b.StartTimer()
		if err != nil {
			return err
		}
		m.add(func() { _, err = mb.Finalize(ev) })
		m.runs++
		return err
	}
	var vm, bm meter
	for b.Loop() {
		check(b, run(ver, &vm))
		b.StopTimer()
		check(b, run(base, &bm))
		b.StartTimer()
	}
	reportBase(b, n, cores, &vm, &bm)
}

// benchVerifiablePlatform measures Key.Evaluate in verifiable members mode
// (with its DLEQ proofs) against base members mode, interleaved.
func benchVerifiablePlatform(b *testing.B, name string, n, cores int) {
	kv, kb := epochKey(b, suite(b, name, true)), epochKey(b, suite(b, name, false))
	bv, bb := blindFor(b, kv, "members", n), blindFor(b, kb, "members", n)
	setProcs(b, cores)
	var vm, bm meter
	for b.Loop() {
		var err error
		vm.measure(func() { _, err = kv.Evaluate(bv, psi.ModeMembers, 0) })
		check(b, err)
		b.StopTimer()
		bm.measure(func() { _, err = kb.Evaluate(bb, psi.ModeMembers, 0) })
		check(b, err)
		b.StartTimer()
	}
	reportBase(b, n, cores, &vm, &bm)
}

func reportBase(b *testing.B, n, cores int, ver, base *meter) {
	b.ReportMetric(ver.ns()/float64(n), "ns/id")
	b.ReportMetric(base.ns()/float64(n), "base-ns/id")
	b.ReportMetric(ver.ns()/base.ns(), "x-base")
	if base.cpuNs() > 0 && ver.cpuNs() > 0 {
		b.ReportMetric(ver.cpuNs()/base.cpuNs(), "x-base-cpu")
	}
	b.ReportMetric(float64(cores), "cores")
}

// benchSession measures a whole count-mode match in process, per advertiser
// identifier: PRF inputs from the normalized identifiers, one batch per kind
// blinded, evaluated and shuffled, finalized and looked up in the platform's
// set (already downloaded and opened). Beside it: the floor of both sides
// and the hashed baseline on the same normalized identifiers.
func benchSession(b *testing.B, s *psi.Suite, n, cores int) {
	f := fixtureOf(b, n, 0)
	p, err := platformFor(s, f)
	check(b, err)
	hashed := newHashedPlatform(f.eligible)
	customers := f.customers[:n]
	setProcs(b, cores)
	fl := newFloorMeter(newGroupOps(s), sessionFloor, f.inputs(n), cores)
	var op, hm meter
	for b.Loop() {
		var got, want int
		op.measure(func() { got, err = countSession(p, customers) })
		check(b, err)
		b.StopTimer()
		fl.step()
		hm.measure(func() { want = hashed.match(customers) })
		if got != want {
			b.Fatalf("psimatch found %d matches, hashed matching %d", got, want)
		}
		b.StartTimer()
	}
	fl.report(b, &op)
	b.ReportMetric(hm.ns()/float64(n), "hashed-ns/id")
	b.ReportMetric(op.ns()/hm.ns(), "x-hashed")
	if hm.cpuNs() > 0 {
		b.ReportMetric(op.cpuNs()/hm.cpuNs(), "x-hashed-cpu")
	}
}

// BenchmarkHashed is the status quo alone: SHA-256 of each normalized
// customer identifier looked up in the platform's map of hashes, one core.
func BenchmarkHashed(b *testing.B) {
	f, err := defaultFixture()
	check(b, err)
	h := newHashedPlatform(f.eligible)
	for _, n := range []int{1024, 4096} {
		b.Run(fmt.Sprintf("match/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				h.match(f.customers[:n])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/id")
		})
	}
}

// BenchmarkSetCodec measures the coded set: bytes per element against the
// entropy bound, and the rates of encoding, decoding and opening (digest
// check plus a full decode), at the truncation a platform uses for lists of
// up to psi.DefaultMaxClientRows rows.
func BenchmarkSetCodec(b *testing.B) {
	sizes := []int{1 << 16, 1 << 20}
	if large {
		sizes = append(sizes, 1<<24)
	}
	for _, n := range sizes {
		L := setcodec.Bits(psi.DefaultMaxClientRows, uint64(n))
		vals := randomValues(n, L, 2)
		tmp := make([]setcodec.Value, n)
		copy(tmp, vals)
		enc, err := setcodec.Encode(tmp, L)
		check(b, err)
		set, err := setcodec.Open(enc, uint64(n))
		check(b, err)
		bound := setcodec.EntropyBound(L, set.Len())
		report := func(b *testing.B) {
			per := float64(len(enc)) / float64(set.Len())
			b.ReportMetric(per, "bytes/elem")
			b.ReportMetric(bound, "entropy-bytes/elem")
			b.ReportMetric(per/bound, "x-entropy")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
		}
		name := fmt.Sprintf("n=%d/L=%d", n, L)
		b.Run(name+"/encode", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				copy(tmp, vals)
				b.StartTimer()
				if _, err := setcodec.Encode(tmp, L); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(name+"/decode", func(b *testing.B) {
			var x uint64
			for b.Loop() {
				for v := range set.All() {
					x ^= v.Lo
				}
			}
			sinkU64 = x
			report(b)
		})
		b.Run(name+"/open", func(b *testing.B) {
			for b.Loop() {
				if _, err := setcodec.Open(enc, uint64(n)); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
}

var sinkU64 uint64

func check(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// modeOf parses a benchmark's mode name.
func modeOf(name string) psi.Mode {
	m, err := psi.ParseMode(name)
	if err != nil {
		panic(err)
	}
	return m
}
