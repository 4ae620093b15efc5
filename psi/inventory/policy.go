package inventory

import (
	"errors"
	"fmt"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
)

// ErrSecurityNeverEligible is returned by NewPolicy for a Config that names
// security among its eligible purposes. It is a hard rule, not configuration:
// an identifier given only to secure an account (a two-factor phone, a
// recovery email) must never become matchable.
var ErrSecurityNeverEligible = errors.New("inventory: security is never an eligible purpose (hard rule: identifiers collected for security can never be matched)")

// The purposes a record may name.
const (
	PurposeAdvertising = "advertising"
	PurposeAccount     = "account"
	PurposeSecurity    = "security"
)

// purposeSet is a set of purposes, one bit each.
type purposeSet uint8

const (
	advertising purposeSet = 1 << iota
	account
	security
)

// parsePurpose returns the bit for one purpose name, or 0 if it is unknown.
// Names are matched without regard to case.
func parsePurpose(s string) purposeSet {
	switch {
	case strings.EqualFold(s, PurposeAdvertising):
		return advertising
	case strings.EqualFold(s, PurposeAccount):
		return account
	case strings.EqualFold(s, PurposeSecurity):
		return security
	}
	return 0
}

// Config configures a Policy. The zero Config is the default policy:
// advertising is the only eligible purpose and phone numbers must carry a
// country code.
type Config struct {
	// EligiblePurposes lists the purposes that make a record eligible. Empty
	// means advertising only. It must include advertising, and it can never
	// include security (ErrSecurityNeverEligible).
	EligiblePurposes []string

	// DefaultRegion is the ISO 3166 two-letter region of phone numbers written
	// without a country code ("" for none, and such numbers are invalid).
	DefaultRegion string

	// Normalizer turns raw values into the bytes both parties hash. It is
	// required; psimatch passes normalize.Rules{}. It is injected so that this
	// package, which the crypto core imports for Eligible, does not link
	// libphonenumber.
	Normalizer Normalizer
}

// Normalizer normalizes identifier values (package normalize implements it).
type Normalizer interface {
	// Value returns the normalized form of value for kind k, or an error
	// that says why it is invalid and never contains it.
	Value(k ident.Kind, value, defaultRegion string) (string, error)
	// ValidRegion reports whether region is "" or a known ISO 3166 region.
	ValidRegion(region string) bool
}

// Policy decides whether an inventory record is eligible. It holds no state
// between records and is safe for concurrent use.
type Policy struct {
	eligible purposeSet
	region   string

	// normalize is the Config's Normalizer.Value; tests of the policy alone
	// replace it.
	normalize func(k ident.Kind, value, defaultRegion string) (string, error)
}

// NewPolicy returns the policy for c. It refuses a Config that names security
// as an eligible purpose, with an error that wraps ErrSecurityNeverEligible.
func NewPolicy(c Config) (*Policy, error) {
	if c.Normalizer == nil {
		return nil, errors.New("inventory: Config.Normalizer is required (normalize.Rules{})")
	}
	p := &Policy{eligible: advertising, normalize: c.Normalizer.Value}
	if len(c.EligiblePurposes) > 0 {
		p.eligible = 0
		for _, name := range c.EligiblePurposes {
			bit := parsePurpose(strings.TrimSpace(name))
			switch bit {
			case 0:
				return nil, fmt.Errorf("inventory: unknown eligible purpose %q (want %s or %s)", name, PurposeAdvertising, PurposeAccount)
			case security:
				return nil, ErrSecurityNeverEligible
			}
			p.eligible |= bit
		}
		if p.eligible&advertising == 0 {
			return nil, errors.New("inventory: the eligible purposes must include advertising")
		}
	}
	if !c.Normalizer.ValidRegion(c.DefaultRegion) {
		return nil, fmt.Errorf("inventory: default region %q is not an ISO 3166 two-letter region code", c.DefaultRegion)
	}
	p.region = strings.ToUpper(c.DefaultRegion)
	return p, nil
}

