package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/urfave/cli/v2"
)

// clientConfig is what match needs from its flags to reach the server,
// checked before the list is read.
type clientConfig struct {
	server string
	token  string
	tls    *tls.Config
}

// errFingerprint is returned by the TLS handshake when the server's
// certificate is not the one pinned with --server-fingerprint.
var errFingerprint = errors.New("the server's certificate does not have the fingerprint given with --server-fingerprint")

// checkClientFlags checks --server, the token and the TLS trust flags.
func checkClientFlags(c *cli.Context) (*clientConfig, error) {
	cfg := &clientConfig{server: strings.TrimSpace(c.String("server"))}
	if cfg.server == "" {
		return nil, usageError("--server is required (or use --dry-run)")
	}
	if err := protocol.CheckServerURL(cfg.server); err != nil {
		e := withHint(err, exitUsage, "write the server's address as https://HOST:PORT, as the platform gave it")
		return nil, e
	}
	u, _ := url.Parse(cfg.server)

	tok, tokFile := c.String("token"), c.String("token-file")
	switch {
	case tokFile != "" && tok != "" && tok != os.Getenv("PSIMATCH_TOKEN"):
		return nil, usageError("--token and --token-file are alternatives: give one")
	case tokFile != "":
		f, err := os.Open(tokFile)
		if err != nil {
			return nil, withHint(err, exitInput, "check the path given to --token-file")
		}
		line, err := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if err != nil && line == "" {
			return nil, withHint(fmt.Errorf("%s: no token in it", tokFile), exitInput, "--token-file wants a file whose first line is the token")
		}
		tok = line
	case tok == "":
		return nil, usageError("--token, --token-file or PSIMATCH_TOKEN is required: the platform gives each advertiser a token")
	}
	// A token pasted from a file or a terminal often ends in CR or LF, or
	// spaces: none can be part of a token, so they are trimmed.
	tok = strings.TrimRight(strings.TrimLeft(tok, " \t"), " \t\r\n")
	if err := protocol.CheckToken(tok); err != nil {
		return nil, withHint(err, exitUsage, "copy the token again exactly as the platform gave it (psm_...)")
	}
	cfg.token = tok

	ca, fp := c.String("ca-cert"), c.String("server-fingerprint")
	if ca != "" && fp != "" {
		return nil, usageError("--ca-cert and --server-fingerprint are alternatives: give one")
	}
	if u.Scheme == "http" {
		if ca != "" || fp != "" {
			return nil, withHint(errors.New("--ca-cert and --server-fingerprint need an https:// server"), exitUsage, "write the server's address as https://HOST:PORT")
		}
		if !isLoopback(u.Hostname()) {
			fmt.Fprintf(c.App.ErrWriter, "psimatch: warning: %s is plain http: your token and the blinded identifiers cross the network unencrypted; use https:// unless a TLS proxy is on this machine\n", u.Host)
		}
	}
	switch {
	case ca != "":
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, withHint(err, exitInput, "check the path given to --ca-cert")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, withHint(fmt.Errorf("%s: no PEM certificate in it", ca), exitInput, "--ca-cert wants the server's CA or self-signed certificate in PEM")
		}
		cfg.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	case fp != "":
		want, err := parseFingerprint(fp)
		if err != nil {
			return nil, withHint(err, exitUsage, "give the fingerprint serve printed, such as sha256:3f2a... (64 hex digits)")
		}
		cfg.tls = pinnedTLS(want)
	}
	return cfg, nil
}

// parseFingerprint reads "sha256:HEX"; the hex may be in either case and
// grouped with ':' or spaces, as read out over the phone.
func parseFingerprint(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		return nil, errors.New("--server-fingerprint: want sha256: and 64 hex digits")
	}
	rest = strings.NewReplacer(":", "", " ", "", "-", "").Replace(rest)
	b, err := hex.DecodeString(rest)
	if err != nil || len(b) != sha256.Size {
		return nil, errors.New("--server-fingerprint: want sha256: and 64 hex digits")
	}
	return b, nil
}

// pinnedTLS trusts exactly the leaf certificate whose DER has the SHA-256
// want, whatever its names and issuer: the operator vouched for that
// certificate. Chain verification is replaced, not dropped: VerifyConnection
// runs on every handshake, resumed ones included.
func pinnedTLS(want []byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the exact pin in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errFingerprint
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], want) {
				return fmt.Errorf("%w (it has sha256:%x)", errFingerprint, got)
			}
			return nil
		},
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkWritable checks, before any session, that a file can be written at
// path: atomicfile writes a temporary file beside it and renames it.
func checkWritable(flag, path string) error {
	if path == "" {
		return nil
	}
	hint := "check the path given to --" + flag + ": its directory must exist and be writable"
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return withHint(fmt.Errorf("--%s %s is a directory", flag, path), exitInput, "give --"+flag+" a file name")
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".psimatch-check-*")
	if err != nil {
		return withHint(fmt.Errorf("--%s %s: cannot write there: %w", flag, path, err), exitInput, hint)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// checkList refuses, before any session, a list with nothing to send.
func checkList(c *cli.Context, list *customers.List) error {
	if list.Rows == 0 {
		return withHint(fmt.Errorf("%s: no data rows, only a header", c.String("input")), exitInput, "check that --input is the list you meant")
	}
	total := 0
	for _, k := range ident.Kinds {
		total += list.Sent(k)
	}
	if total == 0 {
		return withHint(fmt.Errorf("%s: %d rows and no valid identifier", c.String("input"), list.Rows), exitInput,
			"see the invalid identifiers above; phone numbers without a country code need --default-region")
	}
	return nil
}

// regionMistakes are codes people write for a region that ISO 3166 spells
// otherwise.
var regionMistakes = map[string]string{"UK": "GB", "EN": "GB", "GBR": "GB", "USA": "US", "EL": "GR", "DEU": "DE", "FRA": "FR"}

// regionError is the usage error for an unknown --default-region.
func regionError(r string) error {
	if want, ok := regionMistakes[strings.ToUpper(strings.TrimSpace(r))]; ok {
		return withHint(fmt.Errorf("--default-region %s: not an ISO 3166 region code", r), exitUsage, fmt.Sprintf("did you mean --default-region %s?", want))
	}
	return usageError("--default-region: want a two-letter ISO 3166 code such as US")
}
