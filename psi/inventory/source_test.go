package inventory

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/normalize"
)

// scanString scans an inventory given as a string and returns the summary,
// the invalid records' messages and the error.
func scanString(t *testing.T, name, data string, format Format) (Summary, []string, error) {
	t.Helper()
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}, DefaultRegion: "US"})
	var invalid []string
	s, err := Scan(context.Background(), strings.NewReader(data), name, format, p,
		func(Eligible) error { return nil },
		func(e *RecordError) { invalid = append(invalid, e.Error()) })
	return s, invalid, err
}

func TestCSVHeader(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		eligible int64
		wantErr  string
	}{
		{"in order", "user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\n", 1, ""},
		{"any order, extra columns", "note,opted_out,purposes,value,kind,user_id,x\nn,,advertising,a@example.com,email,u1,y\n", 1, ""},
		{"byte order mark, spaces, CRLF", "\ufeffuser_id , kind,value,purposes,opted_out\r\nu1,email,a@example.com,advertising,\r\n", 1, ""},
		{"header only", "user_id,kind,value,purposes,opted_out\n", 0, ""},
		{"empty", "", 0, "empty file; the first line must be a header"},
		{"missing column", "user_id,kind,value,purposes,note\nu1,email,a@example.com,advertising,x\n", 0,
			"line 1: the header lacks the column(s) opted_out (found: user_id, kind, value, purposes, note)"},
		{"duplicate column", "user_id,kind,value,purposes,opted_out,purposes\n", 0, "column purposes appears twice"},
		{"malformed quote", "user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\nu2,email,\"b@example.com,advertising,false\n", 0,
			"inventory.csv: line 3: malformed CSV"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := scanString(t, "inventory.csv", tc.data, Auto)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.EligibleRecords != tc.eligible {
				t.Errorf("eligible records = %d, want %d", s.EligibleRecords, tc.eligible)
			}
		})
	}
}

// TestCSVWithoutHeader checks that a file whose first line is a record is
// refused without showing that record's values.
func TestCSVWithoutHeader(t *testing.T) {
	_, _, err := scanString(t, "inventory.csv", "user7,email,secret@example.com,advertising,+14155550132\n", Auto)
	if err == nil {
		t.Fatal("a file without a header was accepted")
	}
	t.Log(err)
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "4155550132") {
		t.Errorf("error %q holds a value", err)
	}
	if !strings.Contains(err.Error(), "found: user7, email, (column 3), advertising, (column 5)") {
		t.Errorf("error %q does not list the columns found", err)
	}
}

func TestCSVRecordErrors(t *testing.T) {
	data := "user_id,kind,value,purposes,opted_out\n" +
		"u1,email,a@example.com,advertising,false\n" +
		"u2,email,b@example.com,advertising\n" + // too few fields
		"u3,phone,4155550132,advertising,false,extra\n" + // too many
		"\n" + // blank lines are skipped
		"u4,\"phone\",\"(415) 555-0199\",\"advertising;\naccount\",false\n" + // quoted newline
		"u5,phone,12,advertising,false\n"
	s, invalid, err := scanString(t, "inventory.csv", data, Auto)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"inventory.csv: line 3: has 4 fields, the header has 5",
		"inventory.csv: line 4: has 6 fields, the header has 5",
		"inventory.csv: line 8: phone: too short",
	}
	if strings.Join(invalid, "\n") != strings.Join(want, "\n") {
		t.Errorf("invalid records:\n%s\nwant:\n%s", strings.Join(invalid, "\n"), strings.Join(want, "\n"))
	}
	if s.Records != 5 || s.EligibleRecords != 2 || s.Excluded.Invalid != 3 {
		t.Errorf("summary %+v", s)
	}
}

