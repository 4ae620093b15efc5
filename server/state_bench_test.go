package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/state"
	"github.com/psimatch/psimatch/internal/state/pgtest"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
)

// benchServer is a server on st with a small inventory and one advertiser
// with budgets no benchmark reaches.
func benchServer(b *testing.B, st state.Store) (*Server, string) {
	b.Helper()
	dir := b.TempDir()
	var inv bytes.Buffer
	synth.WriteInventory(&inv, synth.Config{Seed: 1, PlatformIDs: 1000, AdvertiserRows: 10})
	advPath := filepath.Join(dir, "advertisers.json")
	tok, err := advertisers.Add(advPath, advertisers.Advertiser{Name: "bench", Modes: []psi.Mode{psi.ModeCount}, MinRows: 1, MaxRows: 1 << 30, SessionsPerDay: 1 << 30, ElementsPerEpoch: 1 << 60})
	if err != nil {
		b.Fatal(err)
	}
	suite, _ := psi.SuiteByName("ristretto255", false)
	policy, _ := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	srv, err := New(context.Background(), Config{
		Suite: suite, Seed: make([]byte, 32), Advertisers: advPath, Policy: policy, State: st,
		OpenInventory: func(ctx context.Context) (inventory.Source, func() error, error) {
			src, err := inventory.NewSource(bytes.NewReader(inv.Bytes()), "inventory.csv", inventory.CSV)
			return src, func() error { return nil }, err
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return srv, tok
}

// storeRun measures, on one store, sessions opened per second (each a
// durable reservation) and elements evaluated per second in batches of 100
// (each batch a durable reservation), one client at a time.
func storeRun(b *testing.B, st state.Store, opens, batches int, batch []byte) (opensPerSec, elemsPerSec float64) {
	srv, tok := benchServer(b, st)
	h := srv.Handler()
	body := []byte(`{"mode":"count","elements":{"email":100000}}`)
	var ids []string
	t0 := time.Now()
	for range opens {
		rec := do(h, tok, "POST", protocol.PathSessions, body, nil)
		var s protocol.SessionResponse
		if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &s) != nil {
			b.Fatalf("open: %d %s", rec.Code, rec.Body)
		}
		ids = append(ids, s.ID)
	}
	opensPerSec = float64(opens) / time.Since(t0).Seconds()
	n := len(batch) / 32
	t0 = time.Now()
	for i := range batches {
		rec := do(h, tok, "POST", protocol.PathSession+ids[i%len(ids)]+"/evaluate?kind=email", batch, map[string]string{protocol.HeaderElements: strconv.Itoa(n)})
		if rec.Code != 200 {
			b.Fatalf("evaluate: %d %s", rec.Code, rec.Body)
		}
	}
	elemsPerSec = float64(batches*n) / time.Since(t0).Seconds()
	return opensPerSec, elemsPerSec
}

// blindedB blinds n random email inputs.
func blindedB(b *testing.B, n int) []byte {
	suite, _ := psi.SuiteByName("ristretto255", false)
	inputs := make([]ident.Input, n)
	for i := range inputs {
		inputs[i][0] = byte(ident.Email)
		rand.Read(inputs[i][1:])
	}
	out, err := psi.NewCountBlinder(suite).Blind(inputs)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkStateStores reports session opens per second and evaluate
// throughput with the embedded journal and with PostgreSQL (when
// PSIMATCH_TEST_POSTGRES is set), and their ratios in the same run: the
// price of sharing budgets between replicas.
//
//	go test -run - -bench StateStores -benchtime 3x ./server/
func BenchmarkStateStores(b *testing.B) {
	const opens, batches = 100, 40
	batch := blindedB(b, 100)
	conn := ""
	if os.Getenv(pgtest.Env) != "" {
		conn = pgtest.Database(b)
	}
	var jo, je, po, pe float64
	for b.Loop() {
		j, err := state.OpenJournal(filepath.Join(b.TempDir(), "state.jsonl"), nil)
		if err != nil {
			b.Fatal(err)
		}
		o, e := storeRun(b, j, opens, batches, batch)
		j.Close()
		jo, je = jo+o, je+e
		if conn != "" {
			p, err := state.OpenPostgres(context.Background(), conn)
			if err != nil {
				b.Fatal(err)
			}
			o, e := storeRun(b, p, opens, batches, batch)
			p.Close()
			po, pe = po+o, pe+e
		}
	}
	n := float64(b.N)
	b.ReportMetric(jo/n, "journal-opens/s")
	b.ReportMetric(je/n, "journal-elements/s")
	if conn != "" {
		b.ReportMetric(po/n, "postgres-opens/s")
		b.ReportMetric(pe/n, "postgres-elements/s")
		b.ReportMetric(po/jo, "postgres/journal-opens")
		b.ReportMetric(pe/je, "postgres/journal-elements")
	}
}
