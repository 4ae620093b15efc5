package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi"
)

// serverMemorySizes are the platforms BenchmarkServerMemory starts: small by
// default, 10^6, 2·10^6 and 10^7 identifiers with PSIMATCH_BENCH_LARGE=1
// (pick one with -bench 'ServerMemory/platform=2000000$').
func serverMemorySizes() []int {
	if large {
		return []int{100_000, 1_000_000, 2_000_000, 10_000_000}
	}
	return []int{50_000}
}

// BenchmarkServerMemory starts the real `psimatch serve` on a synthetic
// inventory (70 % of it eligible) and measures its start: the inventory
// read and the set build. It reports the server's peak resident memory
// (VmHWM, read once it serves) against the issue-18 bound of 2 × the coded
// set + 96 MiB ("x-bound", target ≤ 1; the coded set is one of the two
// coded forms, count or members, which the server holds both of), the
// start's wall time against its floor (hash to group, one scalar
// multiplication and one encoding per eligible identifier, over all
// cores), the server's CPU seconds and the coded bytes per element.
func BenchmarkServerMemory(b *testing.B) {
	bin := psimatchBinary(b)
	s, err := psi.SuiteByName("ristretto255", false)
	if err != nil {
		b.Fatal(err)
	}
	ops := newGroupOps(s)
	for _, n := range serverMemorySizes() {
		b.Run(fmt.Sprintf("ristretto255/platform=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			cfg := synth.Config{Seed: 3, PlatformIDs: n, AdvertiserRows: 10}
			f, err := os.Create(filepath.Join(dir, "inventory.csv"))
			if err != nil {
				b.Fatal(err)
			}
			if err := synth.WriteInventory(f, cfg); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			if _, err := advertisers.Add(filepath.Join(dir, "advertisers.json"), advertisers.Advertiser{
				Name: "bench", MinRows: 1, MaxRows: 1 << 24, SessionsPerDay: 1, ElementsPerEpoch: 1 << 30,
			}); err != nil {
				b.Fatal(err)
			}
			var peak, cpu, start float64
			var setBytes, size int
			b.ResetTimer()
			for i := range b.N {
				data := filepath.Join(dir, fmt.Sprintf("data-%d", i)) // no cached set: every start builds
				if err := os.Rename(filepath.Join(dir, "data"), data); err != nil && !os.IsNotExist(err) {
					b.Fatal(err)
				}
				srv, _, _, took := startServe(b, bin, dir)
				peak = max(peak, peakRSS(srv.Process.Pid))
				srv.Process.Signal(syscall.SIGTERM)
				srv.Wait()
				start += took.Seconds()
				cpu += (srv.ProcessState.UserTime() + srv.ProcessState.SystemTime()).Seconds()
				setBytes, size = cachedSet(b, filepath.Join(dir, "data"))
			}
			b.StopTimer()
			pre := newFloorMeter(ops, precomputeFloor, randomInputs(2048), coreCounts()[len(coreCounts())-1])
			pre.step()
			setMiB := float64(setBytes) / (1 << 20)
			b.ReportMetric(peak/(1<<20), "server-MiB")
			b.ReportMetric(setMiB, "set-MiB")
			b.ReportMetric(peak/(1<<20)/(2*setMiB+96), "x-bound")
			b.ReportMetric(start/float64(b.N), "s-start")
			b.ReportMetric(cpu/float64(b.N), "cpu-s")
			b.ReportMetric(start/float64(b.N)*1e9/(float64(size)*pre.perID()), "start-x-floor")
			b.ReportMetric(float64(setBytes)/float64(size), "B/set-elem")
		})
	}
}

// cachedSet reads the set the server saved in its data directory: the
// bytes of its count-mode coding and its size.
func cachedSet(b *testing.B, data string) (int, int) {
	d, err := store.Open(data)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	epochs, err := d.Sets()
	if err != nil || len(epochs) == 0 {
		b.Fatalf("no cached set in %s: %v", data, err)
	}
	meta, count, _, ok, err := d.LoadSet(epochs[len(epochs)-1])
	if err != nil || !ok {
		b.Fatalf("cached set: %v", err)
	}
	return len(count), meta.Size
}
