package normalize

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// Errors returned by Hashed. None contains the value.
var (
	ErrHashedLength = errors.New("normalize: hashed: want 64 hex or 44 base64 characters")
	ErrHashedHex    = errors.New("normalize: hashed: 64 characters but not hex")
	ErrHashedBase64 = errors.New("normalize: hashed: 44 characters but not canonical standard base64")
)

// Hashed parses the SHA-256 digest of a normalized value, written as 64
// hex characters (either case) or as 44 characters of standard padded base64
// (RFC 4648 section 4, the form UID2 uses). Nothing else is accepted: no
// white space, no URL-safe alphabet, and no base64 whose unused bits are set,
// so each digest has exactly one base64 form. Pass the digest to ident.FromDigest.
func Hashed(value string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	switch len(value) {
	case 2 * sha256.Size:
		for i := range d {
			hi, ok1 := fromHex(value[2*i])
			lo, ok2 := fromHex(value[2*i+1])
			if !ok1 || !ok2 {
				return [sha256.Size]byte{}, ErrHashedHex
			}
			d[i] = hi<<4 | lo
		}
		return d, nil
	case base64Len:
		var buf [base64Len]byte
		n, err := base64.StdEncoding.Decode(buf[:], []byte(value))
		if err != nil || n != sha256.Size {
			return [sha256.Size]byte{}, ErrHashedBase64
		}
		copy(d[:], buf[:n])
		// The decoder skips line breaks and tolerates set padding bits;
		// encoding back and comparing rejects both.
		base64.StdEncoding.Encode(buf[:], d[:])
		if string(buf[:]) != value {
			return [sha256.Size]byte{}, ErrHashedBase64
		}
		return d, nil
	}
	return [sha256.Size]byte{}, ErrHashedLength
}

// base64Len is the length of a SHA-256 digest in padded base64.
const base64Len = (sha256.Size + 2) / 3 * 4

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
