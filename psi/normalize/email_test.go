package normalize

import (
	"errors"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
)

func TestEmail(t *testing.T) {
	tests := []struct {
		name, input, want string
		err               error
	}{
		// protocol/README.md ("Normalization") examples.
		{"doc gmail dots and tag", "Alice.Smith+promo@GMAIL.com", "alicesmith@gmail.com", nil},
		{"doc trim and lowercase", " Bob.Jones@Example.ORG ", "bob.jones@example.org", nil},
		{"doc other domain keeps tag", "carol+list@example.net", "carol+list@example.net", nil},
		{"doc googlemail", "d.o.t@googlemail.com", "dot@googlemail.com", nil},
		{"doc gmail only tag", "+@gmail.com", "", ErrEmailGmailTags},
		{"doc two at", "x@y@z.com", "", ErrEmailManyAt},
		{"doc non-ASCII kept", "JÖRG@x.com", "jÖrg@x.com", nil},

		// Rule 1: trim white space, any Unicode white space.
		{"trim tabs and newlines", "\t\n a@b.co \r\n", "a@b.co", nil},
		{"trim unicode spaces", "\u00a0\u2003a@b.co\u3000\u0085", "a@b.co", nil},
		{"only spaces", "  \t ", "", ErrEmailEmpty},
		{"empty", "", "", ErrEmailEmpty},

		// Rule 2: ASCII letters only.
		{"kelvin sign kept", "\u212aelvin@x.com", "\u212aelvin@x.com", nil},
		{"capital sharp s kept", "STRA\u1e9eE@x.com", "stra\u1e9ee@x.com", nil},
		{"greek capital kept", "ΣΙΓΜΑ@x.gr", "ΣΙΓΜΑ@x.gr", nil},
		{"uppercase domain with non-ASCII", "a@MÜNCHEN.DE", "a@mÜnchen.de", nil},
		{"no punycode", "a@bücher.example", "a@bücher.example", nil},
		{"already normal", "a.b-c_d@e.f", "a.b-c_d@e.f", nil},

		// Rule 3: structure.
		{"no at", "alice.example.com", "", ErrEmailNoAt},
		{"empty local", "@example.com", "", ErrEmailNoLocal},
		{"empty domain", "alice@", "", ErrEmailNoDot},
		{"domain without dot", "alice@localhost", "", ErrEmailNoDot},
		{"domain leading dot", "alice@.example.com", "", ErrEmailEdgeDot},
		{"domain trailing dot", "alice@example.com.", "", ErrEmailEdgeDot},
		{"domain only dot", "alice@.", "", ErrEmailEdgeDot},
		{"space inside local", "ali ce@example.com", "", ErrEmailSpace},
		{"space before at", "alice @example.com", "", ErrEmailSpace},
		{"tab in domain", "alice@exa\tmple.com", "", ErrEmailSpace},
		{"nbsp inside", "alice\u00a0x@example.com", "", ErrEmailSpace},
		{"invalid UTF-8", "al\xffice@example.com", "", ErrEmailUTF8},
		{"three at", "a@b@c@d.com", "", ErrEmailManyAt},

		// Rule 4: gmail.com and googlemail.com only.
		{"gmail dots", "j.a.n.e@gmail.com", "jane@gmail.com", nil},
		{"gmail first plus", "jane+a+b@gmail.com", "jane@gmail.com", nil},
		{"gmail dot after plus", "ja.ne+x.y@gmail.com", "jane@gmail.com", nil},
		{"gmail only dots", "...@gmail.com", "", ErrEmailGmailTags},
		{"gmail dots then tag", ".+x@gmail.com", "", ErrEmailGmailTags},
		{"gmail uppercase domain", "J.Doe@GoogleMail.COM", "jdoe@googlemail.com", nil},
		{"gmail subdomain untouched", "j.doe+x@mail.gmail.com", "j.doe+x@mail.gmail.com", nil},
		{"gmail lookalike untouched", "j.doe+x@gmail.co", "j.doe+x@gmail.co", nil},
		{"gmail with space is not gmail", "j.doe@gmail.com ", "jdoe@gmail.com", nil},

		// Rule 5: other domains keep dots and tags.
		{"outlook keeps tag", "J.Doe+News@Outlook.com", "j.doe+news@outlook.com", nil},

		// UID2 "Normalization and Encoding" examples.
		{"uid2 MyEmail", "MyEmail@example.com", "myemail@example.com", nil},
		{"uid2 MYEMAIL", "MYEMAIL@example.com", "myemail@example.com", nil},
		{"uid2 My.Email", "My.Email@example.com", "my.email@example.com", nil},
		{"uid2 JaneSaoirse+Work other", "JaneSaoirse+Work@example.com", "janesaoirse+work@example.com", nil},
		{"uid2 JANE.SAOIRSE gmail", "JANE.SAOIRSE@gmail.com", "janesaoirse@gmail.com", nil},
		{"uid2 Jane.Saoirse gmail", "Jane.Saoirse@gmail.com", "janesaoirse@gmail.com", nil},
		{"uid2 JaneSaoirse+Work gmail", "JaneSaoirse+Work@gmail.com", "janesaoirse@gmail.com", nil},
		{"uid2 JANESaoirse gmail", "JANESaoirse@gmail.com", "janesaoirse@gmail.com", nil},
		{"uid2 jane.doe gmail", "jane.doe@gmail.com", "janedoe@gmail.com", nil},
		{"uid2 janedoe+home gmail", "janedoe+home@gmail.com", "janedoe@gmail.com", nil},

		// Google Ads customer match: trim and lowercase.
		{"google customer", "  Customer@Example.com", "customer@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Email(tt.input)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Email(%q) = %q, %v; want %q, %v", tt.input, got, err, tt.want, tt.err)
			}
			if err != nil {
				checkNoValue(t, err, tt.input)
				return
			}
			again, err := Email(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: Email(%q) = %q, %v", got, again, err)
			}
			if n, err := Value(ident.Email, tt.input, "GB"); n != got || err != nil {
				t.Fatalf("Value(ident.Email) = %q, %v; want %q", n, err, got)
			}
		})
	}
}

// checkNoValue fails if err's message contains a recognizable part of value:
// errors must say why, never what.
func checkNoValue(t *testing.T, err error, value string) {
	t.Helper()
	for _, part := range strings.FieldsFunc(value, func(r rune) bool { return strings.ContainsRune(" @.+-()#", r) }) {
		if len(part) >= 4 && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(part)) {
			t.Fatalf("error %q contains part of the value %q", err, value)
		}
	}
}