func TestJSONL(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Reason
		wantErr string
	}{
		{"string purposes", `{"user_id":"u1","kind":"email","value":"a@example.com","purposes":"advertising;account","opted_out":false}`, Included, ""},
		{"array purposes", `{"user_id":"u1","kind":"email","value":"a@example.com","purposes":["account","advertising"],"opted_out":"false"}`, Included, ""},
		{"numeric user id, null opted_out", `{"user_id":17,"kind":"email","value":"a@example.com","purposes":["advertising"],"opted_out":null}`, Included, ""},
		{"empty opted_out", `{"opted_out":"","purposes":"advertising","value":"a@example.com","kind":"email","user_id":"u1","extra":{"a":[1,2]}}`, Included, ""},
		{"opted out", `{"user_id":"u1","kind":"email","value":"a@example.com","purposes":["advertising"],"opted_out":true}`, OptedOut, ""},
		{"security only array", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":["security"],"opted_out":false}`, SecurityOnly, ""},
		{"null purposes", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":null,"opted_out":false}`, NoAdvertisingPurpose, ""},
		{"duplicate key", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":"security","purposes":"advertising","opted_out":false}`, Invalid, "purposes: given twice"},
		{"missing key", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":"advertising"}`, Invalid, "missing field(s) opted_out"},
		{"key case matters", `{"user_id":"u1","Kind":"phone","value":"+14155550132","purposes":"advertising","opted_out":false}`, Invalid, "missing field(s) kind"},
		{"number value", `{"user_id":"u1","kind":"phone","value":14155550132,"purposes":"advertising","opted_out":false}`, Invalid, "value: want a string"},
		{"bad purposes", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":[1],"opted_out":false}`, Invalid, "purposes: want a string or an array of strings"},
		{"bad opted_out", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":"advertising","opted_out":1}`, Invalid, "opted_out: want true or false"},
		{"not an object", `["u1","email"]`, Invalid, "not a JSON object"},
		{"malformed", `{"user_id":"u1","kind":"phone","value":"+1415555secret`, Invalid, "malformed JSON"},
		{"two values", `{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":"advertising","opted_out":false} {}`, Invalid, "more than one JSON value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, invalid, err := scanString(t, "inventory.jsonl", tc.line+"\n", Auto)
			if err != nil {
				t.Fatal(err)
			}
			var got Reason
			switch {
			case s.Excluded.Invalid == 1:
				got = Invalid
			case s.Excluded.SecurityOnly == 1:
				got = SecurityOnly
			case s.Excluded.NoAdvertisingPurpose == 1:
				got = NoAdvertisingPurpose
			case s.Excluded.OptedOut == 1:
				got = OptedOut
			}
			if got != tc.want || s.Records != 1 {
				t.Fatalf("got %v (%q), want %v", got, invalid, tc.want)
			}
			if tc.wantErr != "" {
				want := "inventory.jsonl: line 1: " + tc.wantErr
				if len(invalid) != 1 || !strings.HasPrefix(invalid[0], want) {
					t.Fatalf("invalid = %q, want %q", invalid, want)
				}
				if strings.Contains(invalid[0], "secret") {
					t.Errorf("error %q holds a value", invalid[0])
				}
			}
		})
	}
}

func TestJSONLLines(t *testing.T) {
	good := `{"user_id":"u1","kind":"email","value":"a@example.com","purposes":"advertising","opted_out":false}`
	long := `{"user_id":"u1","kind":"email","value":"` + strings.Repeat("a", maxRecordSize) + `@example.com","purposes":"advertising","opted_out":false}`
	data := "\ufeff" + good + "\r\n\n   \n" + long + "\n" + good + "\r\n" + strings.Repeat(" ", 70000) + good // no final newline
	s, invalid, err := scanString(t, "inventory.jsonl", data, Auto)
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 4 || s.EligibleRecords != 3 || s.EligibleIdentifiers.Email != 1 {
		t.Errorf("summary %+v", s)
	}
	if want := "inventory.jsonl: line 4: longer than 1048576 bytes"; len(invalid) != 1 || invalid[0] != want {
		t.Errorf("invalid = %q, want %q", invalid, want)
	}
}

func TestCSVRecordTooLong(t *testing.T) {
	data := "user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\nu2,email,\"" + strings.Repeat("a", 2*maxRecordSize)
	_, _, err := scanString(t, "inventory.csv", data, Auto)
	if err == nil || !strings.Contains(err.Error(), "inventory.csv: after line 2: a record is longer than 1048576 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Format
		ok   bool
	}{
		{"a.csv", CSV, true}, {"dir.x/A.CSV", CSV, true}, {"a.jsonl", JSONL, true},
		{"a.ndjson", JSONL, true}, {"a.json", Auto, false}, {"a", Auto, false},
	} {
		got, err := FormatOf(tc.name)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("FormatOf(%q) = %v, %v", tc.name, got, err)
		}
	}
	for _, tc := range []struct {
		s    string
		want Format
		ok   bool
	}{{"", Auto, true}, {"csv", CSV, true}, {"JSONL", JSONL, true}, {"ndjson", JSONL, true}, {"xml", Auto, false}} {
		got, err := ParseFormat(tc.s)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseFormat(%q) = %v, %v", tc.s, got, err)
		}
	}
	// An explicit format overrides the extension.
	s, _, err := scanString(t, "inventory.txt", "user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\n", CSV)
	if err != nil || s.EligibleRecords != 1 {
		t.Errorf("explicit CSV: %+v, %v", s, err)
	}
	if _, _, err := scanString(t, "inventory.txt", "", Auto); err == nil || !strings.Contains(err.Error(), "cannot tell the format") {
		t.Errorf("unknown extension: %v", err)
	}
}

// TestRunStops checks that Run stops at an error from yield, from the source
// and from the context.
func TestRunStops(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	data := "user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\nu2,email,b@example.com,advertising,false\n"
	errStop := errors.New("stop")
	s, err := Scan(context.Background(), strings.NewReader(data), "i.csv", Auto, p, func(Eligible) error { return errStop }, nil)
	if err != errStop || s.Records != 2 {
		t.Errorf("yield error: %+v, %v", s, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, strings.NewReader(data), "i.csv", Auto, p, func(Eligible) error { return nil }, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	errRead := errors.New("disk on fire")
	r := &failingSeeker{data: data, err: errRead}
	if _, err := Scan(context.Background(), r, "i.csv", Auto, p, func(Eligible) error { return nil }, nil); !errors.Is(err, errRead) {
		t.Errorf("read error: %v", err)
	}
	if _, err := Run(context.Background(), nil, nil, nil, nil); err == nil {
		t.Errorf("nil Policy accepted")
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// failingSeeker reads data, then fails with err, from its start after each
// Seek.
type failingSeeker struct {
	data string
	err  error
	r    io.Reader
}

func (f *failingSeeker) Seek(offset int64, whence int) (int64, error) {
	f.r = io.MultiReader(strings.NewReader(f.data), &errReader{f.err})
	return 0, nil
}

func (f *failingSeeker) Read(p []byte) (int, error) {
	if f.r == nil {
		f.Seek(0, io.SeekStart)
	}
	return f.r.Read(p)
}
