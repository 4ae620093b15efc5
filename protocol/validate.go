package protocol

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/psimatch/psimatch/psi"
)

// Bounds on the values a server chooses, checked before the client uses
// them in a path, a size or an allocation.
const (
	// MaxIDLength bounds a session id; ids are URL-safe: letters, digits,
	// '-' and '_'.
	MaxIDLength = 128
	// MaxEpochLength bounds an epoch name: printable ASCII, no space.
	MaxEpochLength = 64
	// MaxSetSize bounds set_size (identifiers in the platform's set).
	MaxSetSize = 1 << 34
	// MaxSetBytes bounds set_bytes (the coded set's size).
	MaxSetBytes = 1 << 40
	// MaxSetBits bounds set_bits (bits per hashed output kept in the set).
	MaxSetBits = 128
	// MaxBatchLimit bounds max_batch (elements per evaluate request).
	MaxBatchLimit = 1 << 24
)

var (
	// ErrServerURL is returned for a server address that is not an http or
	// https URL with a host.
	ErrServerURL = errors.New("protocol: the server address is not an https:// (or http://) URL")
	// ErrToken is returned for a token with characters a header cannot carry.
	ErrToken = errors.New("protocol: the token has characters that are not allowed")
)

// CheckServerURL checks that s is an absolute http or https URL with a host
// and no query or fragment.
func CheckServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: it does not parse as a URL", ErrServerURL)
	}
	// Errors show the URL without a user, password, query or fragment, which
	// may hold secrets.
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%w: %q has no https:// in front", ErrServerURL, shown)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%w: %q names no host", ErrServerURL, shown)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("%w: %q has a query, a fragment or a user name", ErrServerURL, shown)
	}
	return nil
}

// CheckToken checks that a bearer token is printable ASCII without spaces.
func CheckToken(tok string) error {
	if tok == "" {
		return fmt.Errorf("%w: it is empty", ErrToken)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			what := "a space or control character"
			if c == '\r' || c == '\n' {
				what = "a line break (CR or LF)"
			} else if c >= 0x7f {
				what = "a non-ASCII character"
			}
			return fmt.Errorf("%w: %s at position %d", ErrToken, what, i+1)
		}
	}
	return nil
}

// validID reports whether id may be used in a URL path.
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validEpoch reports whether an epoch name may be shown and kept.
func validEpoch(e string) bool {
	if e == "" || len(e) > MaxEpochLength {
		return false
	}
	for i := 0; i < len(e); i++ {
		if e[i] <= ' ' || e[i] >= 0x7f {
			return false
		}
	}
	return true
}

// check validates every server-chosen value of a session answer for a
// session of suite s: nothing in it is used before this returns nil.
func (info *SessionResponse) check(s *psi.Suite, pk []byte) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadResponse, fmt.Sprintf(format, a...))
	}
	switch {
	case !validID(info.ID):
		return bad("the session id is not 1 to %d letters, digits, '-' or '_'", MaxIDLength)
	case !validEpoch(info.Epoch):
		return bad("the epoch is not 1 to %d printable characters", MaxEpochLength)
	case len(pk) != s.ElementSize():
		return bad("the public key is %d bytes, want one %d-byte element", len(pk), s.ElementSize())
	case info.SetSize < 0 || info.SetSize > MaxSetSize:
		return bad("set_size %d is out of range", info.SetSize)
	case info.SetBits == 0 || info.SetBits > MaxSetBits:
		return bad("set_bits %d is out of range", info.SetBits)
	case info.SetBytes <= 0 || info.SetBytes > MaxSetBytes:
		return bad("set_bytes %d is out of range", info.SetBytes)
	case info.MaxBatch <= 0 || info.MaxBatch > MaxBatchLimit:
		return bad("max_batch %d is out of range", info.MaxBatch)
	case info.Verifiable && info.ProofChunk != psi.ProofChunk:
		return bad("proof chunk %d, this client proves chunks of %d", info.ProofChunk, psi.ProofChunk)
	case info.Expires.IsZero():
		return bad("no expiry time")
	}
	if !validDigest(info.SetDigest) {
		return bad("set digest is not 64 lowercase hex characters")
	}
	return nil
}

// validDigest reports whether d is 64 lowercase hex characters: it names a
// cache file.
func validDigest(d string) bool {
	b, err := hex.DecodeString(d)
	return err == nil && len(b) == 32 && hex.EncodeToString(b) == d
}
