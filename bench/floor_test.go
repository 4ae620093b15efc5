package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/group"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
)

// large reports whether the opt-in heavy runs are wanted.
var large = os.Getenv("PSIMATCH_BENCH_LARGE") == "1"

// meter accumulates the wall and process CPU time of repeated runs of one
// piece of work.
type meter struct {
	wall, cpu time.Duration
	runs      int
}

// add times f and adds it to the current run without counting a new run
// (for work split around an excluded step).
func (m *meter) add(f func()) {
	c0 := processCPU()
	t0 := time.Now()
	f()
	m.wall += time.Since(t0)
	m.cpu += processCPU() - c0
}

// measure times f as one whole run.
func (m *meter) measure(f func()) {
	m.add(f)
	m.runs++
}

// ns returns the mean wall time of a run, in nanoseconds.
func (m *meter) ns() float64 { return float64(m.wall.Nanoseconds()) / float64(max(m.runs, 1)) }

// cpuNs returns the mean process CPU time of a run, in nanoseconds (0 where
// the platform cannot tell).
func (m *meter) cpuNs() float64 { return float64(m.cpu.Nanoseconds()) / float64(max(m.runs, 1)) }

// groupOps runs circl's bare group operations for a suite: the floor.
type groupOps struct {
	g   group.Group
	dst []byte // RFC 9497 HashToGroup domain separation tag of the suite and mode
	k   group.Scalar
	pts []group.Element // random points to multiply
}

func newGroupOps(s *psi.Suite) *groupOps {
	g := s.Group()
	o := &groupOps{
		g:   g,
		dst: fmt.Appendf(nil, "HashToGroup-OPRFV1-%c-%s", s.Mode(), s.Name()),
		k:   g.RandomNonZeroScalar(rand.Reader),
	}
	for range 64 {
		o.pts = append(o.pts, g.RandomElement(rand.Reader))
	}
	return o
}

// recipe is the bare group work one identifier needs on one side.
type recipe struct{ hash, mul, encode, decode int }

// The floors of the targets, per identifier.
var (
	// advertiser: hash to group, blind, encode; decode the evaluated element, unblind.
	advertiserFloor = recipe{1, 2, 1, 1}
	// platform, per advertiser identifier: decode, multiply by the key, encode.
	platformFloor = recipe{0, 1, 1, 1}
	// platform, per own identifier once per epoch: hash to group, multiply, encode.
	precomputeFloor = recipe{1, 1, 1, 0}
	// a whole session, per advertiser identifier: both of the first two.
	sessionFloor = recipe{1, 3, 2, 2}
)

// run does r's work for inputs[lo:hi] on the calling goroutine. encs are
// valid encoded elements to decode (cycled).
func (o *groupOps) run(r recipe, inputs []ident.Input, encs [][]byte) {
	e := o.g.NewElement().Set(o.pts[0])
	for i := range inputs {
		for range r.hash {
			e = o.g.HashToElement(inputs[i][:], o.dst)
		}
		for range r.decode {
			if err := e.UnmarshalBinary(encs[i%len(encs)]); err != nil {
				panic(err)
			}
		}
		for range r.mul {
			e.Mul(e, o.k)
		}
		for range r.encode {
			if _, err := e.MarshalBinaryCompress(); err != nil {
				panic(err)
			}
		}
	}
}

