package customers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
)

// plainList is a small list with every kind of cell: valid, invalid, empty,
// duplicate, a value with the delimiter inside (quoted where needed).
var plainRows = [][]string{
	{"id", "email", "phone"},
	{"c1", "Alice@Example.com", "+1 415 555 0132"},
	{"c2", "bob@example.com", ""},
	{"c3", "not-an-email", "+44 20 7946 0018"},
	{"c4", "ALICE@example.com", "+1 (415) 555-0132"},
	{"c;5|x", "", "+33 1 23 45 67 89"},
}

// write renders rows as a CSV dialect: delim, all quoted or only as needed,
// line ending, BOM, and header names replaced.
func write(rows [][]string, delim string, quoteAll bool, eol string, bom bool, header []string) string {
	var b strings.Builder
	if bom {
		b.WriteString("\ufeff")
	}
	for i, r := range rows {
		if i == 0 && header != nil {
			r = header
		}
		for j, f := range r {
			if j > 0 {
				b.WriteString(delim)
			}
			if quoteAll || strings.ContainsAny(f, delim+"\"\r\n") {
				f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
			}
			b.WriteString(f)
		}
		b.WriteString(eol)
	}
	return b.String()
}

// TestFormats: the same list as plain CSV, a spreadsheet export (BOM, all
// fields quoted, CRLF, "Email Address"/"Phone Number"), ';'-, tab- and
// '|'-separated reads to identical counts, identifiers and row ids.
func TestFormats(t *testing.T) {
	formats := map[string]string{
		"plain":       write(plainRows, ",", false, "\n", false, nil),
		"spreadsheet": write(plainRows, ",", true, "\r\n", true, []string{"ID", "Email Address", "Phone Number"}),
		"semicolon":   write(plainRows, ";", false, "\n", false, []string{"Id", "E-Mail", "Mobile"}),
		"tab":         write(plainRows, "\t", false, "\r\n", true, []string{"id", "mail", "Telephone"}),
		"bar":         write(plainRows, "|", true, "\n", false, []string{"id", "email_address", "cell"}),
	}
	want := ""
	for name, text := range formats {
		l, err := Read(strings.NewReader(text), Options{Name: name, IDColumn: "ID"}, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := fmt.Sprintf("rows %d sent %d/%d invalid %d/%d inputs %x %x ids", l.Rows, l.Sent(ident.Email), l.Sent(ident.Phone),
			l.Invalid.Email, l.Invalid.Phone, l.Inputs.Email, l.Inputs.Phone)
		for i := range l.Rows {
			got += " " + l.RowID(i)
		}
		if l.Rows != 5 || l.Sent(ident.Email) != 2 || l.Sent(ident.Phone) != 3 || l.Invalid.Email != 1 || l.RowID(4) != "c;5|x" {
			t.Errorf("%s: %s", name, got)
		}
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("%s reads differently:\n%s\nwant\n%s", name, got, want)
		}
	}
}

func TestHeaderSynonyms(t *testing.T) {
	for _, h := range []string{"email", "E-mail", "Email Address", "EMAIL_ADDRESS", "mail", " e.mail "} {
		if l, err := Read(strings.NewReader(h+"\na@b.co\n"), Options{}, nil); err != nil || l.Sent(ident.Email) != 1 {
			t.Errorf("%q: %v", h, err)
		}
	}
	for _, h := range []string{"phone", "Phone Number", "mobile", "Cell", "telephone", "TEL", "phone_number"} {
		if l, err := Read(strings.NewReader(h+"\n+14155550132\n"), Options{}, nil); err != nil || l.Sent(ident.Phone) != 1 {
			t.Errorf("%q: %v", h, err)
		}
	}
	// Hashed columns as before.
	if l, err := Read(strings.NewReader("Email_SHA256\n"+strings.Repeat("ab", 32)+"\n"), Options{}, nil); err != nil || l.Sent(ident.Email) != 1 {
		t.Errorf("hashed: %v", err)
	}
	// A named column replaces the synonyms of its kind.
	l, err := Read(strings.NewReader("email,work mail\nx@y.co,a@b.co\n"), Options{EmailColumn: "Work-Mail"}, nil)
	if err != nil || l.Sent(ident.Email) != 1 || len(l.Columns) != 1 || l.Columns[0] != "work mail" {
		t.Errorf("named: %v %v", err, l)
	}
}

