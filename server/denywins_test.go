package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
)

// conflictsList is an advertiser's list holding every value of the conflict
// inventory (psi/inventory/testdata/conflicts.csv) in its normal form, and
// one value the platform does not have. Rows 4, 5 and 10 are the only ones
// deny wins allows.
const conflictsList = `email,phone
eve@example.com,
carolx@gmail.com,
ivan@example.com,
judy@example.com,
mallory@example.com,
trent@example.com,
oscar@example.com,
,+14155550100
,+14155550101
,+14155550102
,+14155550199
nobody@example.com,
`

// restart stops the server and starts a new one on the same data directory
// and inventory, with no signal, as a process restart would.
func (f *fixture) restart() {
	f.t.Helper()
	f.close()
	var err error
	if f.store, err = store.Open(filepath.Join(f.dir, "data")); err != nil {
		f.t.Fatal(err)
	}
	if f.auditLog, err = audit.Open(f.store.AuditPath()); err != nil {
		f.t.Fatal(err)
	}
	f.cfg.Dir, f.cfg.Audit = f.store, f.auditLog
	f.start()
}

// matchedRows runs a members-mode match and returns the rows that matched.
func (f *fixture) matchedRows(list *customers.List) []int {
	f.t.Helper()
	rep, err := f.client("member").Match(context.Background(), list, protocol.MatchOptions{Mode: psi.ModeMembers})
	if err != nil {
		f.t.Fatal(err)
	}
	var rows []int
	for i, kinds := range rep.RowMatches {
		if len(kinds) > 0 {
			rows = append(rows, i)
		}
	}
	return rows
}

