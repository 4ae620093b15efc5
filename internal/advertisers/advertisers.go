// Package advertisers owns the advertiser registry: the JSON file listing
// each advertiser a platform serves, with the SHA-256 of its bearer token
// (never the token), the modes it may use and its limits. The usage of
// those limits is kept by internal/state.
//
// Add registers an advertiser and returns its new token, which exists only
// in the caller's hands from then on; RotateToken replaces it, Revoke stops
// it, Update changes limits and modes. Load reads the registry for a
// server; Registry.Authenticate finds the advertiser of a presented token
// in constant time, never a revoked one.
//
// A token is "psm_" followed by 32 random bytes in unpadded base64url. The
// file stores hex(SHA-256(token)), the hash of the whole printed string, so
// an operator can check a token with `printf %s TOKEN | sha256sum`.
package advertisers

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
	"github.com/psimatch/psimatch/psi"
)

// Defaults that Add applies to the zero fields of an Advertiser.
const (
	DefaultMinRows          = 1000
	DefaultMaxRows          = 10_000_000
	DefaultSessionsPerDay   = 10
	DefaultElementsPerEpoch = 50_000_000
)

// TokenPrefix starts every token.
const TokenPrefix = "psm_"

// tokenBytes is the entropy of a token.
const tokenBytes = 32

// fileVersion is the registry file's format version.
const fileVersion = 1

// maxFileSize bounds the registry file Load reads.
const maxFileSize = 16 << 20

// Errors callers branch on; the returned errors wrap them with detail.
var (
	// ErrInvalid marks an advertiser that fails validation.
	ErrInvalid = errors.New("advertisers: invalid advertiser")
	// ErrDuplicate marks an Add of a name already registered.
	ErrDuplicate = errors.New("advertisers: name already registered")
)

// Advertiser is one registered advertiser and its limits.
type Advertiser struct {
	// Name identifies the advertiser in logs and quotas:
	// [A-Za-z0-9._-]{1,64}.
	Name string `json:"name"`
	// TokenSHA256 is the hex SHA-256 of the advertiser's token.
	TokenSHA256 string `json:"token_sha256"`
	// Modes lists the modes the advertiser may use.
	Modes []psi.Mode `json:"modes"`
	// MinRows and MaxRows bound the identifiers of one session.
	MinRows int64 `json:"min_rows"`
	MaxRows int64 `json:"max_rows"`
	// SessionsPerDay bounds the sessions started in any 24 hours.
	SessionsPerDay int `json:"sessions_per_day"`
	// ElementsPerEpoch bounds the elements evaluated for the advertiser in
	// one epoch.
	ElementsPerEpoch int64 `json:"elements_per_epoch"`
	// Created is when the advertiser was added.
	Created time.Time `json:"created"`
	// Revoked, when set, is when the advertiser was revoked: its token is
	// refused from then on.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Allows reports whether the advertiser may use mode.
func (a *Advertiser) Allows(mode psi.Mode) bool { return slices.Contains(a.Modes, mode) }

// withDefaults fills the zero limits and modes with the defaults.
func withDefaults(a Advertiser) Advertiser {
	if len(a.Modes) == 0 {
		// Estimate mode bounds what even a deviating client learns (ε per
		// identifier); count and members grant membership-level knowledge
		// to a client that deviates, so they are opt-in.
		a.Modes = []psi.Mode{psi.ModeEstimate}
	}
	if a.MinRows == 0 {
		a.MinRows = DefaultMinRows
	}
	if a.MaxRows == 0 {
		a.MaxRows = DefaultMaxRows
	}
	if a.SessionsPerDay == 0 {
		a.SessionsPerDay = DefaultSessionsPerDay
	}
	if a.ElementsPerEpoch == 0 {
		a.ElementsPerEpoch = DefaultElementsPerEpoch
	}
	return a
}

// ValidName checks an advertiser name: 1 to 64 characters from
// [A-Za-z0-9._-].
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: name must be 1 to 64 characters", ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: name: character %d is not one of A-Z a-z 0-9 . _ -", ErrInvalid, i+1)
		}
	}
	return nil
}

