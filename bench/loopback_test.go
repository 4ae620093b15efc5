package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// The loopback scale runs: the real `psimatch serve` and `psimatch match`
// binaries as two processes on 127.0.0.1, so each one's peak memory is its
// own. The default run is small; PSIMATCH_BENCH_LARGE=1 adds platforms of
// 1,000,000 and 10,000,000 identifiers and lists of 100,000 and 1,000,000
// rows.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// psimatchBinary builds the binary once for the benchmarks.
// PSIMATCH_BENCH_BIN names a prebuilt binary instead (to measure another
// version of psimatch with the same benchmark).
func psimatchBinary(b *testing.B) string {
	binOnce.Do(func() {
		if binPath = os.Getenv("PSIMATCH_BENCH_BIN"); binPath != "" {
			return
		}
		dir, err := os.MkdirTemp("", "psimatch-bench-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "psimatch")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/psimatch").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		b.Fatal(binErr)
	}
	return binPath
}

type loopbackSize struct{ platform, advertiser int }

// PSIMATCH_BENCH_LOOPBACK="PxA[,PxA...]" runs the given sizes instead.
func loopbackSizes() []loopbackSize {
	if env := os.Getenv("PSIMATCH_BENCH_LOOPBACK"); env != "" {
		var sizes []loopbackSize
		for _, f := range strings.Split(env, ",") {
			var sz loopbackSize
			if _, err := fmt.Sscanf(f, "%dx%d", &sz.platform, &sz.advertiser); err == nil {
				sizes = append(sizes, sz)
			}
		}
		return sizes
	}
	sizes := []loopbackSize{{50_000, 5_000}}
	if large {
		sizes = append(sizes,
			loopbackSize{1_000_000, 10_000}, loopbackSize{1_000_000, 100_000}, loopbackSize{1_000_000, 1_000_000},
			loopbackSize{10_000_000, 100_000}, loopbackSize{10_000_000, 1_000_000})
	}
	return sizes
}

// servingRE finds the server's URL and certificate in its log.
var (
	servingRE = regexp.MustCompile(`msg=serving url=(\S+)`)
	certRE    = regexp.MustCompile(`self-signed TLS certificate.* path=(\S+)`)
)

// startServe starts `psimatch serve` and waits until it serves; it returns
// the process, its URL and certificate, and how long the start took (the
// platform's precompute, reading the inventory included).
func startServe(b *testing.B, bin, dir string) (*exec.Cmd, string, string, time.Duration) {
	cmd := exec.Command(bin, "serve", "--quiet", "--inventory", filepath.Join(dir, "inventory.csv"),
		"--data-dir", filepath.Join(dir, "data"), "--advertisers", filepath.Join(dir, "advertisers.json"),
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var url, cert string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if m := certRE.FindStringSubmatch(line); m != nil {
			cert = m[1]
			if u, err := strconv.Unquote(cert); err == nil {
				cert = u
			}
		}
		if m := servingRE.FindStringSubmatch(line); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatal("psimatch serve did not start")
	}
	go io.Copy(io.Discard, stderr)
	return cmd, url, cert, time.Since(t0)
}

// peakRSS returns a live process's peak resident set (VmHWM) in bytes.
func peakRSS(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkLoopback runs one advertiser against a platform over HTTPS on
// loopback, each side its own process. Per iteration: one `psimatch match`
// in count mode with an empty set cache (so the set is downloaded). It
// reports the session's elapsed time as a ratio to the floor of the same
// work (per advertiser identifier: hash to group, three scalar
// multiplications, two encodings and two decodings, over all cores), the
// platform's start (inventory read and precompute) against its floor, the
// bytes on the wire per advertiser identifier and per set element, and the
// peak memory of each process.
func BenchmarkLoopback(b *testing.B) {
	bin := psimatchBinary(b)
	s, err := psi.SuiteByName("ristretto255", false)
	if err != nil {
		b.Fatal(err)
	}
	ops := newGroupOps(s)
	for _, sz := range loopbackSizes() {
		b.Run(fmt.Sprintf("ristretto255/loopback/platform=%d/advertiser=%d", sz.platform, sz.advertiser), func(b *testing.B) {
			dir := b.TempDir()
			cfg := synth.Config{Seed: 3, PlatformIDs: sz.platform, AdvertiserRows: sz.advertiser}
			for _, f := range []struct {
				name  string
				write func(io.Writer) error
			}{
				{"inventory.csv", func(w io.Writer) error { return synth.WriteInventory(w, cfg) }},
				{"customers.csv", func(w io.Writer) error { _, err := synth.WriteAdvertiser(w, cfg); return err }},
			} {
				var buf bytes.Buffer
				if err := f.write(&buf); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f.name), buf.Bytes(), 0o600); err != nil {
					b.Fatal(err)
				}
			}
			token, err := advertisers.Add(filepath.Join(dir, "advertisers.json"), advertisers.Advertiser{
				Name: "bench", Modes: []psi.Mode{psi.ModeCount}, MinRows: 1, MaxRows: 1 << 24, SessionsPerDay: 1 << 20, ElementsPerEpoch: 1 << 50,
			})
			if err != nil {
				b.Fatal(err)
			}
			srv, url, cert, start := startServe(b, bin, dir)
			defer func() {
				srv.Process.Signal(syscall.SIGTERM)
				srv.Wait()
			}()

			var (
				elapsed  time.Duration
				clientHW float64
				rep      protocol.Report
			)
			b.ResetTimer()
			for i := range b.N {
				report := filepath.Join(dir, fmt.Sprintf("report-%d.json", i))
				cmd := exec.Command(bin, "match", "--quiet", "--mode", "count", "--server", url, "--ca-cert", cert, "--token", token,
					"--input", filepath.Join(dir, "customers.csv"), "--report", report,
					"--cache-dir", filepath.Join(dir, fmt.Sprintf("cache-%d", i)))
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				t0 := time.Now()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				// The child's rusage Maxrss would count the memory it shared
				// with this process before exec; its own VmHWM, read until
				// it exits, does not.
				done := make(chan struct{})
				hw := make(chan float64, 1)
				go func() {
					peak := 0.0
					for {
						peak = max(peak, peakRSS(cmd.Process.Pid))
						select {
						case <-done:
							hw <- peak
							return
						case <-time.After(10 * time.Millisecond):
						}
					}
				}()
				err := cmd.Wait()
				elapsed += time.Since(t0)
				close(done)
				clientHW = max(clientHW, <-hw)
				if err != nil {
					b.Fatalf("psimatch match: %v\n%s", err, out.String())
				}
				raw, err := os.ReadFile(report)
				if err != nil || json.Unmarshal(raw, &rep) != nil {
					b.Fatalf("report: %v", err)
				}
			}
			b.StopTimer()
			serverHW := peakRSS(srv.Process.Pid)

			sent := rep.Sent.Email + rep.Sent.Phone
			session := newFloorMeter(ops, sessionFloor, randomInputs(min(sent, 2048)), coreCounts()[len(coreCounts())-1])
			session.step()
			pre := newFloorMeter(ops, precomputeFloor, randomInputs(2048), coreCounts()[len(coreCounts())-1])
			pre.step()
			perSession := elapsed.Seconds() / float64(b.N)
			b.ReportMetric(perSession, "s/match")
			b.ReportMetric(perSession*1e9/(float64(sent)*session.perID()), "x-floor")
			b.ReportMetric(start.Seconds(), "s-precompute")
			b.ReportMetric(start.Seconds()*1e9/(float64(rep.ServerSetSize)*pre.perID()), "precompute-x-floor")
			b.ReportMetric(float64(rep.BytesSent+rep.BytesReceived-int64(rep.SetBytes))/float64(sent), "B/adv-id")
			b.ReportMetric(float64(rep.SetBytes)/float64(rep.ServerSetSize), "B/set-elem")
			b.ReportMetric(serverHW/(1<<20), "server-MiB")
			b.ReportMetric(clientHW/(1<<20), "client-MiB")
			b.ReportMetric(float64(rep.SetBytes)/(1<<20), "set-MiB")
		})
	}
}
