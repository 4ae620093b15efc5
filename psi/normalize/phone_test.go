package normalize

import (
	"errors"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
)

func TestPhone(t *testing.T) {
	tests := []struct {
		name, input, region, want string
		err                       error
	}{
		// protocol/README.md ("Normalization") examples.
		{"doc international", "+1 (415) 555-0132", "", "+14155550132", nil},
		{"doc GB landline", "020 7946 0018", "GB", "+442079460018", nil},
		{"doc GB mobile", "07700 900123", "GB", "+447700900123", nil},
		{"doc no country code", "415-555-0132", "", "", ErrPhoneNoCountryCode},
		{"doc vanity", "1-800-FLOWERS", "US", "", ErrPhoneLetters},

		// Rule 1: + and a country code need no region; the region is ignored then.
		{"international with other region", "+44 20 7946 0018", "US", "+442079460018", nil},
		{"international lowercase region", "+1 415 555 0132", "gb", "+14155550132", nil},
		{"national lowercase region", "020 7946 0018", "gb", "+442079460018", nil},
		{"IDD prefix from GB", "00 1 415 555 0132", "GB", "+14155550132", nil},
		{"IDD prefix from US", "011 44 20 7946 0018", "US", "+442079460018", nil},
		{"IDD without region", "0044 20 7946 0018", "", "", ErrPhoneNoCountryCode},
		{"national prefix after country code", "+44 (0) 20 7946 0018", "", "+442079460018", nil},
		{"national prefix stripped until stable (fuzz)", "0000000000", "BA", "+38700000000", nil},
		{"Italian leading zero kept", "+39 06 1234 5678", "", "+390612345678", nil},
		{"fullwidth digits", "＋１ ４１５ ５５５ ０１３２", "", "+14155550132", nil},
		{"unknown region", "+1 415 555 0132", "XX", "", ErrPhoneRegion},
		{"non-geographic region code", "+1 415 555 0132", "001", "", ErrPhoneRegion},
		{"unknown country code", "+999 1234 5678", "", "", ErrPhoneCountryCode},

		// Rule 2: possible, not necessarily valid.
		{"possible but unassigned range", "+1 555 555 0132", "", "+15555550132", nil},
		{"too short", "+44 20", "", "", ErrPhoneTooShort},
		{"US local only (no area code)", "555-0100", "US", "", ErrPhoneLocalOnly},
		{"US local only with country code", "+1 555 0100", "", "", ErrPhoneLocalOnly},
		{"GB local only", "7946 0018", "GB", "", ErrPhoneLocalOnly},
		{"extension on a full number", "+1 415 555 0100 ext 12", "", "+14155550100", nil},
		{"too long", "+1 415 555 0132 1234 5678", "", "", ErrPhoneTooLong},
		{"empty", "", "GB", "", ErrPhoneEmpty},
		{"spaces", "   ", "GB", "", ErrPhoneEmpty},
		{"punctuation only", "()--", "GB", "", ErrPhoneNotNumber},
		{"invalid UTF-8", "+1 415 555 \xff0132", "", "", ErrPhoneUTF8},

		// Rule 3: no vanity letters; ext, x and # extensions dropped.
		{"vanity international", "+1 800 FLOWERS", "", "", ErrPhoneLetters},
		{"vanity lowercase", "1-800-flowers", "US", "", ErrPhoneLetters},
		{"letters before", "tel +1 415 555 0132", "", "", ErrPhoneLetters},
		{"tel URI", "tel:+1-415-555-0132", "", "", ErrPhoneLetters},
		{"cyrillic letters", "+7 495 ДОМ 1234", "", "", ErrPhoneLetters},
		{"cyrillic extension label", "+7 495 123 4567 доб 12", "", "", ErrPhoneLetters},
		{"ext", "+1 415 555 0132 ext 123", "", "+14155550132", nil},
		{"ext dot", "+1 415 555 0132 ext. 123", "", "+14155550132", nil},
		{"EXT colon", "+1 415 555 0132 EXT: 123", "", "+14155550132", nil},
		{"extension", "+1 415 555 0132 extension 123", "", "+14155550132", nil},
		{"extn", "+1 415 555 0132 extn 123", "", "+14155550132", nil},
		{"x", "+1 415 555 0132 x123", "", "+14155550132", nil},
		{"X with space", "415-555-0132 X 9", "US", "+14155550132", nil},
		{"comma ext", "+1 415 555 0132, ext 123", "", "+14155550132", nil},
		{"hash prefix", "+1 415 555 0132 #123", "", "+14155550132", nil},
		{"hash suffix", "+1 415 555 0132 ext 123#", "", "+14155550132", nil},
		{"American hash", "415-555-0132 - 503#", "US", "+14155550132", nil},
		{"trailing spaces after ext", "+1 415 555 0132 x123  ", "", "+14155550132", nil},
		{"label without digits", "+1 415 555 0132 ext", "", "", ErrPhoneLetters},
		{"label not at end", "+1 415 x12 555 0132", "", "", ErrPhoneLetters},
		{"letters then ext", "1-800-FLOWERS x12", "US", "", ErrPhoneLetters},
		{"word ending in x", "+1 415 555 0132 fax 12", "", "", ErrPhoneLetters},

		// UID2 "Normalization and Encoding" examples (with the regions they
		// imply; the Singapore example in the docs has digits that do not
		// agree with each other, so it is left out).
		{"uid2 US", "1 (234) 567-8901", "US", "+12345678901", nil},
		{"uid2 Sydney", "(02) 1234 5678", "AU", "+61212345678", nil},
		{"uid2 normalized", "+12345678901", "", "+12345678901", nil},

		// Google Ads: E.164, e.g. +16502531234.
		{"google example", "+1 650-253-1234", "", "+16502531234", nil},
		{"google national", "(650) 253-1234", "US", "+16502531234", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Phone(tt.input, tt.region)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Phone(%q, %q) = %q, %v; want %q, %v", tt.input, tt.region, got, err, tt.want, tt.err)
			}
			if err != nil {
				checkNoValue(t, err, tt.input)
				return
			}
			for _, region := range []string{tt.region, "", "GB", "US"} {
				if again, err := Phone(got, region); err != nil || again != got {
					t.Fatalf("not idempotent: Phone(%q, %q) = %q, %v", got, region, again, err)
				}
			}
			if n, err := Value(ident.Phone, tt.input, tt.region); n != got || err != nil {
				t.Fatalf("Value(ident.Phone) = %q, %v; want %q", n, err, got)
			}
		})
	}
}

func TestValidRegion(t *testing.T) {
	for _, r := range []string{"", "GB", "gb", "Us", "AU", "SG"} {
		if !ValidRegion(r) {
			t.Errorf("ValidRegion(%q) = false", r)
		}
	}
	for _, r := range []string{"XX", "ZZ", "001", "G", "GBR", "uk", "g\xff"} {
		if ValidRegion(r) {
			t.Errorf("ValidRegion(%q) = true", r)
		}
	}
}

func TestNormalizeUnknownKind(t *testing.T) {
	if _, err := Value(ident.Kind(9), "a@b.c", ""); !errors.Is(err, ident.ErrUnknownKind) {
		t.Fatalf("Value(kind 9) error = %v, want ErrUnknownKind", err)
	}
}
