package psi

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/psi/setcodec"
)

func buildFromCSV(t *testing.T, k *Key, csv string) (*PlatformSet, inventory.Summary) {
	t.Helper()
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	var sum inventory.Summary
	set, err := BuildSet(context.Background(), k, func(yield func(inventory.Eligible) error) error {
		sum, err = inventory.Scan(context.Background(), strings.NewReader(csv), "inventory.csv", inventory.CSV, policy, yield, nil)
		return err
	}, BuildOptions{MaxClientRows: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return set, sum
}

// countMatches runs the count-mode advertiser side for each kind of the list
// against the coded set and returns the matches per kind.
func countMatches(t *testing.T, k *Key, set *PlatformSet, list *customers.List, members bool) map[ident.Kind]int {
	t.Helper()
	enc := set.Count
	if members {
		enc = set.Members
	}
	s, err := setcodec.Open(enc, uint64(set.Size))
	if err != nil {
		t.Fatal(err)
	}
	got := map[ident.Kind]int{}
	for _, kind := range ident.Kinds {
		if len(list.Inputs.Get(kind)) == 0 {
			continue
		}
		out := advertiserOutputs(t, k, list.Inputs.Get(kind), members)
		for _, f := range k.suite.Lookup(s, out) {
			if f {
				got[kind]++
			}
		}
	}
	return got
}

// TestEndToEndSecurityOnlyNeverMatches: the platform's inventory holds
// security-only phones, opted-out users and account-only emails; the
// advertiser's list holds them all. Only the planted eligible overlap
// matches, in both modes, through the real inventory, set builder, set codec
// and blind/evaluate/finalize path.
func TestEndToEndSecurityOnlyNeverMatches(t *testing.T) {
	cfg := synth.Config{Seed: 42, PlatformIDs: 5000, AdvertiserRows: 1500, Overlap: 300, SecurityOnly: 200}
	var inv, list bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		t.Fatal(err)
	}
	truth, err := synth.WriteAdvertiser(&list, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if truth.SecurityOnly != 200 || truth.Overlap != 300 {
		t.Fatalf("synth planted %+v", truth)
	}
	k := testKey(t, "ristretto255", false)
	set, sum := buildFromCSV(t, k, inv.String())
	if set.Size != truth.Eligible || int(sum.Excluded.SecurityOnly) != cfg.PlatformIDs/10 {
		t.Fatalf("set size %d (want %d), summary %+v", set.Size, truth.Eligible, sum)
	}
	cl, err := customers.Read(&list, customers.Options{Name: "customers.csv"}, func(e *customers.LineError) { t.Error(e) })
	if err != nil {
		t.Fatal(err)
	}
	for _, members := range []bool{false, true} {
		got := countMatches(t, k, set, cl, members)
		if got[ident.Email] != truth.OverlapKinds["email"] || got[ident.Phone] != truth.OverlapKinds["phone"] {
			t.Errorf("members=%v: matched %v, planted %v", members, got, truth.OverlapKinds)
		}
	}
}

// TestSameValueUnderSeveralPurposes: deny wins. A value held for security by
// one user and for advertising by another is not matchable, nor is a value
// held only for security or only by opted-out users.
func TestSameValueUnderSeveralPurposes(t *testing.T) {
	inv := "user_id,kind,value,purposes,opted_out\n" +
		"u1,phone,+14155550100,security,false\n" +
		"u2,phone,+14155550100,advertising,false\n" + // denied by u1's security record
		"u3,phone,+14155550101,security,false\n" +
		"u4,phone,+14155550101,account,false\n" + // never eligible
		"u5,email,a@example.com,advertising;account,true\n" +
		"u6,email,a@example.com,advertising,true\n" + // opted out twice
		"u7,email,b@example.com,advertising,false\n"
	k := testKey(t, "ristretto255", false)
	set, _ := buildFromCSV(t, k, inv)
	if set.Size != 1 {
		t.Fatalf("set size %d, want 1", set.Size)
	}
	list := "email,phone\na@example.com,+14155550100\nb@example.com,+14155550101\n"
	cl, err := customers.Read(strings.NewReader(list), customers.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := countMatches(t, k, set, cl, false)
	if want := (map[ident.Kind]int{ident.Email: 1}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("matched %v, want %v", got, want)
	}
}
