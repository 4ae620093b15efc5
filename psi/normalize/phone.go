package normalize

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Errors returned by Phone. None contains the value.
var (
	ErrPhoneEmpty         = errors.New("normalize: phone: empty")
	ErrPhoneUTF8          = errors.New("normalize: phone: not valid UTF-8")
	ErrPhoneLetters       = errors.New("normalize: phone: letters outside an extension (vanity numbers are not converted)")
	ErrPhoneNoCountryCode = errors.New("normalize: phone: no country code and no default region")
	ErrPhoneRegion        = errors.New("normalize: phone: unknown default region (want an ISO 3166-1 alpha-2 code such as GB)")
	ErrPhoneCountryCode   = errors.New("normalize: phone: unknown country calling code")
	ErrPhoneNotNumber     = errors.New("normalize: phone: not a phone number")
	ErrPhoneTooShort      = errors.New("normalize: phone: too short")
	ErrPhoneTooLong       = errors.New("normalize: phone: too long")
	ErrPhoneLength        = errors.New("normalize: phone: not a possible length for its country")
	ErrPhoneLocalOnly     = errors.New("normalize: phone: a local number without its area code (possible only for local dialling)")
	ErrPhoneUnstable      = errors.New("normalize: phone: no stable E.164 form (national prefix after the country code)")
)

// Phone normalizes a phone number to E.164 ("+" then digits) by the
// rules of protocol/README.md ("Normalization"). A number written with + and a country code needs
// no region; a national number needs defaultRegion, an ISO 3166-1 alpha-2 code
// in either case ("" means none: there is no hidden default). An unknown
// region is an error even when the number has a country code, so that a
// misconfigured caller notices.
//
// Numbers are parsed with github.com/nyaruka/phonenumbers and accepted only
// when IsPossibleNumberWithReason says IS_POSSIBLE: a number possible only
// for local dialling (IS_POSSIBLE_LOCAL_ONLY, no area code) is invalid. Letters are never turned into digits, so a
// vanity number such as 1-800-FLOWERS is invalid; an extension written with
// ext, x or # (and the forms phonenumbers knows without letters, such as ;123)
// is accepted and dropped. The result is stable: normalizing it again, with
// any region, returns it unchanged.
//
// Phone is safe for concurrent use. It costs about 20 µs, almost all
// of it in phonenumbers' regular expressions; Lines spreads the work
// over every core.
func Phone(value, defaultRegion string) (string, error) {
	region, err := canonicalRegion(defaultRegion)
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(value) {
		return "", ErrPhoneUTF8
	}
	if strings.TrimSpace(value) == "" {
		return "", ErrPhoneEmpty
	}
	number := value
	if hasLetter(number) {
		number = stripLabelledExtension(number)
		if hasLetter(number) {
			return "", ErrPhoneLetters
		}
	}
	out, cc, err := parsePhone(number, region)
	if err != nil || !mayStripAgain(cc, out) {
		return out, err
	}
	// phonenumbers strips a national prefix even after a country code, so
	// parsing its own E.164 output can strip once more ("+387 0 00000000",
	// found by FuzzPhone). Repeat until the output is stable: that
	// makes Phone idempotent.
	for range 3 {
		next, _, err := parsePhone(out, "")
		if err != nil || next == out {
			return next, err
		}
		out = next
	}
	return "", ErrPhoneUnstable
}

// parsePhone parses number with phonenumbers and returns it in E.164 with its
// country calling code.
func parsePhone(number, region string) (string, int32, error) {
	var n phonenumbers.PhoneNumber
	if err := phonenumbers.ParseToNumber(number, region, &n); err != nil {
		switch err {
		case phonenumbers.ErrInvalidCountryCode:
			if region == "" && !hasPlus(number) {
				return "", 0, ErrPhoneNoCountryCode
			}
			return "", 0, ErrPhoneCountryCode
		case phonenumbers.ErrTooShortNSN, phonenumbers.ErrTooShortAfterIDD:
			return "", 0, ErrPhoneTooShort
		case phonenumbers.ErrNumTooLong:
			return "", 0, ErrPhoneTooLong
		}
		return "", 0, ErrPhoneNotNumber
	}
	// Only IS_POSSIBLE: IS_POSSIBLE_LOCAL_ONLY (which IsPossibleNumber also
	// accepts) is a number without its area code, such as 555-0100 in the
	// US, and different people's local numbers would share its E.164 form.
	switch phonenumbers.IsPossibleNumberWithReason(&n) {
	case phonenumbers.IS_POSSIBLE:
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "", 0, ErrPhoneLocalOnly
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "", 0, ErrPhoneCountryCode
	case phonenumbers.TOO_SHORT:
		return "", 0, ErrPhoneTooShort
	case phonenumbers.TOO_LONG:
		return "", 0, ErrPhoneTooLong
	default:
		return "", 0, ErrPhoneLength
	}
	return phonenumbers.Format(&n, phonenumbers.E164), n.GetCountryCode(), nil
}

