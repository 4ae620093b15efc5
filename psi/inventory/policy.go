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

// The reasons, in the order Classify checks them.
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
	// OptedOut: the user opted out of advertising.
	OptedOut
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

// Classify applies the policy to one record. It returns an Eligible and
// Included for an eligible record; otherwise the zero Eligible and the Reason
// it was excluded for, with an error saying what is wrong when the Reason is
// Invalid. The error names the field, never its value.
func (p *Policy) Classify(r Raw) (Eligible, Reason, error) {
	if r.Err != nil {
		return Eligible{}, Invalid, r.Err
	}
	if strings.TrimSpace(r.UserID) == "" {
		return Eligible{}, Invalid, errors.New("user_id: empty")
	}
	kind, err := ident.ParseKind(strings.ToLower(strings.TrimSpace(r.Kind)))
	if err != nil {
		return Eligible{}, Invalid, errors.New("kind: want email or phone")
	}
	purposes, err := parsePurposes(r.Purposes)
	if err != nil {
		return Eligible{}, Invalid, err
	}
	optedOut, err := parseOptedOut(r.OptedOut)
	if err != nil {
		return Eligible{}, Invalid, err
	}
	if strings.TrimSpace(r.Value) == "" {
		return Eligible{}, Invalid, errors.New("value: empty")
	}
	if p.normalize == nil {
		return Eligible{}, Invalid, errors.New("inventory: a Policy not made by NewPolicy has no normalizer")
	}
	norm, err := p.normalize(kind, r.Value, p.region)
	if err != nil {
		return Eligible{}, Invalid, &valueError{kind: kind, err: err}
	}

	switch {
	case purposes == security:
		return Eligible{}, SecurityOnly, nil
	case purposes&p.eligibleSet() == 0:
		return Eligible{}, NoAdvertisingPurpose, nil
	case optedOut:
		return Eligible{}, OptedOut, nil
	}
	return Eligible{in: ident.FromNormalized(kind, norm), valid: true}, Included, nil
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