// mulBatch does n bare scalar multiplications spread over workers goroutines
// (on the calling goroutine when workers is 1).
func (o *groupOps) mulBatch(n, workers int) {
	one := func(lo, hi int) {
		e := o.g.NewElement()
		for i := lo; i < hi; i++ {
			e.Mul(o.pts[i%len(o.pts)], o.k)
		}
	}
	if workers <= 1 {
		one(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { one(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
}

// encodings returns the encodings of n random elements, to decode.
func (o *groupOps) encodings(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b, err := o.g.RandomElement(rand.Reader).MarshalBinaryCompress()
		if err != nil {
			panic(err)
		}
		out[i] = b
	}
	return out
}

// floorMeter measures the floor of a batch interleaved with the benchmarked
// operation: the recipe on one goroutine, and, when more than one core is
// used, the machine's scaling of bare scalar multiplications over them,
// measured as an adjacent pair (one goroutine, then cores goroutines) so
// that a change in the machine's load hits both alike. The benchmark calls
// step once per iteration, with its timer stopped.
type floorMeter struct {
	ops      *groupOps
	r        recipe
	inputs   []ident.Input
	encs     [][]byte
	cores    int
	muls     int   // bare multiplications per scaling measurement
	single   meter // the recipe over the batch, one goroutine
	mul1     meter // muls bare multiplications, one goroutine
	mulCores meter // the same, over cores goroutines
}

func newFloorMeter(ops *groupOps, r recipe, inputs []ident.Input, cores int) *floorMeter {
	return &floorMeter{
		ops: ops, r: r, inputs: inputs, cores: cores,
		encs: ops.encodings(min(len(inputs), 256)),
		muls: max(256*cores, len(inputs)/4),
	}
}

// step measures the floor once more.
func (f *floorMeter) step() {
	f.single.measure(func() { f.ops.run(f.r, f.inputs, f.encs) })
	if f.cores > 1 {
		f.mul1.measure(func() { f.ops.mulBatch(f.muls, 1) })
		f.mulCores.measure(func() { f.ops.mulBatch(f.muls, f.cores) })
	}
}

// complete measures the floor if the benchmark has not.
func (f *floorMeter) complete() {
	if f.single.runs == 0 {
		f.step()
	}
}

// scaling is the machine's speed-up of bare scalar multiplications on cores
// goroutines over one.
func (f *floorMeter) scaling() float64 {
	if f.cores == 1 {
		return 1
	}
	return f.mul1.ns() / f.mulCores.ns()
}

// perID is the floor per identifier in ns: the one-core floor divided by
// the scaling.
func (f *floorMeter) perID() float64 {
	return f.single.ns() / float64(len(f.inputs)) / f.scaling()
}

// report reports op, n identifiers per run, against the floor.
func (f *floorMeter) report(b *testing.B, op *meter) {
	f.complete()
	n := float64(len(f.inputs))
	perID := op.ns() / n
	b.ReportMetric(perID, "ns/id")
	b.ReportMetric(f.perID(), "floor-ns/id")
	b.ReportMetric(perID/f.perID(), "x-floor")
	if c := f.single.cpuNs(); c > 0 && op.cpuNs() > 0 {
		b.ReportMetric(op.cpuNs()/c, "x-floor-cpu")
	}
	b.ReportMetric(float64(f.cores), "cores")
	if f.cores > 1 {
		b.ReportMetric(f.scaling(), "scaling")
	}
}

// setProcs sets GOMAXPROCS to n for the rest of the benchmark.
func setProcs(b *testing.B, n int) {
	prev := runtime.GOMAXPROCS(n)
	b.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// coreCounts returns the core counts to run parallel steps on: one, and
// GOMAXPROCS if that is more.
func coreCounts() []int {
	if p := runtime.GOMAXPROCS(0); p > 1 {
		return []int{1, p}
	}
	return []int{1}
}

// runFloorPrimitives benchmarks circl's primitives one at a time on one
// goroutine, each interleaved with bare scalar multiplications so that its
// cost is also given as a fraction of one ("x-mul").
func runFloorPrimitives(b *testing.B, s *psi.Suite) {
	ops := newGroupOps(s)
	const m = 256
	inputs := randomInputs(m)
	encs := ops.encodings(m)
	elems := make([]group.Element, m)
	scalars := make([]group.Scalar, m)
	for i := range elems {
		elems[i] = ops.g.RandomElement(rand.Reader)
		scalars[i] = ops.g.RandomNonZeroScalar(rand.Reader)
	}
	prims := []struct {
		name string
		op   func(i int)
	}{
		{"mul", func(i int) { ops.g.NewElement().Mul(elems[i], scalars[i]) }},
		{"hash-to-group", func(i int) { ops.g.HashToElement(inputs[i][:], ops.dst) }},
		{"encode", func(i int) {
			if _, err := elems[i].MarshalBinaryCompress(); err != nil {
				panic(err)
			}
		}},
		{"decode", func(i int) {
			if err := ops.g.NewElement().UnmarshalBinary(encs[i]); err != nil {
				panic(err)
			}
		}},
		{"inversion", func(i int) { ops.g.NewScalar().Inv(scalars[i]) }},
	}
	for _, p := range prims {
		b.Run(p.name, func(b *testing.B) {
			setProcs(b, 1)
			var mul meter
			i := 0
			for b.Loop() {
				p.op(i % m)
				i++
				if i%m == 0 {
					b.StopTimer()
					mul.measure(func() { ops.mulBatch(m, 1) })
					b.StartTimer()
				}
			}
			if mul.runs == 0 {
				mul.measure(func() { ops.mulBatch(m, 1) })
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(i)
			b.ReportMetric(perOp/(mul.ns()/m), "x-mul")
		})
	}
	// The machine's own scaling of bare scalar multiplications.
	cores := runtime.GOMAXPROCS(0)
	n := 1024
	b.Run(fmt.Sprintf("scaling/n=%d/cores=%d", n, cores), func(b *testing.B) {
		var one, all meter
		for b.Loop() {
			all.measure(func() { ops.mulBatch(n, cores) })
			b.StopTimer()
			one.measure(func() { ops.mulBatch(n, 1) })
			b.StartTimer()
		}
		b.ReportMetric(all.ns()/float64(n), "ns/mul")
		b.ReportMetric(one.ns()/float64(n), "ns/mul-1core")
		b.ReportMetric(one.ns()/all.ns(), "scaling")
		b.ReportMetric(float64(cores), "cores")
	})
}
