package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
	"github.com/psimatch/psimatch/internal/decompress"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/urfave/cli/v2"
)

func matchCommand() *cli.Command {
	return &cli.Command{
		Name:  "match",
		Usage: "match a customer list against a platform's server, sending no raw or hashed identifier",
		Description: `Reads a CSV with a header; columns email, phone, email_sha256 and
phone_sha256 (SHA-256 hex or base64 of the normalized value) are found by name.
Identifiers are normalized, deduplicated and blinded before anything is sent.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "the platform's `URL`, such as https://psi.example.net:8443"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"PSIMATCH_TOKEN"}, Usage: "bearer `TOKEN` given by the platform (or set PSIMATCH_TOKEN)"},
			&cli.StringFlag{Name: "input", Usage: "the customer list `FILE` (CSV with a header)", Required: true},
			&cli.StringFlag{Name: "ca-cert", Usage: "`FILE` of the certificate authority (or self-signed certificate) to trust for the server"},
			&cli.StringFlag{Name: "mode", Value: "count", Usage: "count (how many match) or members (which rows; the platform must allow it)"},
			&cli.StringFlag{Name: "default-region", Usage: "ISO 3166 `REGION` of phone numbers written without a country code, such as US"},
			&cli.StringFlag{Name: "report", Usage: "write the report as one JSON object to `FILE`"},
			&cli.StringFlag{Name: "matches", Usage: "members mode: write the matched rows as CSV (row,matched) to `FILE`"},
			&cli.StringFlag{Name: "email-column", Value: "email", Usage: "`NAME` of the plaintext email column"},
			&cli.StringFlag{Name: "phone-column", Value: "phone", Usage: "`NAME` of the plaintext phone column"},
			&cli.StringFlag{Name: "cache-dir", Usage: "`DIR` to cache the platform's set per epoch (default: the user cache directory)"},
			&cli.BoolFlag{Name: "verifiable", Usage: "members mode: refuse a server that does not prove (RFC 9497 VOPRF) that it used its published key"},
			&cli.BoolFlag{Name: "dry-run", Usage: "read and normalize the input and print what would be sent, without contacting the server"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bars"},
		},
		Action: matchAction,
	}
}

func matchAction(c *cli.Context) error {
	tuneGC() // GOGC=50 unless set: see gc.go
	mode, err := psi.ParseMode(c.String("mode"))
	if err != nil {
		return usageError("--mode: want count or members")
	}
	if c.Bool("verifiable") && mode != psi.ModeMembers {
		return usageError("--verifiable needs --mode members: count-mode answers are shuffled, which a proof cannot cover")
	}
	if c.String("matches") != "" && mode != psi.ModeMembers {
		return usageError("--matches needs --mode members: count mode does not say which rows matched")
	}
	if r := c.String("default-region"); r != "" && !normalize.ValidRegion(r) {
		return usageError("--default-region: want a two-letter ISO 3166 code such as US")
	}
	bar := newProgress(c.App.ErrWriter, c.Bool("quiet"))
	defer bar.done()
	list, err := readList(c, bar)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("dry-run") {
		fmt.Fprintf(w, "dry run: nothing was sent\n")
		fmt.Fprintf(w, "rows: %d\n", list.Rows)
		fmt.Fprintf(w, "%-6s %10s %10s\n", "kind", "to send", "invalid")
		for _, k := range ident.Kinds {
			fmt.Fprintf(w, "%-6s %10d %10d\n", k, list.Sent(k), list.Invalid.Get(k))
		}
		return nil
	}
	if c.String("server") == "" {
		return usageError("--server is required (or use --dry-run)")
	}
	if c.String("token") == "" {
		return usageError("--token or PSIMATCH_TOKEN is required: the platform gives each advertiser a token")
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	cl.Progress = bar.set
	rep, err := cl.Match(c.Context, list, protocol.MatchOptions{Mode: mode, RequireVerifiable: c.Bool("verifiable")})
	bar.done()
	if err != nil {
		return classifyClientError(err, c.String("server"))
	}
	if path := c.String("matches"); path != "" {
		if err := writeMatches(path, rep); err != nil {
			return withHint(err, exitInput, "check the path given to --matches")
		}
	}
	if path := c.String("report"); path != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return withHint(err, exitInput, "check the path given to --report")
		}
	}
	printReport(w, rep, c.String("matches"), c.String("report"))
	return nil
}

func readList(c *cli.Context, bar *progress) (*customers.List, error) {
	path := c.String("input")
	f, err := os.Open(path)
	if err != nil {
		return nil, withHint(err, exitInput, "check the path given to --input")
	}
	defer f.Close()
	var in io.Reader = f
	if fi, err := f.Stat(); err == nil && bar.enabled {
		in = &countingReader{r: f, step: "read and normalize " + filepath.Base(path), total: fi.Size(), bar: bar}
	}
	in = decompress.Reader(in, path) // gzip or zstd, by their magic bytes
	shown := 0
	hidden := 0
	list, err := customers.Read(in, customers.Options{
		Name: filepath.Base(path), DefaultRegion: c.String("default-region"),
		EmailColumn: c.String("email-column"), PhoneColumn: c.String("phone-column"),
	}, func(e *customers.LineError) {
		if shown < maxInvalidShown {
			fmt.Fprintf(c.App.ErrWriter, "%v\n", e)
			shown++
		} else {
			hidden++
		}
	})
	bar.done()
	if hidden > 0 {
		fmt.Fprintf(c.App.ErrWriter, "... and %d more invalid identifiers\n", hidden)
	}
	if errors.Is(err, customers.ErrNoIdentifierColumn) {
		return nil, withHint(err, exitInput, "name the columns with --email-column NAME or --phone-column NAME")
	}
	if err != nil {
		return nil, withHint(err, exitInput)
	}
	return list, nil
}

func newClient(c *cli.Context) (*protocol.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	if ca := c.String("ca-cert"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, withHint(err, exitInput, "check the path given to --ca-cert")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, withHint(fmt.Errorf("%s: no PEM certificate in it", ca), exitInput, "--ca-cert wants the server's CA or self-signed certificate in PEM")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cache := c.String("cache-dir")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "psimatch", "sets")
		}
	}
	return &protocol.Client{Server: c.String("server"), Token: c.String("token"), HTTP: &http.Client{Transport: tr, Timeout: 2 * time.Hour}, CacheDir: cache}, nil
}

// classifyClientError gives each failure of a match its exit status and a
// hint that says what to do.
func classifyClientError(err error, server string) error {
	var se *protocol.StatusError
	var ua x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var ee *psi.ElementError
	switch {
	case errors.As(err, &se):
		switch se.Status {
		case http.StatusUnauthorized:
			return withHint(err, exitAuth, "the server refused the token: check --token or PSIMATCH_TOKEN with the platform")
		case http.StatusForbidden:
			return withHint(err, exitAuth, "this mode is not allowed for your advertiser account; try --mode count or ask the platform")
		case http.StatusTooManyRequests:
			return withHint(err, exitQuota, fmt.Sprintf("a quota is exhausted: retry after %s (at %s)", se.RetryAfter, time.Now().Add(se.RetryAfter).Format(time.RFC3339)))
		}
		return withHint(err, exitFailure)
	case errors.As(err, &ua):
		return withHint(err, exitNetwork, "the server's certificate is from an unknown authority: pass its CA (or self-signed) certificate with --ca-cert FILE")
	case errors.As(err, &hostErr):
		return withHint(err, exitNetwork, "the server's certificate does not name "+server+"; check --server")
	case errors.As(err, &dnsErr), errors.As(err, &opErr), errors.Is(err, context.DeadlineExceeded):
		return withHint(err, exitNetwork, "could not reach the server at "+server+"; check --server and that the server is running")
	case errors.Is(err, protocol.ErrNotVerifiable):
		return withHint(err, exitProtocol, "this server does not prove its evaluations; ask the platform to run serve --verifiable, or match without --verifiable")
	case errors.As(err, &ee), errors.Is(err, psi.ErrProof), errors.Is(err, psi.ErrProofMissing),
		errors.Is(err, psi.ErrEvaluationCount), errors.Is(err, protocol.ErrSetDigest), errors.Is(err, protocol.ErrBadResponse):
		return withHint(err, exitProtocol, "the server sent something invalid; no result is claimed. Tell the platform")
	}
	if strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF") {
		return withHint(err, exitNetwork, "could not reach the server at "+server+"; check --server and that the server is running")
	}
	return err
}

func printReport(w io.Writer, r *protocol.Report, matchesPath, reportPath string) {
	fmt.Fprintf(w, "psimatch %s match, epoch %s, %s\n\n", r.Mode, r.Epoch, r.Suite)
	fmt.Fprintf(w, "%-6s %10s %10s %10s %10s\n", "kind", "sent", "matched", "rate", "invalid")
	rate := func(m, s int) string {
		if s == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(m)/float64(s))
	}
	fmt.Fprintf(w, "%-6s %10d %10d %10s %10d\n", "email", r.Sent.Email, r.Matched.Email, rate(r.Matched.Email, r.Sent.Email), r.Invalid.Email)
	fmt.Fprintf(w, "%-6s %10d %10d %10s %10d\n", "phone", r.Sent.Phone, r.Matched.Phone, rate(r.Matched.Phone, r.Sent.Phone), r.Invalid.Phone)
	sent, matched := r.Sent.Email+r.Sent.Phone, r.Matched.Email+r.Matched.Phone
	fmt.Fprintf(w, "%-6s %10d %10d %10s\n\n", "total", sent, matched, rate(matched, sent))
	fmt.Fprintf(w, "rows read: %d", r.Rows)
	if r.MatchedRows != nil {
		fmt.Fprintf(w, ", rows matched: %d", *r.MatchedRows)
	}
	fmt.Fprintf(w, "\nplatform's eligible set: %d identifiers", r.ServerSetSize)
	if r.SetFromCache {
		fmt.Fprintf(w, " (from the local cache)")
	}
	fmt.Fprintf(w, "\ntime: %.2fs, sent %s, received %s\n", r.Seconds, humanBytes(r.BytesSent), humanBytes(r.BytesReceived))
	if matchesPath != "" {
		fmt.Fprintf(w, "matched rows written to %s\n", matchesPath)
	}
	if reportPath != "" {
		fmt.Fprintf(w, "report written to %s\n", reportPath)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeMatches writes the members-mode matches: header row,matched, then
// for each matched data row its 1-based number and the kinds (email;phone).
func writeMatches(path string, r *protocol.Report) error {
	return atomicfile.Write(path, 0o600, func(w io.Writer) error {
		if _, err := io.WriteString(w, "row,matched\n"); err != nil {
			return err
		}
		for i, kinds := range r.RowMatches {
			if len(kinds) == 0 {
				continue
			}
			names := make([]string, len(kinds))
			for j, k := range kinds {
				names[j] = k.String()
			}
			if _, err := fmt.Fprintf(w, "%d,%s\n", i+1, strings.Join(names, ";")); err != nil {
				return err
			}
		}
		return nil
	})
}

// countingReader reports the bytes read to a progress bar.
type countingReader struct {
	r     io.Reader
	step  string
	n     int64
	total int64
	bar   *progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.bar.set(c.step, c.n, c.total)
	return n, err
}
