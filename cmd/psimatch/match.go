package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
		Description: `Reads a CSV with a header (comma, semicolon, tab or | separated; a UTF-8
byte order mark is fine). Identifier columns are found by name, ignoring case
and punctuation: email, e-mail, email address, mail; phone, phone number,
mobile, cell, telephone, tel; email_sha256 and phone_sha256 (SHA-256 hex or
base64 of the normalized value). Identifiers are normalized, deduplicated and
blinded before anything is sent. The list and the output paths are checked
before a session is opened.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "the platform's `URL`, such as https://psi.example.net:8443"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"PSIMATCH_TOKEN"}, Usage: "bearer `TOKEN` given by the platform (or set PSIMATCH_TOKEN)"},
			&cli.StringFlag{Name: "token-file", Usage: "read the bearer token from `FILE` (first line)"},
			&cli.StringFlag{Name: "input", Usage: "the customer list `FILE` (CSV with a header; - for standard input)", Required: true},
			&cli.StringFlag{Name: "ca-cert", Usage: "`FILE` of the certificate authority (or self-signed certificate) to trust for the server"},
			&cli.StringFlag{Name: "server-fingerprint", Usage: "trust exactly the server certificate with this `sha256:HEX` fingerprint (printed by serve), instead of --ca-cert"},
			&cli.StringFlag{Name: "mode", Value: "estimate", Usage: "estimate (about how many match, with a 95% interval; no row is ever said to match), count (exactly how many) or members (which rows); count and members need the platform's consent"},
			&cli.StringFlag{Name: "default-region", Usage: "ISO 3166 `REGION` of phone numbers written without a country code, such as US"},
			&cli.StringFlag{Name: "report", Usage: "write the report as one JSON object to `FILE`"},
			&cli.StringFlag{Name: "matches", Usage: "members mode: write the matched rows as CSV (row,matched, or row,ID,matched with --id-column) to `FILE`"},
			&cli.StringFlag{Name: "email-column", Usage: "`NAME` of the plaintext email column (default: a header such as email or Email Address)"},
			&cli.StringFlag{Name: "phone-column", Usage: "`NAME` of the plaintext phone column (default: a header such as phone, mobile or Phone Number)"},
			&cli.StringFlag{Name: "id-column", Usage: "`NAME` of a column (your customer id) copied into --matches for each matched row"},
			&cli.StringFlag{Name: "cache-dir", Usage: "`DIR` to cache the platform's set per epoch (default: the user cache directory)"},
			&cli.BoolFlag{Name: "verifiable", Usage: "members or estimate mode: refuse a server that does not prove (RFC 9497 VOPRF) that it used its published key"},
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
		return usageError("--mode: want estimate, count or members")
	}
	if c.Bool("verifiable") && mode == psi.ModeCount {
		return usageError("--verifiable needs --mode members or estimate: count-mode answers are shuffled, which a proof cannot cover")
	}
	if c.String("matches") != "" && mode != psi.ModeMembers {
		return usageError("--matches needs --mode members: %s mode never says which rows matched", mode)
	}
	if r := c.String("default-region"); r != "" && !normalize.ValidRegion(r) {
		return regionError(r)
	}
	if c.String("id-column") != "" && c.String("matches") == "" {
		return usageError("--id-column is written to --matches: give --matches FILE too")
	}
	var cfg *clientConfig
	if !c.Bool("dry-run") {
		// Everything that can fail without the server fails before the list
		// is read and before a session is opened.
		var err error
		if cfg, err = checkClientFlags(c); err != nil {
			return err
		}
		for _, flag := range []string{"report", "matches"} {
			if err := checkWritable(flag, c.String(flag)); err != nil {
				return err
			}
		}
	}
	bar := newProgress(c.App.ErrWriter, c.Bool("quiet"))
	defer bar.done()
	list, err := readList(c, bar, mode)
	if err != nil {
		return err
	}
	if err := checkList(c, list); err != nil {
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
	cl, err := newClient(c, cfg)
	if err != nil {
		return err
	}
	cl.Progress = bar.set
	tuneGCForMatch() // the list is read: little garbage from here on (gc.go)
	rep, err := cl.Match(c.Context, list, protocol.MatchOptions{Mode: mode, RequireVerifiable: c.Bool("verifiable")})
	bar.done()
	if err != nil {
		return classifyClientError(err, c.String("server"))
	}
	if path := c.String("matches"); path != "" {
		if err := writeMatches(path, rep, list); err != nil {
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

func readList(c *cli.Context, bar *progress, mode psi.Mode) (*customers.List, error) {
	path := c.String("input")
	var in io.Reader
	name := filepath.Base(path)
	if path == "-" {
		in, name = c.App.Reader, "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, withHint(err, exitInput, "check the path given to --input")
		}
		defer f.Close()
		in = f
		if fi, err := f.Stat(); err == nil && bar.enabled {
			in = &countingReader{r: f, step: "read and normalize " + name, total: fi.Size(), bar: bar}
		}
	}
	in = decompress.Reader(in, path) // gzip or zstd, by their magic bytes
	shown := 0
	hidden := 0
	list, err := customers.Read(in, customers.Options{
		Name: name, DefaultRegion: c.String("default-region"),
		EmailColumn: c.String("email-column"), PhoneColumn: c.String("phone-column"), IDColumn: c.String("id-column"),
		SkipRowIndex: mode != psi.ModeMembers, // only members mode answers per row
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
	if errors.Is(err, customers.ErrColumnNotFound) {
		return nil, withHint(err, exitInput, "give one of the columns found, as written (case and punctuation do not matter)")
	}
	if errors.Is(err, customers.ErrIDIsIdentifier) {
		return nil, withHint(err, exitUsage, "--id-column copies a column into --matches; name your customer id column, never an email or phone column")
	}
	if errors.Is(err, customers.ErrMalformed) {
		return nil, withHint(err, exitInput, "fix that line (or export the list again with quoting on) and run again")
	}
	if err != nil {
		return nil, withHint(err, exitInput)
	}
	return list, nil
}

func newClient(c *cli.Context, cfg *clientConfig) (*protocol.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	tr.TLSClientConfig = cfg.tls
	cache := c.String("cache-dir")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "psimatch", "sets")
		}
	}
	return &protocol.Client{Server: cfg.server, Token: cfg.token, HTTP: &http.Client{Transport: tr, Timeout: 2 * time.Hour}, CacheDir: cache}, nil
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
	var rhe tls.RecordHeaderError
	switch {
	case errors.Is(err, errFingerprint):
		return withHint(err, exitNetwork, "the server showed another certificate than the one you were told to trust: check the fingerprint with the platform (serve prints it at start)")
	case errors.As(err, &rhe), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return withHint(err, exitNetwork, "the server at "+server+" does not speak TLS: the platform may serve plain http (--plaintext); ask it for the https:// address")
	case errors.Is(err, protocol.ErrServerURL), errors.Is(err, protocol.ErrToken):
		return withHint(err, exitUsage)
	case errors.As(err, &se) && strings.HasPrefix(server, "http://") && se.Status == http.StatusBadRequest && se.Reason == "":
		// Go's TLS servers answer a plain HTTP request with a bare 400.
		return withHint(err, exitNetwork, "the server speaks TLS: use --server "+"https://"+strings.TrimPrefix(server, "http://"))
	case errors.As(err, &se) && (se.Reason == "below_min_rows" || se.Reason == "above_max_rows"):
		return withHint(err, exitInput, "the platform sets each advertiser's row limits: "+
			map[string]string{"below_min_rows": "add rows, or ask the platform to lower the minimum", "above_max_rows": "split the list, or ask the platform to raise the maximum"}[se.Reason])
	case errors.As(err, &se):
		switch se.Status {
		case http.StatusUnauthorized:
			return withHint(err, exitAuth, "the server refused the token: check --token or PSIMATCH_TOKEN with the platform")
		case http.StatusForbidden:
			return withHint(err, exitAuth, "this mode is not allowed for your advertiser account; try --mode estimate (allowed by default) or ask the platform")
		case http.StatusTooManyRequests:
			return withHint(err, exitQuota, fmt.Sprintf("a quota is exhausted: retry after %s (at %s)", se.RetryAfter, time.Now().Add(se.RetryAfter).Format(time.RFC3339)))
		}
		return withHint(err, exitFailure)
	case errors.As(err, &ua):
		return withHint(err, exitNetwork, "the server's certificate is from an unknown authority: pass its CA (or self-signed) certificate with --ca-cert FILE, or its fingerprint with --server-fingerprint sha256:...")
	case errors.As(err, &hostErr):
		return withHint(err, exitNetwork, "the server's certificate does not name "+hostErr.Host+": check --server, ask the platform to add the name with serve --tls-host "+hostErr.Host+", or trust the certificate with --server-fingerprint")
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
	if r.EstimateReport != nil {
		printEstimate(w, r, reportPath)
		return
	}
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

// printEstimate prints an estimate-mode report: estimates and intervals
// per kind and in total, never a row.
func printEstimate(w io.Writer, r *protocol.Report, reportPath string) {
	e := r.EstimateReport
	fmt.Fprintf(w, "%-6s %10s  %s\n", "kind", "sent", "estimated in the platform's eligible set")
	line := func(kind string, sent int, est, se float64, iv [2]float64) {
		if sent == 0 {
			fmt.Fprintf(w, "%-6s %10d  -\n", kind, sent)
			return
		}
		fmt.Fprintf(w, "%-6s %10d  about %s (95%%: %s–%s, standard error %.0f)\n", kind, sent,
			roundCount(min(max(est, 0), float64(sent))), roundCount(iv[0]), roundCount(iv[1]), se)
	}
	line("email", r.Sent.Email, e.EstimatedMatched.Email, e.StandardError.Email, e.Interval95.Email)
	line("phone", r.Sent.Phone, e.EstimatedMatched.Phone, e.StandardError.Phone, e.Interval95.Phone)
	line("total", r.Sent.Email+r.Sent.Phone, e.EstimatedMatched.Total, e.StandardError.Total, e.Interval95.Total)
	fmt.Fprintf(w, "\nrows read: %d; invalid identifiers: email %d, phone %d\n", r.Rows, r.Invalid.Email, r.Invalid.Phone)
	fmt.Fprintf(w, "privacy: ε = %.3f per identifier (keep p = %.3f, decoys d = %.2f); no row is matched in this mode\n", e.Epsilon, e.P, e.D)
	fmt.Fprintf(w, "set: %s", humanBytes(int64(r.SetBytes)))
	if r.SetFromCache {
		fmt.Fprintf(w, " (from the local cache)")
	}
	fmt.Fprintf(w, "\ntime: %.2fs, sent %s, received %s\n", r.Seconds, humanBytes(r.BytesSent), humanBytes(r.BytesReceived))
	if reportPath != "" {
		fmt.Fprintf(w, "report written to %s\n", reportPath)
	}
}

// roundCount writes an estimated count as a whole number.
func roundCount(x float64) string { return fmt.Sprintf("%.0f", x) }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeMatches writes the members-mode matches as CSV: a header, then for
// each matched data row its 1-based number, its --id-column value when one
// was named, and the kinds that matched (email;phone).
func writeMatches(path string, r *protocol.Report, list *customers.List) error {
	return atomicfile.Write(path, 0o600, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		header := []string{"row", "matched"}
		if list.IDColumn != "" {
			header = []string{"row", list.IDColumn, "matched"}
		}
		if err := cw.Write(header); err != nil {
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
			rec := []string{strconv.Itoa(i + 1), strings.Join(names, ";")}
			if list.IDColumn != "" {
				rec = []string{rec[0], list.RowID(i), rec[1]}
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
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