// Validate checks every field but Created. Errors wrap ErrInvalid and name
// the advertiser and the field.
func (a *Advertiser) Validate() error {
	if err := ValidName(a.Name); err != nil {
		return err
	}
	wrap := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalid, a.Name, fmt.Sprintf(format, args...))
	}
	if h, err := hex.DecodeString(a.TokenSHA256); err != nil || len(h) != sha256.Size || strings.ToLower(a.TokenSHA256) != a.TokenSHA256 {
		return wrap("token_sha256 must be 64 lowercase hex digits")
	}
	if len(a.Modes) == 0 {
		return wrap("modes: want at least one of estimate, count, members")
	}
	for i, m := range a.Modes {
		if !m.Valid() {
			return wrap("mode %q: want estimate, count or members", m)
		}
		if slices.Contains(a.Modes[:i], m) {
			return wrap("mode %q listed twice", m)
		}
	}
	switch {
	case a.MinRows <= 0:
		return wrap("min rows must be positive, got %d", a.MinRows)
	case a.MaxRows <= 0:
		return wrap("max rows must be positive, got %d", a.MaxRows)
	case a.MinRows > a.MaxRows:
		return wrap("min rows %d exceed max rows %d", a.MinRows, a.MaxRows)
	case a.SessionsPerDay <= 0:
		return wrap("sessions per day must be positive, got %d", a.SessionsPerDay)
	case a.ElementsPerEpoch <= 0:
		return wrap("elements per epoch must be positive, got %d", a.ElementsPerEpoch)
	case a.ElementsPerEpoch < a.MinRows:
		return wrap("elements per epoch %d are fewer than min rows %d: no session could ever run", a.ElementsPerEpoch, a.MinRows)
	}
	return nil
}

// fileFormat is the registry file.
type fileFormat struct {
	Version     int          `json:"version"`
	Advertisers []Advertiser `json:"advertisers"`
}