// eligibleSet returns the purposes that make a record eligible. Security is
// masked out here as well as refused by NewPolicy, so that no Policy, however
// it was made, can make a security identifier eligible.
func (p *Policy) eligibleSet() purposeSet {
	set := p.eligible
	if set == 0 {
		set = advertising // the zero Policy is the default policy
	}
	return set &^ security
}

// Reason says why a record was excluded from the matchable set.
type Reason uint8

// The reasons. A record's own reasons are checked in this order: Invalid,
// SecurityOnly, NoAdvertisingPurpose, OptedOut. A record that passes them is
// then excluded by deny wins, in this order: UserOptedOut, ValueSecurityOnly,
// ValueOptedOut, ValueInvalid.
const (
	// Included is the Reason of an eligible record: it was not excluded.
	Included Reason = iota
	// Invalid: a field is missing or malformed, a purpose is unknown, or
	// the value does not normalize.
	Invalid
	// SecurityOnly: the record's purposes are exactly {security}.
	SecurityOnly
	// NoAdvertisingPurpose: none of the record's purposes is eligible.
	NoAdvertisingPurpose
	// OptedOut: the record says its user opted out of advertising.
	OptedOut
	// UserOptedOut: the record's user has an opted-out record elsewhere.
	UserOptedOut
	// ValueSecurityOnly: a record of the same normalized value, of any
	// user, is security-only.
	ValueSecurityOnly
	// ValueOptedOut: a record of the same normalized value, of any user, is
	// opted out or belongs to a user who opted out.
	ValueOptedOut
	// ValueInvalid: a record of the same normalized value, of any user, is
	// invalid in another field (its purposes or opt-out cannot be read).
	ValueInvalid
)

