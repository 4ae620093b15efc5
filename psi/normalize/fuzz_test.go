package normalize

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"
)

// The seed corpus runs on every go test; go test -fuzz=FuzzX explores from it.

func FuzzEmail(f *testing.F) {
	for _, s := range []string{
		"Alice.Smith+promo@GMAIL.com", " Bob.Jones@Example.ORG ", "carol+list@example.net",
		"d.o.t@googlemail.com", "+@gmail.com", "x@y@z.com", "JÖRG@x.com", "\u212aelvin@x.com",
		"a@b.c", "@", "a@.", ".@gmail.com", "a\u00a0b@c.d", "\xff@a.b", "", " ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Email(s)
		if err != nil {
			if got != "" {
				t.Fatalf("value %q returned with error %v", got, err)
			}
			return
		}
		if !utf8.ValidString(got) || strings.Count(got, "@") != 1 || strings.TrimSpace(got) != got {
			t.Fatalf("Email(%q) = %q breaks the rules", s, got)
		}
		if strings.ContainsAny(got, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("Email(%q) = %q has upper-case ASCII", s, got)
		}
		again, err := Email(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: Email(%q) = %q, then %q, %v", s, got, again, err)
		}
	})
}

func FuzzPhone(f *testing.F) {
	for _, s := range []struct{ v, region string }{
		{"+1 (415) 555-0132", ""}, {"020 7946 0018", "GB"}, {"07700 900123", "GB"},
		{"415-555-0132", ""}, {"1-800-FLOWERS", "US"}, {"+1 415 555 0132 ext. 12", ""},
		{"+1 415 555 0132 #12", ""}, {"415-555-0132 - 503#", "US"}, {"+44 (0) 20 7946 0018", ""},
		{"00 1 415 555 0132", "GB"}, {"＋１ ４１５ ５５５ ０１３２", ""}, {"+39 06 1234 5678", "IT"},
		{"(02) 1234 5678", "AU"}, {"tel:+1-415-555-0132;ext=1", ""}, {"+1 415 555 0132;12", ""},
		{"+800 1234 5678", ""}, {"8 800 555 35 35", "RU"}, {"+54 9 11 1234 5678", "AR"},
	} {
		f.Add(s.v, s.region)
	}
	f.Fuzz(func(t *testing.T, s, region string) {
		got, err := Phone(s, region)
		if err != nil {
			if got != "" {
				t.Fatalf("value %q returned with error %v", got, err)
			}
			return
		}
		if len(got) < 3 || got[0] != '+' || strings.Trim(got[1:], "0123456789") != "" {
			t.Fatalf("Phone(%q, %q) = %q, not E.164", s, region, got)
		}
		// Idempotent with the same region, and with none: E.164 needs none.
		for _, r := range []string{region, ""} {
			again, err := Phone(got, r)
			if err != nil || again != got {
				t.Fatalf("not idempotent: Phone(%q, %q) = %q, then with %q: %q, %v", s, region, got, r, again, err)
			}
		}
	})
}

func FuzzHashed(f *testing.F) {
	sum := sha256.Sum256([]byte("a@b.co"))
	for _, s := range []string{
		hex.EncodeToString(sum[:]), strings.ToUpper(hex.EncodeToString(sum[:])),
		base64.StdEncoding.EncodeToString(sum[:]), base64.URLEncoding.EncodeToString(sum[:]),
		"", "a@b.co", strings.Repeat("=", 44), strings.Repeat("g", 64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Hashed(s)
		if err != nil {
			if d != [32]byte{} {
				t.Fatalf("Hashed(%q) returned a digest with error %v", s, err)
			}
			return
		}
		// Decode then encode gives back the input (hex up to case).
		switch len(s) {
		case 64:
			if enc := hex.EncodeToString(d[:]); !strings.EqualFold(enc, s) {
				t.Fatalf("Hashed(%q) re-encodes as %q", s, enc)
			}
		case 44:
			if enc := base64.StdEncoding.EncodeToString(d[:]); enc != s {
				t.Fatalf("Hashed(%q) re-encodes as %q", s, enc)
			}
		default:
			t.Fatalf("Hashed accepted %d characters", len(s))
		}
	})
}
