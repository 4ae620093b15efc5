package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/atomicfile"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the real server and client on synthetic data over HTTPS on 127.0.0.1 and check the result",
		Description: `Makes a platform inventory (with security-only two-factor phones and
opted-out users) and an advertiser list with a known overlap, both from a fixed
seed; starts the real server on 127.0.0.1 with a temporary data directory and a
self-signed TLS certificate, adds an advertiser, and runs the real client
against it. Prints the report beside the overlap it planted.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "platform", Value: 200000, Usage: "platform inventory records"},
			&cli.IntFlag{Name: "advertiser", Value: 20000, Usage: "advertiser list rows"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the synthetic data"},
			&cli.StringFlag{Name: "mode", Value: "estimate", Usage: "estimate, count or members"},
			&cli.StringFlag{Name: "suite", Value: "ristretto255", Usage: "ristretto255 or p256"},
			&cli.StringFlag{Name: "keep", Usage: "keep the data, inventory, list and report in `DIR` and print the commands to rerun the pieces"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bars"},
		},
		Action: func(c *cli.Context) error {
			cfg := synth.Config{Seed: c.Uint64("seed"), PlatformIDs: c.Int("platform"), AdvertiserRows: c.Int("advertiser")}
			if cfg.PlatformIDs < 100 || cfg.AdvertiserRows < 100 {
				return usageError("--platform and --advertiser must be at least 100")
			}
			mode, err := psi.ParseMode(c.String("mode"))
			if err != nil {
				return usageError("--mode: want estimate, count or members")
			}
			return runDemo(c, cfg, mode)
		},
	}
}

func runDemo(c *cli.Context, cfg synth.Config, mode psi.Mode) error {
	start := time.Now()
	w := c.App.Writer
	dir := c.String("keep")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "psimatch-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
		fmt.Fprintf(w, "working in %s, which is deleted when the demo ends (--keep DIR keeps the files)\n", tmp)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return withHint(err, exitInput, "check the directory given to --keep")
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	truth, err := writeDemoData(p("inventory.csv"), p("customers.csv"), cfg)
	if err != nil {
		return err
	}
	os.Remove(p("advertisers.json"))
	token, err := advertisers.Add(p("advertisers.json"), advertisers.Advertiser{
		Name: "demo-advertiser", Modes: []psi.Mode{psi.ModeEstimate, psi.ModeCount, psi.ModeMembers},
		MinRows: 1, MaxRows: 10_000_000, SessionsPerDay: 100, ElementsPerEpoch: 1 << 40,
	})
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(p("server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	fmt.Fprintf(w, "platform: %d inventory records (%d eligible identifiers planted); advertiser: %d rows\n",
		cfg.PlatformIDs, truth.Eligible, cfg.AdvertiserRows)
	fmt.Fprintf(w, "starting the server on 127.0.0.1 (log: %s) ...\n", p("server.log"))
	rs, err := startServer(c.Context, serveOptions{
		inventory: p("inventory.csv"), dataDir: p("data"), advertisers: p("advertisers.json"),
		listen: "127.0.0.1:0", rotate: 24 * time.Hour, suite: c.String("suite"), quiet: c.Bool("quiet"),
		maxClientRows: 1 << 24,
	}, logFile, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer rs.shutdown()
	fmt.Fprintf(w, "server ready at %s after %.1fs; running the client over HTTPS ...\n\n", rs.url, time.Since(start).Seconds())

	args := []string{"psimatch", "match", "--server", rs.url, "--token", token, "--input", p("customers.csv"),
		"--ca-cert", rs.certFile, "--mode", mode.String(), "--report", p("report.json"), "--cache-dir", p("client-cache")}
	if mode == psi.ModeMembers {
		args = append(args, "--matches", p("matches.csv"))
	}
	if c.Bool("quiet") {
		args = append(args, "--quiet")
	}
	// The client runs exactly as `psimatch match` does, through its own flags.
	// Without --keep its files are deleted at the end, so its "written to"
	// lines would point at nothing: they are left out.
	out := w
	var lf *lineFilter
	if c.String("keep") == "" {
		lf = &lineFilter{w: w, drop: []string{"report written to ", "matched rows written to "}}
		out = lf
	}
	err = runApp(c.Context, args, nil, out, c.App.ErrWriter)
	if lf != nil {
		lf.flush()
	}
	if err != nil {
		return err
	}
	var rep protocol.Report
	raw, err := os.ReadFile(p("report.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	matched := rep.Matched.Email + rep.Matched.Phone
	if rep.EstimateReport != nil {
		printDemoEstimate(w, &rep, truth)
	} else {
		fmt.Fprintf(w, "\nplanted overlap: %d (email %d, phone %d); found: %d (email %d, phone %d)\n",
			truth.Overlap, truth.OverlapKinds["email"], truth.OverlapKinds["phone"], matched, rep.Matched.Email, rep.Matched.Phone)
		fmt.Fprintf(w, "security-only platform phones planted in the list: %d; matched: %d (they are never matchable)\n",
			truth.SecurityOnly, matched-truth.Overlap)
	}
	fmt.Fprintf(w, "demo finished in %.1fs\n", time.Since(start).Seconds())
	if c.String("keep") != "" {
		fmt.Fprintf(w, "\nThe pieces are in %s. To run them by hand:\n", dir)
		fmt.Fprintf(w, "  psimatch inventory check --inventory %s\n", p("inventory.csv"))
		fmt.Fprintf(w, "  psimatch serve --inventory %s --data-dir %s --advertisers %s --listen 127.0.0.1:8443\n", p("inventory.csv"), p("data"), p("advertisers.json"))
		fmt.Fprintf(w, "  psimatch match --server https://127.0.0.1:8443 --ca-cert %s --token %s --input %s --report %s\n",
			filepath.Join(p("data"), "tls", "cert.pem"), token, p("customers.csv"), p("report.json"))
	}
	if rep.EstimateReport == nil && matched != truth.Overlap {
		return fmt.Errorf("demo: found %d but planted %d", matched, truth.Overlap)
	}
	return nil
}

// printDemoEstimate sets estimate mode's answer beside the planted truth.
// An interval misses the truth in about one run in twenty, by design, so a
// miss is reported, not an error.
func printDemoEstimate(w io.Writer, rep *protocol.Report, truth synth.Truth) {
	e := rep.EstimateReport
	fmt.Fprintf(w, "\n%-6s %8s  %s\n", "kind", "planted", "estimate mode's answer")
	for _, r := range []struct {
		kind    string
		planted int
		est     float64
		iv      [2]float64
	}{
		{"email", truth.OverlapKinds["email"], e.EstimatedMatched.Email, e.Interval95.Email},
		{"phone", truth.OverlapKinds["phone"], e.EstimatedMatched.Phone, e.Interval95.Phone},
		{"total", truth.Overlap, e.EstimatedMatched.Total, e.Interval95.Total},
	} {
		in := "inside"
		if float64(r.planted) < r.iv[0] || float64(r.planted) > r.iv[1] {
			in = "outside (expected in about 1 run in 20)"
		}
		fmt.Fprintf(w, "%-6s %8d  about %.0f (95%%: %.0f–%.0f): the planted figure is %s the interval\n", r.kind, r.planted, max(r.est, 0), r.iv[0], r.iv[1], in)
	}
	fmt.Fprintf(w, "security-only platform phones planted in the list: %d; the set treats them as values it never saw\n", truth.SecurityOnly)
	fmt.Fprintf(w, "each identifier's answer is deniable: ε = %.3f (a hit or a miss is at most e^ε = %.1f times likelier for an eligible identifier)\n", e.Epsilon, math.Exp(e.Epsilon))
}

func writeDemoData(invPath, listPath string, cfg synth.Config) (synth.Truth, error) {
	if err := atomicfile.Write(invPath, 0o600, func(w io.Writer) error { return synth.WriteInventory(w, cfg) }); err != nil {
		return synth.Truth{}, err
	}
	var truth synth.Truth
	err := atomicfile.Write(listPath, 0o600, func(w io.Writer) error {
		var err error
		truth, err = synth.WriteAdvertiser(w, cfg)
		return err
	})
	return truth, err
}

// lineFilter passes whole lines to w except those starting with one of drop.
type lineFilter struct {
	w    io.Writer
	drop []string
	buf  []byte
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := f.buf[:i+1]
		if !slices.ContainsFunc(f.drop, func(d string) bool { return bytes.HasPrefix(line, []byte(d)) }) {
			if _, err := f.w.Write(line); err != nil {
				return len(p), err
			}
		}
		f.buf = f.buf[i+1:]
	}
}

// flush writes what is left without a final line break.
func (f *lineFilter) flush() {
	if len(f.buf) > 0 {
		f.w.Write(f.buf)
		f.buf = nil
	}
}
