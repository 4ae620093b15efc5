// Package normalize turns raw identifiers into the bytes both parties hash:
// Email and Phone (libphonenumber, github.com/nyaruka/phonenumbers) by the
// rules in protocol/README.md ("Normalization"), Hashed for a column of
// SHA-256 digests, Value for either kind, and Lines, which streams a file of
// values in constant memory on every core. Rules is the same as a value for
// the inventory policy.
//
// Errors never contain the value: it may be personal data. Each says which
// rule the value broke, as one of the package's Err variables.
package normalize

import "github.com/psimatch/psimatch/psi/ident"

// Value returns the normalized form of value for kind k: the bytes both
// parties hash. defaultRegion is the ISO 3166-1 alpha-2 region used for phone
// numbers written without a country code ("" for none); it is ignored for
// emails. The error says why value is invalid and never contains it.
func Value(k ident.Kind, value, defaultRegion string) (string, error) {
	switch k {
	case ident.Email:
		return Email(value)
	case ident.Phone:
		return Phone(value, defaultRegion)
	}
	return "", ident.ErrUnknownKind
}

// Rules is psimatch's normalization as a value, for the inventory policy
// (inventory.Config.Normalizer): Value and ValidRegion as in this package.
type Rules struct{}

// Value is the package function Value.
func (Rules) Value(k ident.Kind, value, defaultRegion string) (string, error) {
	return Value(k, value, defaultRegion)
}

// ValidRegion is the package function ValidRegion.
func (Rules) ValidRegion(region string) bool { return ValidRegion(region) }
