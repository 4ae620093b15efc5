package customers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

func TestRead(t *testing.T) {
	sum := sha256.Sum256([]byte("alice@example.com"))
	in := "id,Email,phone,email_sha256,phone_sha256\n" +
		"1,Alice@Example.com,+1 415 555 0132,,\n" +
		"2,,," + hex.EncodeToString(sum[:]) + ",\n" + // same identifier as row 1, hashed
		"3,not-an-email,020 7946 0018,,\n" + // invalid email; national phone needs a region
		"4,bob@example.com,,,zz\n" // invalid hash
	{
		for _, wrap := range []string{"full", "onebyte", "half"} {
			t.Run(wrap, func(t *testing.T) {
				var src = strings.NewReader(in)
				var rd interface{ Read([]byte) (int, error) } = src
				switch wrap {
				case "onebyte":
					rd = iotest.OneByteReader(src)
				case "half":
					rd = iotest.HalfReader(src)
				}
				var errs []*LineError
				l, err := Read(rd, Options{Name: "c.csv"}, func(e *LineError) { errs = append(errs, e) })
				if err != nil {
					t.Fatal(err)
				}
				if l.Rows != 4 {
					t.Fatalf("rows %d", l.Rows)
				}
				if l.Sent(ident.Email) != 2 || l.Sent(ident.Phone) != 1 {
					t.Fatalf("sent email %d phone %d", l.Sent(ident.Email), l.Sent(ident.Phone))
				}
				if l.Invalid.Email != 1 || l.Invalid.Phone != 2 {
					t.Fatalf("invalid %v", l.Invalid)
				}
				if l.RowInput(ident.Email, 0) != l.RowInput(ident.Email, 1) || l.RowInput(ident.Email, 0) < 0 {
					t.Fatal("a hashed value and its plaintext must be one identifier")
				}
				for _, e := range errs {
					msg := e.Error()
					for _, secret := range []string{"not-an-email", "7946", "zz", "bob", "broken"} {
						if strings.Contains(msg, secret) {
							t.Fatalf("error %q contains a value", msg)
						}
					}
				}
				if !errors.Is(errs[1].Err, normalize.ErrPhoneNoCountryCode) || !strings.Contains(errs[1].Error(), "line 4") || !strings.Contains(errs[1].Error(), "--default-region") {
					t.Fatalf("second error: %v", errs[1])
				}
			})
		}
	}
	l, err := Read(strings.NewReader("phone\n020 7946 0018\n"), Options{DefaultRegion: "GB"}, nil)
	if err != nil || l.Sent(ident.Phone) != 1 {
		t.Fatalf("with region: %v %v", l, err)
	}
}

func TestMissingColumn(t *testing.T) {
	_, err := Read(strings.NewReader("name,address\nx,y\n"), Options{Name: "c.csv"}, nil)
	if !errors.Is(err, ErrNoIdentifierColumn) || !strings.Contains(err.Error(), "name, address") {
		t.Fatalf("got %v", err)
	}
	// A file without a header: its first record must not be echoed.
	_, err = Read(strings.NewReader("alice@example.com,+14155550132\n"), Options{Name: "c.csv"}, nil)
	if !errors.Is(err, ErrNoIdentifierColumn) || strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "4155") ||
		!strings.Contains(err.Error(), "(column 1), (column 2)") {
		t.Fatalf("headerless: %v", err)
	}
	l, err := Read(strings.NewReader("name,courriel\nx,a@b.co\n"), Options{EmailColumn: "Courriel"}, nil)
	if err != nil || l.Sent(ident.Email) != 1 {
		t.Fatalf("--email-column: %v", err)
	}
}
