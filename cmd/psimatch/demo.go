package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "match a synthetic advertiser list against a synthetic platform inventory and check the result",
		Description: `Makes a platform inventory (with security-only two-factor phones) and an
advertiser list with a known overlap, both from a fixed seed, runs a
count-mode OPRF match and prints the overlap found beside the planted one.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "platform", Value: 200000, Usage: "platform inventory records"},
			&cli.IntFlag{Name: "advertiser", Value: 20000, Usage: "advertiser list rows"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the synthetic data"},
		},
		Action: func(c *cli.Context) error {
			cfg := synth.Config{Seed: c.Uint64("seed"), PlatformIDs: c.Int("platform"), AdvertiserRows: c.Int("advertiser")}
			if cfg.PlatformIDs < 10 || cfg.AdvertiserRows < 10 {
				return usageError("--platform and --advertiser must be at least 10")
			}
			return runDemo(c.Context, c.App.Writer, cfg)
		},
	}
}

func runDemo(ctx context.Context, w interface{ Write([]byte) (int, error) }, cfg synth.Config) error {
	start := time.Now()
	var inv, list bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		return err
	}
	truth, err := synth.WriteAdvertiser(&list, cfg)
	if err != nil {
		return err
	}
	suite, err := psi.SuiteByName("ristretto255", false)
	if err != nil {
		return err
	}
	seed := make([]byte, psi.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	key, err := psi.DeriveEpochKey(suite, seed, "demo")
	if err != nil {
		return err
	}
	policy, err := inventory.NewPolicy(inventory.Config{})
	if err != nil {
		return err
	}
	var sum inventory.Summary
	set, err := psi.BuildSet(ctx, key, func(yield func(inventory.Eligible) error) error {
		sum, err = inventory.Scan(ctx, &inv, "inventory.csv", inventory.CSV, policy, yield, nil)
		return err
	}, psi.BuildOptions{})
	if err != nil {
		return err
	}
	precompute := time.Since(start)
	countSet, err := setcodec.Open(set.Count, uint64(set.Size))
	if err != nil {
		return err
	}
	cl, err := customers.Read(&list, customers.Options{Name: "customers.csv"}, nil)
	if err != nil {
		return err
	}
	matched := map[ident.Kind]int{}
	for _, k := range ident.Kinds {
		if len(cl.Inputs[k]) == 0 {
			continue
		}
		b := psi.NewCountBlinder(suite)
		blinded, err := b.Blind(cl.Inputs[k])
		if err != nil {
			return err
		}
		ev, err := key.Evaluate(blinded, true, 0)
		if err != nil {
			return err
		}
		out, err := b.Finalize(ev.Elements)
		if err != nil {
			return err
		}
		for _, f := range suite.Lookup(countSet, out) {
			if f {
				matched[k]++
			}
		}
	}
	total := matched[ident.Email] + matched[ident.Phone]
	fmt.Fprintf(w, "platform: %d records, %d eligible identifiers (%d security-only records excluded), set %d bytes\n",
		sum.Records, set.Size, sum.Excluded.SecurityOnly, len(set.Count))
	fmt.Fprintf(w, "advertiser: %d rows, sent %d emails and %d phones\n", cl.Rows, cl.Sent(ident.Email), cl.Sent(ident.Phone))
	fmt.Fprintf(w, "matched: %d (email %d, phone %d); planted: %d (email %d, phone %d)\n",
		total, matched[ident.Email], matched[ident.Phone], truth.Overlap, truth.OverlapKinds["email"], truth.OverlapKinds["phone"])
	fmt.Fprintf(w, "security-only platform phones planted in the list: %d, matched: none of them\n", truth.SecurityOnly)
	fmt.Fprintf(w, "time: %.1fs (platform precompute %.1fs)\n", time.Since(start).Seconds(), precompute.Seconds())
	if total != truth.Overlap {
		return fmt.Errorf("demo: matched %d but planted %d", total, truth.Overlap)
	}
	return nil
}
