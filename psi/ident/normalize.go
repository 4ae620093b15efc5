package ident

import "errors"

// Normalize returns the normalized form of value for kind k. defaultRegion is
// the ISO 3166 region used for national phone numbers ("" for none).
func Normalize(k Kind, value, defaultRegion string) (string, error) {
	switch k {
	case Email:
		return NormalizeEmail(value)
	case Phone:
		return NormalizePhone(value, defaultRegion)
	}
	return "", ErrUnknownKind
}

// NormalizeEmail normalizes an email address (placeholder; see issue 3).
func NormalizeEmail(value string) (string, error) {
	return "", errors.New("ident: email normalization not implemented")
}

// NormalizePhone normalizes a phone number to E.164 (placeholder; see issue 3).
func NormalizePhone(value, defaultRegion string) (string, error) {
	return "", errors.New("ident: phone normalization not implemented")
}

// ParseHashed parses a SHA-256 digest of a normalized value (placeholder).
func ParseHashed(value string) ([32]byte, error) {
	return [32]byte{}, errors.New("ident: hashed input not implemented")
}
