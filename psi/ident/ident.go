// Package ident owns the types every part of psimatch shares about an
// identifier: its Kind (email or phone, whose tag byte starts the PRF input),
// the PRF input itself (kind tag || SHA-256 of the normalized value), and
// PerKind, one value per kind. It imports only the standard library, so the
// crypto core can use it without linking libphonenumber; normalization is
// package psi/normalize.
package ident

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// Kind is the kind of an identifier. Its numeric value is the tag byte that
// starts the PRF input; it is part of the wire format and never changes.
type Kind uint8

// The identifier kinds and their tag bytes.
const (
	Email Kind = 0x01
	Phone Kind = 0x02
)

// Kinds lists every kind in tag order.
var Kinds = [...]Kind{Email, Phone}

// String returns the kind's name as used in CSV headers and reports.
func (k Kind) String() string {
	switch k {
	case Email:
		return "email"
	case Phone:
		return "phone"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == Email || k == Phone }

// ErrUnknownKind is returned by ParseKind for a name that is not a kind.
var ErrUnknownKind = errors.New("ident: unknown kind (want email or phone)")

// ParseKind returns the kind named s ("email" or "phone").
func ParseKind(s string) (Kind, error) {
	switch s {
	case "email":
		return Email, nil
	case "phone":
		return Phone, nil
	}
	return 0, ErrUnknownKind
}

// InputSize is the length of a PRF input: one tag byte and a SHA-256 digest.
const InputSize = 1 + sha256.Size

// Input is the PRF input of an identifier: its kind tag then the SHA-256 of
// its normalized UTF-8 form.
type Input [InputSize]byte

// Kind returns the kind whose tag starts the input.
func (in Input) Kind() Kind { return Kind(in[0]) }

// FromDigest returns the PRF input for a kind and the SHA-256 digest of a
// normalized value.
func FromDigest(k Kind, digest [sha256.Size]byte) Input {
	var in Input
	in[0] = byte(k)
	copy(in[1:], digest[:])
	return in
}

// FromNormalized returns the PRF input of an already normalized value.
func FromNormalized(k Kind, normalized string) Input {
	return FromDigest(k, sha256.Sum256([]byte(normalized)))
}

// ColumnLabel is how a CSV header cell is shown in an error or a hint: its
// text when it looks like a column name (letters, digits after the first
// character, '_', at most 32 bytes), else only its 1-based position. A file
// without a header has a record on its first line, whose values must never
// be shown.
func ColumnLabel(i int, h string) string {
	if len(h) == 0 || len(h) > 32 {
		return fmt.Sprintf("(column %d)", i+1)
	}
	for j := 0; j < len(h); j++ {
		c := h[j]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !(letter || c == '_' || j > 0 && '0' <= c && c <= '9') {
			return fmt.Sprintf("(column %d)", i+1)
		}
	}
	return h
}