// TestColumnNotFound: a named column that is not there is an error that
// lists the header as written; a value-like header cell is not echoed.
func TestColumnNotFound(t *testing.T) {
	for _, c := range []struct {
		opt  Options
		flag string
	}{
		{Options{EmailColumn: "emial"}, "--email-column"},
		{Options{PhoneColumn: "fax"}, "--phone-column"},
		{Options{IDColumn: "customer"}, "--id-column"},
	} {
		c.opt.Name = "c.csv"
		_, err := Read(strings.NewReader("\ufeff\"Customer ID\";\"Email Address\";\"Phone Number\"\r\n1;a@b.co;\r\n"), c.opt, nil)
		if !errors.Is(err, ErrColumnNotFound) || !strings.Contains(err.Error(), c.flag) ||
			!strings.Contains(err.Error(), "found columns Customer ID, Email Address, Phone Number") {
			t.Errorf("%+v: %v", c.opt, err)
		}
	}
	_, err := Read(strings.NewReader("alice@example.com,+1 415 555 0132,Alice\n"), Options{EmailColumn: "email"}, nil)
	if !errors.Is(err, ErrColumnNotFound) || strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "415") ||
		!strings.Contains(err.Error(), "(column 1), (column 2), Alice") {
		t.Errorf("headerless: %v", err)
	}
	_, err = Read(strings.NewReader("1-800-FLOWERS,Alice\n"), Options{EmailColumn: "email"}, nil)
	if !errors.Is(err, ErrColumnNotFound) || strings.Contains(err.Error(), "FLOWERS") {
		t.Errorf("headerless vanity number: %v", err)
	}
}

// TestMalformedQuotes: a stray or unbalanced quote anywhere gives an error
// that names the line, never a panic, and never the value.
func TestMalformedQuotes(t *testing.T) {
	for _, c := range []struct {
		text string
		line string
	}{
		{"email\nx@y.co\na\"b@example.com\n", "line 3"},
		{"email\n\"a\"b@example.com\"\nx@y.co\n", "line 2"},
		{"email,phone\nx@y.co,\n\"secret@example.com,+14155550132\n", "line 3"},
		{"\"email\nx@y.co\n", "lines 1 to 2"},
		{"em\"ail\nx@y.co\n", "line 1"},
		{"\ufeff\"email\";\"phone\"\n\"a\"b\";\n", "line 2"},
	} {
		_, err := Read(strings.NewReader(c.text), Options{Name: "c.csv"}, nil)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "c.csv: "+c.line+":") {
			t.Errorf("%q: %v, want %s", c.text, err, c.line)
		}
		if err != nil && (strings.Contains(err.Error(), "example") || strings.Contains(err.Error(), "415")) {
			t.Errorf("%q: the error shows a value: %v", c.text, err)
		}
	}
	// Quotes used correctly are fine, with any delimiter.
	l, err := Read(strings.NewReader("email;name\n\"x@y.co\";\"O\"\"Brien; Pat\"\n"), Options{}, nil)
	if err != nil || l.Sent(ident.Email) != 1 || l.Rows != 1 {
		t.Fatalf("quoted: %v", err)
	}
}

// FuzzRead: no input makes Read panic; an error names the input, and a
// list's per-row bookkeeping agrees with its counts.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"email\na\"b@example.com\n", "email\n\"a\"b@example.com\"\n", "\ufeff\"Email Address\";\"Phone\"\r\n\"a@b.co\";\"+14155550132\"\r\n",
		"email\tphone\n\"x\ty\"\t1\n", "email|id\n|\n", "", "\ufeff", "\"", "email\n\"", "phone_sha256,email_sha256\nzz,\n",
		write(plainRows, ",", true, "\r\n", true, nil),
	} {
		f.Add(s, "", "")
	}
	f.Add("Mail,x\na@b.co,1\n", "x", "x")
	f.Fuzz(func(t *testing.T, text, emailCol, idCol string) {
		l, err := Read(strings.NewReader(text), Options{Name: "fuzz.csv", EmailColumn: emailCol, IDColumn: idCol, DefaultRegion: "US"}, func(e *LineError) {
			if e.Line < 1 || !strings.HasPrefix(e.Error(), "fuzz.csv: line ") {
				t.Fatalf("line error %v", e)
			}
		})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error without the input's name: %v", err)
			}
			return
		}
		for _, k := range ident.Kinds {
			if len(l.rowIDs.Get(k)) != l.Rows {
				t.Fatalf("%v: %d row entries for %d rows", k, len(l.rowIDs.Get(k)), l.Rows)
			}
			for row := range l.Rows {
				if i := l.RowInput(k, row); i < -1 || i >= l.Sent(k) {
					t.Fatalf("row %d: input %d of %d", row, i, l.Sent(k))
				}
			}
		}
		if idCol != "" && l.IDColumn == "" {
			t.Fatal("an id column was named and none was found, without an error")
		}
	})
}

// TestIDColumnIsNoIdentifier: --id-column cannot name an identifier column,
// whose values --matches would then hold.
func TestIDColumnIsNoIdentifier(t *testing.T) {
	for _, id := range []string{"email", "Phone Number", "email_sha256"} {
		_, err := Read(strings.NewReader("Customer ID,Email,Phone Number,email_sha256\n7,a@b.co,,\n"), Options{Name: "c.csv", IDColumn: id}, nil)
		if !errors.Is(err, ErrIDIsIdentifier) || strings.Contains(err.Error(), "a@b.co") {
			t.Errorf("--id-column %s: %v", id, err)
		}
	}
	if _, err := Read(strings.NewReader("Customer ID,Email\n7,a@b.co\n"), Options{Name: "c.csv", IDColumn: "customer id"}, nil); err != nil {
		t.Errorf("a customer id column: %v", err)
	}
}