// HashToken returns the hex SHA-256 stored for token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// newToken returns a fresh random token.
func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("advertisers: token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Add registers a in the registry file at path, creating the file if it is
// missing, and returns the advertiser's new token. a.TokenSHA256 and
// a.Created are set by Add; zero limits and empty modes take the defaults.
// A name already registered gives an error wrapping ErrDuplicate, an
// invalid advertiser one wrapping ErrInvalid. The file is rewritten
// atomically with mode 0600 under a lock (path + ".lock"), so concurrent
// Adds do not lose each other's advertisers.
func Add(path string, a Advertiser) (token string, err error) {
	a = withDefaults(a)
	token, err = newToken()
	if err != nil {
		return "", err
	}
	a.TokenSHA256 = HashToken(token)
	a.Created = time.Now().UTC().Truncate(time.Second)
	if err := a.Validate(); err != nil {
		return "", err
	}
	err = modify(path, true, func(f *fileFormat) error {
		for _, o := range f.Advertisers {
			if o.Name == a.Name {
				return fmt.Errorf("%w: %s in %s", ErrDuplicate, a.Name, path)
			}
		}
		f.Advertisers = append(f.Advertisers, a)
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ErrUnknown is the error of a name not in the registry.
var ErrUnknown = errors.New("advertisers: no such advertiser")

// Update changes the advertiser name in the registry at path with change,
// which may set its modes and limits (not its name, token or dates); the
// result is validated before the file is rewritten. A running server picks
// the change up on its next reload.
func Update(path, name string, change func(a *Advertiser)) error {
	return modify(path, false, func(f *fileFormat) error {
		a, err := find(f, path, name)
		if err != nil {
			return err
		}
		keep := *a
		change(a)
		a.Name, a.TokenSHA256, a.Created, a.Revoked = keep.Name, keep.TokenSHA256, keep.Created, keep.Revoked
		return a.Validate()
	})
}

// Revoke marks the advertiser name revoked: a server refuses its token from
// its next reload. Revoking twice keeps the first time.
func Revoke(path, name string) error {
	return modify(path, false, func(f *fileFormat) error {
		a, err := find(f, path, name)
		if err != nil {
			return err
		}
		if a.Revoked.IsZero() {
			a.Revoked = time.Now().UTC().Truncate(time.Second)
		}
		return nil
	})
}

// RotateToken gives the advertiser name a new token and returns it; the old
// one is refused from a server's next reload. It also lifts a revocation.
func RotateToken(path, name string) (token string, err error) {
	token, err = newToken()
	if err != nil {
		return "", err
	}
	err = modify(path, false, func(f *fileFormat) error {
		a, err := find(f, path, name)
		if err != nil {
			return err
		}
		a.TokenSHA256, a.Revoked = HashToken(token), time.Time{}
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

func find(f *fileFormat, path, name string) (*Advertiser, error) {
	for i := range f.Advertisers {
		if f.Advertisers[i].Name == name {
			return &f.Advertisers[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s in %s", ErrUnknown, name, path)
}

// modify rewrites the registry at path with fn's change, atomically, under
// the registry's lock. With create, a missing file starts empty.
func modify(path string, create bool, fn func(f *fileFormat) error) error {
	lock, err := atomicfile.LockFile(path+".lock", true)
	if err != nil {
		return fmt.Errorf("advertisers: %w", err)
	}
	defer lock.Close()
	if _, err := removeStaleTemp(path); err != nil {
		return err
	}
	var f fileFormat
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && create:
		f.Version = fileVersion
	case err != nil:
		return fmt.Errorf("advertisers: %w", err)
	default:
		if f, err = parse(path, b); err != nil {
			return err
		}
	}
	if err := fn(&f); err != nil {
		return err
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("advertisers: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("advertisers: %w", err)
	}
	return nil
}

// removeStaleTemp removes the temporary files of path that a crashed Add
// left in its directory.
func removeStaleTemp(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(base)+".tmp-*"))
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("advertisers: remove stale temporary file: %w", err)
		}
	}
	return matches, nil
}

// globEscape quotes the glob metacharacters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parse decodes and validates a registry file; path is for errors.
func parse(path string, b []byte) (fileFormat, error) {
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("advertisers: %s: %w", path, err)
	}
	if dec.More() {
		return f, fmt.Errorf("advertisers: %s: data after the registry object", path)
	}
	if f.Version != fileVersion {
		return f, fmt.Errorf("advertisers: %s: version %d, want %d", path, f.Version, fileVersion)
	}
	seen := make(map[string]bool, len(f.Advertisers))
	for i := range f.Advertisers {
		a := &f.Advertisers[i]
		if err := a.Validate(); err != nil {
			return f, fmt.Errorf("advertisers: %s: advertiser %d: %w", path, i+1, err)
		}
		if seen[a.Name] {
			return f, fmt.Errorf("advertisers: %s: %w: %s appears twice", path, ErrDuplicate, a.Name)
		}
		seen[a.Name] = true
	}
	return f, nil
}

// Registry is a loaded advertiser registry. It is immutable and safe for
// concurrent use; to pick up changes, Load the file again and swap.
type Registry struct {
	path        string
	advertisers []Advertiser
	hashes      [][sha256.Size]byte // hashes[i] belongs to advertisers[active[i]]
	active      []int               // the advertisers not revoked
}

// Load reads and validates the registry file at path. A missing file is an
// error: advertisers are added with `psimatch advertiser add`.
func Load(path string) (*Registry, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("advertisers: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("advertisers: %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("advertisers: %s: larger than the limit of %d bytes", path, maxFileSize)
	}
	f, err := parse(path, b)
	if err != nil {
		return nil, err
	}
	r := &Registry{path: path, advertisers: f.Advertisers}
	for i, a := range f.Advertisers {
		if !a.Revoked.IsZero() {
			continue // a revoked token matches nothing
		}
		var h [sha256.Size]byte
		hex.Decode(h[:], []byte(a.TokenSHA256)) // validated by parse
		r.hashes = append(r.hashes, h)
		r.active = append(r.active, i)
	}
	return r, nil
}

// Path returns the file the registry was loaded from.
func (r *Registry) Path() string { return r.path }

// Len returns the number of advertisers.
func (r *Registry) Len() int { return len(r.advertisers) }

// List returns a copy of the advertisers, in file order.
func (r *Registry) List() []Advertiser {
	out := make([]Advertiser, len(r.advertisers))
	for i, a := range r.advertisers {
		a.Modes = slices.Clone(a.Modes)
		out[i] = a
	}
	return out
}

// Authenticate returns the advertiser whose token is token. It hashes
// token and compares the hash with every stored hash using
// subtle.ConstantTimeCompare, without stopping at a match, so its time
// depends only on the number of advertisers not revoked. A revoked
// advertiser's token is refused. The result is a copy.
func (r *Registry) Authenticate(token string) (*Advertiser, bool) {
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range r.hashes {
		eq := subtle.ConstantTimeCompare(h[:], r.hashes[i][:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil, false
	}
	a := r.advertisers[r.active[found]]
	a.Modes = slices.Clone(a.Modes)
	return &a, true
}
