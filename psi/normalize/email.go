package normalize

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors returned by Email. Each names the rule of protocol/README.md ("Normalization")
// that the value broke; none contains the value.
var (
	ErrEmailEmpty     = errors.New("normalize: email: empty")
	ErrEmailUTF8      = errors.New("normalize: email: not valid UTF-8")
	ErrEmailSpace     = errors.New("normalize: email: white space inside")
	ErrEmailNoAt      = errors.New("normalize: email: no @")
	ErrEmailManyAt    = errors.New("normalize: email: more than one @")
	ErrEmailNoLocal   = errors.New("normalize: email: empty local part")
	ErrEmailNoDot     = errors.New("normalize: email: domain has no dot")
	ErrEmailEdgeDot   = errors.New("normalize: email: domain starts or ends with a dot")
	ErrEmailGmailTags = errors.New("normalize: email: local part empty after removing dots and +tag")
)

// Email normalizes an email address by the rules of protocol/README.md ("Normalization"):
// trim leading and trailing white space, lowercase ASCII letters only, require
// exactly one @, a non-empty local part and a domain that contains a dot but
// does not start or end with one, and for gmail.com and googlemail.com remove
// the dots of the local part and everything from its first +. Other
// characters, other domains and +tags are kept as written (no Unicode case
// folding, no punycode).
//
// The value must be valid UTF-8: the PRF input is the hash of the UTF-8 form,
// so a value in another encoding could never match.
func Email(value string) (string, error) {
	if !utf8.ValidString(value) {
		return "", ErrEmailUTF8
	}
	s := strings.TrimSpace(value) // trims exactly the runes unicode.IsSpace reports
	if s == "" {
		return "", ErrEmailEmpty
	}
	at, upper := -1, false
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				return "", ErrEmailSpace
			}
			i += size
			continue
		}
		switch {
		case c == '@':
			if at >= 0 {
				return "", ErrEmailManyAt
			}
			at = i
		case 'A' <= c && c <= 'Z':
			upper = true
		case asciiSpace(c):
			return "", ErrEmailSpace
		}
		i++
	}
	if at < 0 {
		return "", ErrEmailNoAt
	}
	if upper {
		s = lowerASCII(s)
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return "", ErrEmailNoLocal
	}
	if !strings.Contains(domain, ".") {
		return "", ErrEmailNoDot
	}
	if domain[0] == '.' || domain[len(domain)-1] == '.' {
		return "", ErrEmailEdgeDot
	}
	if domain == "gmail.com" || domain == "googlemail.com" {
		if plus := strings.IndexByte(local, '+'); plus >= 0 {
			local = local[:plus]
		}
		if strings.IndexByte(local, '.') >= 0 {
			local = strings.ReplaceAll(local, ".", "")
		}
		if local == "" {
			return "", ErrEmailGmailTags
		}
		if len(local) != at {
			return local + "@" + domain, nil
		}
	}
	return s, nil
}

// asciiSpace reports whether c is an ASCII white space character as
// unicode.IsSpace defines it.
func asciiSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// lowerASCII maps A-Z to a-z and leaves every other byte as it is.
func lowerASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
