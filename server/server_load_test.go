package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
)

// TestLoadConcurrentAdvertisers: 32 advertisers match at once on loopback
// (10,000 rows each; 1,000 with -short) against one server. Every result is
// exact (100 rows each under the race detector), no goroutine is left behind once idle connections are closed, and
// the heap comes back to where it was.
func TestLoadConcurrentAdvertisers(t *testing.T) {
	const advertisersN = 32
	rows := 10000
	if testing.Short() {
		rows = 1000
	}
	if raceEnabled {
		rows = 100
	}
	f := newFixture(t, false)
	h := newHardenedTimeouts(t, f, loadTimeouts)
	h.client.Timeout = 5 * time.Minute
	type job struct {
		name  string
		list  *customers.List
		truth synth.Truth
	}
	jobs := make([]job, advertisersN)
	for i := range jobs {
		cfg := synth.Config{Seed: uint64(100 + i), PlatformIDs: 4000, AdvertiserRows: rows, Overlap: 250 + i}
		var buf bytes.Buffer
		truth, err := synth.WriteAdvertiser(&buf, cfg)
		if err != nil {
			t.Fatal(err)
		}
		list, err := customers.Read(&buf, customers.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = job{fmt.Sprintf("load%02d", i), list, truth}
		f.addHostile(jobs[i].name, psi.ModeCount, psi.ModeMembers)
	}
	tr := h.client.Transport.(*http.Transport)
	tr.CloseIdleConnections()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	baseG := runtime.NumGoroutine()

	// Sample the heap while the load runs.
	stop := make(chan struct{})
	var peak uint64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	})
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Go(func() {
			mode := psi.ModeCount
			if i%4 == 3 {
				mode = psi.ModeMembers
			}
			c := &protocol.Client{Server: h.url, Token: f.tokens[j.name], HTTP: h.client}
			rep, err := c.Match(context.Background(), j.list, protocol.MatchOptions{Mode: mode})
			switch {
			case err != nil:
				errs[i] = err
			case rep.Matched.Email != j.truth.OverlapKinds["email"] || rep.Matched.Phone != j.truth.OverlapKinds["phone"]:
				errs[i] = fmt.Errorf("matched %+v, planted %v", rep.Matched, j.truth.OverlapKinds)
			case mode == psi.ModeMembers && *rep.MatchedRows != j.truth.Overlap:
				errs[i] = fmt.Errorf("matched rows %d, planted %d", *rep.MatchedRows, j.truth.Overlap)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	sampler.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", jobs[i].name, err)
		}
	}
	tr.CloseIdleConnections()
	waitGoroutines(t, baseG+2)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	ids := advertisersN * rows
	t.Logf("%d advertisers x %d rows: %s (%.0f identifiers/s), heap in use %.1f MiB before, peak %.1f MiB, %.1f MiB after; goroutines %d before, %d after",
		advertisersN, rows, elapsed.Round(time.Millisecond), float64(ids)/elapsed.Seconds(),
		mib(before.HeapInuse), mib(peak), mib(after.HeapInuse), baseG, runtime.NumGoroutine())
	// What remains is the sessions' bookkeeping, not their elements.
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 16<<20 {
		t.Errorf("the heap grew by %.1f MiB and stayed", mib(uint64(grow)))
	}
	// protocol.Client and server share this process: each advertiser holds its list,
	// blinds and outputs (about 250 bytes an identifier on both sides).
	if limit := before.HeapInuse + uint64(ids)*1024 + 64<<20; peak > limit {
		t.Errorf("peak heap %.1f MiB above %.1f MiB", mib(peak), mib(limit))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