// TestDenyWinsThroughServer serves the conflict inventory and matches every
// one of its values, in count and members modes: only the identifiers deny
// wins allows match. Then, with the server stopped, a user is opted out in
// the inventory file and the server started again on the same data
// directory with no signal: that user's identifiers (the phone and, by deny
// wins, the email) no longer match, and the epoch's public key differs.
func TestDenyWinsThroughServer(t *testing.T) {
	f := newFixture(t, false)
	conflicts, err := os.ReadFile("../psi/inventory/testdata/conflicts.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.invPath, conflicts, 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart()
	list, err := customers.Read(strings.NewReader(conflictsList), customers.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	rep, err := f.client("counter").Match(context.Background(), list, protocol.MatchOptions{Mode: psi.ModeCount})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched.Email != 2 || rep.Matched.Phone != 1 || rep.ServerSetSize != 3 {
		t.Fatalf("count mode: matched %+v of a set of %d; want 2 emails and 1 phone of 3", rep.Matched, rep.ServerSetSize)
	}
	if got := f.matchedRows(list); !equalInts(got, []int{4, 5, 10}) {
		t.Fatalf("members mode: rows %v matched, want [4 5 10] (mallory, trent, +14155550199)", got)
	}
	epoch := f.srv.Epoch()
	pk := f.srv.current.Load().key.PublicKey()

	// A restart with the same inventory keeps the set and the key.
	f.restart()
	if !bytes.Equal(f.srv.current.Load().key.PublicKey(), pk) {
		t.Fatal("a restart with an unchanged inventory changed the key")
	}

	// u12 opts out on their phone: their email goes too.
	optedOut := bytes.Replace(conflicts, []byte("u12,phone,+1 415 555 0199,advertising,false"), []byte("u12,phone,+1 415 555 0199,advertising,true"), 1)
	if bytes.Equal(optedOut, conflicts) {
		t.Fatal("the test inventory lacks u12's phone")
	}
	if err := os.WriteFile(f.invPath, optedOut, 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart()
	if f.srv.Epoch() != epoch {
		t.Fatalf("epoch %s after the restart, was %s", f.srv.Epoch(), epoch)
	}
	if bytes.Equal(f.srv.current.Load().key.PublicKey(), pk) {
		t.Fatal("the rebuilt set is served under the previous generation's key")
	}
	if got := f.matchedRows(list); !equalInts(got, []int{5}) {
		t.Fatalf("after u12 opted out: rows %v matched, want [5] (trent)", got)
	}
	rep, err = f.client("counter").Match(context.Background(), list, protocol.MatchOptions{Mode: psi.ModeCount})
	if err != nil || rep.Matched.Email != 1 || rep.Matched.Phone != 0 {
		t.Fatalf("count mode after the opt-out: %+v, %v", rep, err)
	}

	// The audit log says what each start did.
	f.auditLog.Close()
	f.auditLog = nil
	events, err := audit.ReadAll(f.store.AuditPath())
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	var last map[string]any
	for _, e := range events {
		if e["event"] == "inventory_load" {
			actions = append(actions, e["reason"].(string)+":"+e["action"].(string))
			last = e
		}
	}
	if want := []string{"start:built", "start:built", "start:cached", "start:built"}; !equalStrings(actions, want) {
		t.Errorf("inventory loads %v, want %v", actions, want)
	}
	if last["previous_fingerprint"] == nil || last["previous_fingerprint"] == last["fingerprint"] {
		t.Errorf("the last load does not name the fingerprint it replaced: %v", last)
	}
	sum, _ := last["summary"].(map[string]any)
	excl, _ := sum["excluded"].(map[string]any)
	if excl["user_opted_out_elsewhere"] != float64(3) || excl["value_shared_with_security_only"] != float64(4) {
		t.Errorf("the audit log's exclusions: %v", excl)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRatchetForwardSecrecy plays the thief of a data directory after a
// rotation: with the seed erased (as serve does once the ratchet's anchor is
// saved), nothing in the directory derives the previous epoch's key, while
// the current epoch's key is derived from the anchor.
func TestRatchetForwardSecrecy(t *testing.T) {
	f := newFixture(t, false)
	old := f.srv.current.Load()
	oldPK := old.key.PublicKey()
	oldFP := old.fingerprint
	oldSecret := old.secret.Secret // a copy: the rotation wipes the original
	if err := f.store.EraseSeed(); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Hour)
	if err := f.srv.rebuild(context.Background(), "rotation"); err != nil {
		t.Fatal(err)
	}
	cur := f.srv.current.Load()
	if cur.id == old.id {
		t.Fatal("no rotation")
	}
	if old.secret.Secret != ([psi.EpochSecretSize]byte{}) {
		t.Error("the previous epoch's secret was not wiped from memory after the rotation")
	}

	// Everything the thief finds: every 32-byte window of every file but the
	// coded sets and the audit log, which hold only public values (outputs
	// truncated to a few bytes, counts, fingerprints, public keys).
	var candidates [][]byte
	data := filepath.Join(f.dir, "data")
	filepath.Walk(data, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasSuffix(path, ".set") || filepath.Base(path) == "audit.jsonl" {
			return nil
		}
		b, _ := os.ReadFile(path)
		for i := 0; i+psi.SeedSize <= len(b); i++ {
			candidates = append(candidates, b[i:i+psi.SeedSize])
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(data, "seed")); err == nil {
		t.Fatal("the seed is still in the data directory")
	}
	anchor, ok, err := f.store.LoadAnchor()
	if err != nil || !ok || anchor.Epoch != cur.id {
		t.Fatalf("anchor %q, %v, %v; want epoch %s", anchor.Epoch, ok, err, cur.id)
	}
	// The anchor gives the current key...
	a := psi.EpochSecret{Epoch: anchor.Epoch, Secret: anchor.Secret}
	k, err := psi.DeriveGenerationKey(f.cfg.Suite, &a, cur.fingerprint[:])
	if err != nil || !bytes.Equal(k.PublicKey(), cur.key.PublicKey()) {
		t.Fatal("the anchor does not derive the current key")
	}
	// ...and no candidate, as a seed or as a ratchet secret, gives the old
	// one. The key is a function of the secret, so comparing secrets is the
	// same test as deriving keys, at a fraction of the cost.
	old2 := psi.EpochSecret{Epoch: old.id, Secret: oldSecret}
	if k, err := psi.DeriveGenerationKey(f.cfg.Suite, &old2, oldFP[:]); err != nil || !bytes.Equal(k.PublicKey(), oldPK) {
		t.Fatal("the copied secret does not derive the previous key: the test would prove nothing")
	}
	for _, c := range candidates {
		if bytes.Equal(c, oldSecret[:]) {
			t.Fatal("the data directory holds the previous epoch's secret")
		}
		if o, err := psi.RatchetOrigin(c, old.id); err == nil && o.Secret == oldSecret {
			t.Fatal("the data directory holds a seed that derives the previous epoch's secret")
		}
	}
	t.Logf("tried %d candidates from the data directory", len(candidates))
}

// TestRatchetAcrossRotateChanges: a restart with a longer --rotate, whose
// epoch began before the ratchet's anchor, steps the ratchet forward once
// instead of refusing to start; a clock set back past the anchor's epoch is
// refused (its secret was erased).
func TestRatchetAcrossRotateChanges(t *testing.T) {
	f := newFixture(t, false) // 10:00, hourly epochs
	pk := f.srv.current.Load().key.PublicKey()
	f.cfg.Rotate = 24 * time.Hour
	f.restart()
	if got := f.srv.Epoch(); got != "20261130T000000Z" {
		t.Fatalf("epoch %s after --rotate 24h", got)
	}
	if bytes.Equal(f.srv.current.Load().key.PublicKey(), pk) {
		t.Fatal("the daily epoch reuses the hourly epoch's key")
	}
	f.close()
	back := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	f.now.Store(&back)
	var err error
	if f.store, err = store.Open(filepath.Join(f.dir, "data")); err != nil {
		t.Fatal(err)
	}
	f.cfg.Dir, f.cfg.Audit = f.store, nil
	if _, err := New(context.Background(), f.cfg); !errors.Is(err, psi.ErrEpochBehind) {
		t.Fatalf("a clock a day behind the ratchet: %v, want ErrEpochBehind", err)
	}
}