// nationalPrefixes maps a country calling code to the national prefix
// pattern that phonenumbers strips from the numbers of that code when it
// parses them (the pattern of the code's main region), compiled once.
var nationalPrefixes = sync.OnceValues(func() (map[int32]*regexp.Regexp, error) {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil, err
	}
	m := make(map[int32]*regexp.Regexp)
	for _, md := range coll.GetMetadata() {
		cc := md.GetCountryCode()
		if id := md.GetId(); id != "001" && id != phonenumbers.GetRegionCodeForCountryCode(int(cc)) {
			continue
		}
		if p := md.GetNationalPrefixForParsing(); p != "" {
			re, err := regexp.Compile("^(?:" + p + ")")
			if err != nil {
				return nil, err
			}
			m[cc] = re
		}
	}
	return m, nil
})

// mayStripAgain reports whether parsing e164, the E.164 form of a number
// with country calling code cc, could strip a national prefix from it. It
// is false for nearly every real number, which saves a second parse.
func mayStripAgain(cc int32, e164 string) bool {
	prefixes, err := nationalPrefixes()
	if err != nil {
		return true
	}
	re := prefixes[cc]
	if re == nil {
		return false
	}
	digits := 1
	for c := cc; c >= 10; c /= 10 {
		digits++
	}
	return len(e164) > 1+digits && re.MatchString(e164[1+digits:])
}

// ValidRegion reports whether region (either case) is a region that
// Phone accepts as its default region. The empty region is valid: it
// means none.
func ValidRegion(region string) bool {
	_, err := canonicalRegion(region)
	return err == nil
}

// canonicalRegion returns region in upper case, or ErrPhoneRegion if the
// phonenumbers metadata does not know it.
func canonicalRegion(region string) (string, error) {
	if region == "" {
		return "", nil
	}
	if len(region) != 2 {
		return "", ErrPhoneRegion
	}
	var b [2]byte
	for i := range b {
		c := region[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	// GetSupportedRegions returns the library's map, which is never written
	// after init, so reading it from many goroutines is safe.
	if !phonenumbers.GetSupportedRegions()[string(b[:])] {
		return "", ErrPhoneRegion
	}
	if region[0] != b[0] || region[1] != b[1] {
		region = string(b[:])
	}
	return region, nil
}

// hasLetter reports whether s contains a letter of any script.
func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return hasLetterSlow(s[i:])
		}
		if 'a' <= c|0x20 && c|0x20 <= 'z' {
			return true
		}
	}
	return false
}

func hasLetterSlow(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}

func hasPlus(s string) bool {
	return strings.ContainsRune(s, '+') || strings.ContainsRune(s, '＋')
}

// extensionLabels are the written extension markers, longest first so that
// "extn" is not read as "n" after "ext".
var extensionLabels = [...]string{"extension", "extn", "ext", "x", "#"}

// stripLabelledExtension removes a trailing extension written with a label
// ("ext. 12", "x12", "#12", "extension: 12#") and returns the number before
// it; s is returned unchanged when it does not end with one. The label is
// matched without regard to case and the number before it is left for the
// caller to check.
func stripLabelledExtension(s string) string {
	t := strings.TrimRightFunc(s, unicode.IsSpace)
	t = strings.TrimSuffix(t, "#")
	i := len(t)
	for i > 0 && '0' <= t[i-1] && t[i-1] <= '9' {
		i--
	}
	if i == len(t) || len(t)-i > 20 {
		return s
	}
	p := strings.TrimRight(t[:i], " \t,-")
	p = strings.TrimSuffix(p, ".")
	p = strings.TrimSuffix(p, ":")
	for _, label := range extensionLabels {
		if len(p) >= len(label) && strings.EqualFold(p[len(p)-len(label):], label) {
			return strings.TrimRight(p[:len(p)-len(label)], " \t,")
		}
	}
	return s
}
