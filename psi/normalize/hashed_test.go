package normalize

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
)

// uid2Vectors are the known answers published in the UID2 documentation,
// "Normalization and Encoding" (unifiedid.com/docs/getting-started/gs-normalization-encoding):
// raw value, normalized value, SHA-256 in hex and in base64.
var uid2Vectors = []struct {
	kind                          ident.Kind
	raw, region, normalized, hex_ string
	base64                        string
}{
	{ident.Email, "user@example.com", "", "user@example.com",
		"b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514", "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ="},
	{ident.Email, "MyEmail@example.com", "", "myemail@example.com",
		"16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5", "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U="},
	{ident.Email, "My.Email@example.com", "", "my.email@example.com",
		"e22b53bc6f871274f3a62ab37a3caed7214fc14d676215a96a242fcfada1c81f", "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8="},
	{ident.Email, "JaneSaoirse@example.com", "", "janesaoirse@example.com",
		"d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d", "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20="},
	{ident.Email, "Jane.Saoirse@example.com", "", "jane.saoirse@example.com",
		"b196432c7b989a2ca91c83799957c515da53e6c13abf20b78fea94f117e90bf8", "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g="},
	{ident.Email, "JaneSaoirse+Work@example.com", "", "janesaoirse+work@example.com",
		"28aaee4815230cd3b4ebd88c515226550666e91ac019929e3adac3f66c288180", "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA="},
	{ident.Email, "JaneSaoirse+Work@gmail.com", "", "janesaoirse@gmail.com",
		"92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f", "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8="},
	{ident.Phone, "1 (234) 567-8901", "US", "+12345678901",
		"10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee", "EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4="},
}

func TestUID2KnownAnswers(t *testing.T) {
	for _, v := range uid2Vectors {
		t.Run(v.raw, func(t *testing.T) {
			got, err := Value(v.kind, v.raw, v.region)
			if err != nil || got != v.normalized {
				t.Fatalf("Normalize = %q, %v; want %q", got, err, v.normalized)
			}
			want := ident.FromNormalized(v.kind, got)
			for _, h := range []string{v.hex_, strings.ToUpper(v.hex_), v.base64} {
				d, err := Hashed(h)
				if err != nil {
					t.Fatalf("Hashed(%q): %v", h, err)
				}
				if in := ident.FromDigest(v.kind, d); in != want {
					t.Fatalf("FromDigest(Hashed(%q)) != ident.FromNormalized(%q)", h, got)
				}
			}
		})
	}
}

// TestHashedMatchesPlaintext checks the promise of the package: a plaintext
// identifier and the SHA-256 of its normalized form give the same PRF input,
// whether the digest is written in hex (either case) or base64.
func TestHashedMatchesPlaintext(t *testing.T) {
	values := []struct {
		k ident.Kind
		v string
	}{
		{ident.Email, "alicesmith@gmail.com"}, {ident.Email, "jÖrg@x.com"}, {ident.Email, "carol+list@example.net"},
		{ident.Phone, "+14155550132"}, {ident.Phone, "+442079460018"},
	}
	for _, tt := range values {
		sum := sha256.Sum256([]byte(tt.v))
		want := ident.FromNormalized(tt.k, tt.v)
		if want.Kind() != tt.k || want[0] != byte(tt.k) {
			t.Fatalf("FromNormalized(%v, %q) has tag %#x", tt.k, tt.v, want[0])
		}
		for _, enc := range []string{
			hex.EncodeToString(sum[:]),
			strings.ToUpper(hex.EncodeToString(sum[:])),
			base64.StdEncoding.EncodeToString(sum[:]),
		} {
			d, err := Hashed(enc)
			if err != nil {
				t.Fatalf("Hashed(%q): %v", enc, err)
			}
			if got := ident.FromDigest(tt.k, d); got != want {
				t.Errorf("FromDigest(%v, Hashed(%q)) != ident.FromNormalized(%v, %q)", tt.k, enc, tt.k, tt.v)
			}
		}
	}
	// The tag separates kinds: the same digest gives different inputs.
	if ident.FromNormalized(ident.Email, "x") == ident.FromNormalized(ident.Phone, "x") {
		t.Fatal("email and phone inputs are equal")
	}
}

func TestHashedInvalid(t *testing.T) {
	sum := sha256.Sum256([]byte("a@b.co"))
	hx := hex.EncodeToString(sum[:])
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	tests := []struct {
		name, input string
		err         error
	}{
		{"empty", "", ErrHashedLength},
		{"plaintext", "a@b.co", ErrHashedLength},
		{"hex too short", hx[:63], ErrHashedLength},
		{"hex too long", hx + "0", ErrHashedLength},
		{"hex with spaces", " " + hx[:62] + " ", ErrHashedHex},
		{"hex with g", "g" + hx[1:], ErrHashedHex},
		{"hex 0x prefix", "0x" + hx[:62], ErrHashedHex},
		{"hex with trailing space", hx + " ", ErrHashedLength},
		{"base64 unpadded", strings.TrimSuffix(b64, "="), ErrHashedLength},
		{"base64 url-safe", strings.NewReplacer("+", "-", "/", "_").Replace("+/" + b64[2:]), ErrHashedBase64},
		{"base64 bad padding bits", b64[:42] + nonCanonicalLast(b64[42]) + "=", ErrHashedBase64},
		{"base64 with newline", b64[:20] + "\n" + b64[21:], ErrHashedBase64},
		{"base64 of 33 bytes", base64.StdEncoding.EncodeToString(make([]byte, 33)), ErrHashedBase64},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(make([]byte, 31)) + "", ErrHashedBase64},
		{"sha512 hex", strings.Repeat("ab", 64), ErrHashedLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Hashed(tt.input)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Hashed(%q) error = %v, want %v", tt.input, err, tt.err)
			}
			if d != [32]byte{} {
				t.Fatalf("Hashed(%q) returned a digest with its error", tt.input)
			}
		})
	}
}

// nonCanonicalLast returns a base64 character with the same top 4 bits as c
// but a low bit set, which a strict decoder must refuse in the last position.
func nonCanonicalLast(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}