// String returns the reason's name as used in summaries, such as
// "security_only".
func (r Reason) String() string {
	switch r {
	case Included:
		return "included"
	case Invalid:
		return "invalid"
	case SecurityOnly:
		return "security_only"
	case NoAdvertisingPurpose:
		return "no_advertising_purpose"
	case OptedOut:
		return "opted_out"
	case UserOptedOut:
		return "user_opted_out_elsewhere"
	case ValueSecurityOnly:
		return "value_shared_with_security_only"
	case ValueOptedOut:
		return "value_shared_with_opted_out"
	case ValueInvalid:
		return "value_shared_with_invalid"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Raw is one inventory record as a source read it, before the policy. Every
// source (the file readers here, a database query) produces Raw values and
// leaves all checking to Classify.
type Raw struct {
	// Line is the record's 1-based position in its source: its line in a
	// file, its row in a query result. It names the record in errors.
	Line int64

	UserID string
	// Kind is "email" or "phone".
	Kind  string
	Value string
	// Purposes holds the purposes; each element may itself be a
	// ";"-separated list, so a text column and a text array both fit.
	Purposes []string
	// OptedOut is "true" or "false", or empty for false. A source with a
	// boolean column writes "true" or "false".
	OptedOut string

	// Err, if not nil, says why the source could not decode the record
	// (malformed JSON, a wrong number of CSV fields). Classify counts such a
	// record as Invalid. It must not contain the record's values.
	Err error
}

// Classify applies the policy to one record on its own: it returns Included
// for a record that may be eligible, or the Reason it is excluded for, with an
// error saying what is wrong when the Reason is Invalid. The error names the
// field, never its value.
//
// Classify judges one record; whether its identifier becomes matchable is
// decided by Run, which also applies deny wins across records (by value and
// by user). So Classify returns no Eligible: only Run and Scan make those.
func (p *Policy) Classify(r Raw) (Reason, error) {
	c := p.classify(&r, nil, true)
	return c.reason, c.err
}

// classified is one record after the policy: what the deny-wins passes need
// of it, and nothing of its strings.
type classified struct {
	line   int64
	reason Reason // the record's own reason: Included to OptedOut
	err    error  // why, when reason is Invalid

	in       ident.Input // the PRF input of the value, when hasValue
	hasValue bool        // the value normalized (even if another field is invalid)
	user     userKey     // the keyed hash of the user id, when hasUser
	hasUser  bool
	optedOut bool // opted_out reads true (even if another field is invalid)
}

// classify applies the policy to r. It hashes the user id with users (nil:
// no user key). With full false it reads only the user and opted_out, for
// the pass that collects the opted-out users.
func (p *Policy) classify(r *Raw, users *userHasher, full bool) classified {
	c := classified{line: r.Line, reason: Invalid}
	if r.Err != nil {
		c.err = r.Err
		return c
	}
	uid := strings.TrimSpace(r.UserID)
	optedOut, optErr := parseOptedOut(r.OptedOut)
	c.optedOut = optErr == nil && optedOut
	if uid != "" && users != nil && (full || c.optedOut) {
		c.user, c.hasUser = users.key(uid), true
	}
	if !full {
		return c
	}
	kind, kindErr := ident.ParseKind(strings.ToLower(strings.TrimSpace(r.Kind)))
	var normErr error
	if kindErr == nil {
		switch {
		case strings.TrimSpace(r.Value) == "":
			normErr = errors.New("value: empty")
		case p.normalize == nil:
			normErr = errors.New("inventory: a Policy not made by NewPolicy has no normalizer")
		default:
			norm, err := p.normalize(kind, r.Value, p.region)
			if err != nil {
				normErr = &valueError{kind: kind, err: err}
			} else {
				c.in, c.hasValue = ident.FromNormalized(kind, norm), true
			}
		}
	}
	purposes, purposeErr := parsePurposes(r.Purposes)
	switch {
	case uid == "":
		c.err = errors.New("user_id: empty")
	case kindErr != nil:
		c.err = errors.New("kind: want email or phone")
	case purposeErr != nil:
		c.err = purposeErr
	case optErr != nil:
		c.err = optErr
	case normErr != nil:
		c.err = normErr
	case purposes == security:
		c.reason = SecurityOnly
	case purposes&p.eligibleSet() == 0:
		c.reason = NoAdvertisingPurpose
	case optedOut:
		c.reason = OptedOut
	default:
		c.reason = Included
	}
	return c
}

// parsePurposes parses the purposes of a record. An empty set is allowed (the
// record then has no eligible purpose); an unknown purpose is an error. The
// error gives the item's position, not its text, which may be a value in the
// wrong column.
func parsePurposes(fields []string) (purposeSet, error) {
	var set purposeSet
	item := 0
	for _, f := range fields {
		for f != "" {
			var name string
			name, f, _ = strings.Cut(f, ";")
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			item++
			bit := parsePurpose(name)
			if bit == 0 {
				return 0, fmt.Errorf("purposes: item %d is not %s, %s or %s", item, PurposeAdvertising, PurposeAccount, PurposeSecurity)
			}
			set |= bit
		}
	}
	return set, nil
}

// parseOptedOut parses opted_out: "true" or "false" in any case, and empty
// for false.
func parseOptedOut(s string) (bool, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || strings.EqualFold(s, "false"):
		return false, nil
	case strings.EqualFold(s, "true"):
		return true, nil
	}
	return false, errors.New("opted_out: want true, false or empty")
}

// valueError is a value that did not normalize. Its message starts with the
// kind, "phone: no country code", dropping the "normalize: " prefix the
// normalizer's errors may carry.
type valueError struct {
	kind ident.Kind
	err  error
}

func (e *valueError) Error() string {
	msg := strings.TrimPrefix(e.err.Error(), "normalize: ")
	if kind := e.kind.String(); !strings.HasPrefix(msg, kind) {
		msg = kind + ": " + msg
	}
	return msg
}

func (e *valueError) Unwrap() error { return e.err }
