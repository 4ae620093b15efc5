package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/psimatch/psimatch/server"
)

// pipelineSizes are the advertiser lists of BenchmarkPipeline.
func pipelineSizes() []int {
	if large {
		return []int{20_000, 200_000}
	}
	return []int{20_000}
}

// BenchmarkPipeline runs, against one in-process server over TLS on
// loopback (HTTP/2), the pipelined Client.Match and the sequential client it
// replaced (set first, then each batch blinded, evaluated and finalized in
// turn, through the public Session API), interleaved on the same list each
// iteration. It reports the pipelined match's wall time against the
// sequential one's ("x-sequential") and against the floor of the same work
// on all cores ("x-floor": per advertiser identifier, hash to group, three
// scalar multiplications, two encodings and two decodings), in count mode
// with max_batch 1<<20 (one batch per kind) and in members mode.
func BenchmarkPipeline(b *testing.B) {
	s, err := psi.SuiteByName("ristretto255", false)
	if err != nil {
		b.Fatal(err)
	}
	ops := newGroupOps(s)
	for _, rows := range pipelineSizes() {
		ts, token, list := pipelineServer(b, 20_000, rows)
		for _, mode := range []psi.Mode{psi.ModeCount, psi.ModeMembers} {
			b.Run(fmt.Sprintf("ristretto255/%s/advertiser=%d", mode, rows), func(b *testing.B) {
				var piped, seq meter
				sent := 0
				for i := range b.N {
					c := &protocol.Client{Server: ts.URL, Token: token, HTTP: ts.Client()}
					var rep *protocol.Report
					run := func() {
						var err error
						if rep, err = c.Match(context.Background(), list, protocol.MatchOptions{Mode: mode}); err != nil {
							b.Fatal(err)
						}
					}
					seqRun := func() {
						if n := sequentialMatch(b, ts, token, list, mode); rep != nil && n != rep.Matched.Email+rep.Matched.Phone {
							b.Fatalf("sequential client matched %d, pipelined %d", n, rep.Matched.Email+rep.Matched.Phone)
						}
					}
					if i%2 == 0 { // alternate which goes first
						piped.measure(run)
						seq.measure(seqRun)
					} else {
						seq.measure(seqRun)
						piped.measure(run)
					}
					sent = rep.Sent.Email + rep.Sent.Phone
				}
				b.StopTimer()
				fl := newFloorMeter(ops, sessionFloor, randomInputs(min(sent, 2048)), coreCounts()[len(coreCounts())-1])
				fl.step()
				b.ReportMetric(piped.ns()/float64(sent), "ns/id")
				b.ReportMetric(seq.ns()/float64(sent), "sequential-ns/id")
				b.ReportMetric(piped.ns()/seq.ns(), "x-sequential")
				b.ReportMetric(piped.ns()/float64(sent)/fl.perID(), "x-floor")
				b.ReportMetric(seq.ns()/float64(sent)/fl.perID(), "sequential-x-floor")
			})
		}
	}
}

// sequentialMatch is the client before the pipeline: the set first, then
// each kind's batches one after another. It returns the matches.
func sequentialMatch(b *testing.B, ts *httptest.Server, token string, list *customers.List, mode psi.Mode) int {
	ctx := context.Background()
	c := &protocol.Client{Server: ts.URL, Token: token, HTTP: ts.Client()}
	var sent protocol.Counts
	for _, k := range ident.Kinds {
		*sent.At(k) = list.Sent(k)
	}
	sess, err := c.Open(ctx, mode, sent)
	if err != nil {
		b.Fatal(err)
	}
	set, _, err := sess.Set(ctx, 4<<30)
	if err != nil {
		b.Fatal(err)
	}
	matched := 0
	for _, k := range ident.Kinds {
		in := list.Inputs.Get(k)
		for lo := 0; lo < len(in); lo += sess.Info.MaxBatch {
			got, err := sess.Batch(ctx, set, k, in[lo:min(len(in), lo+sess.Info.MaxBatch)])
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range got {
				if m {
					matched++
				}
			}
		}
	}
	return matched
}

// pipelineServer starts an in-process server of platform identifiers over
// TLS and returns it, an advertiser's token and its list of rows.
func pipelineServer(b *testing.B, platform, rows int) (*httptest.Server, string, *customers.List) {
	dir := b.TempDir()
	cfg := synth.Config{Seed: 3, PlatformIDs: platform, AdvertiserRows: rows}
	var inv, adv bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		b.Fatal(err)
	}
	if _, err := synth.WriteAdvertiser(&adv, cfg); err != nil {
		b.Fatal(err)
	}
	list, err := customers.Read(&adv, customers.Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	invPath := filepath.Join(dir, "inventory.csv")
	if err := os.WriteFile(invPath, inv.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	advPath := filepath.Join(dir, "advertisers.json")
	token, err := advertisers.Add(advPath, advertisers.Advertiser{Name: "bench", Modes: []psi.Mode{psi.ModeCount, psi.ModeMembers},
		MinRows: 1, MaxRows: 1 << 24, SessionsPerDay: 1 << 20, ElementsPerEpoch: 1 << 50})
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	seed, _, err := st.Seed()
	if err != nil {
		b.Fatal(err)
	}
	al, err := audit.Open(st.AuditPath())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { al.Close() })
	suite, _ := psi.SuiteByName("ristretto255", false)
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(context.Background(), server.Config{
		Suite: suite, Seed: seed, Dir: st, Audit: al, Advertisers: advPath, Policy: policy,
		OpenInventory: func(ctx context.Context) (inventory.Source, func() error, error) {
			f, err := os.Open(invPath)
			if err != nil {
				return nil, nil, err
			}
			src, err := inventory.NewSource(f, invPath, inventory.CSV)
			return src, f.Close, err
		},
		Rotate: 24 * time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.EnableHTTP2 = true
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	b.Cleanup(ts.Close)
	return ts, token, list
}
