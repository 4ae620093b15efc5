package inventory

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("user_id,kind,value,purposes,opted_out\nu1,email,a@example.com,advertising,false\nu2,phone,+14155550132,security,\n"))
	f.Add([]byte("opted_out,x,purposes,value,kind,user_id\ntrue,\"a,b\",advertising;account,(415) 555-0132,phone,u1\n"))
	f.Add([]byte("\ufeffuser_id,kind,value,purposes,opted_out\r\nu1,email,\"a\nb@example.com\",advertising,\r\nu2,email\n"))
	f.Add([]byte("user_id,kind,value,purposes,opted_out\nu1,email,\"bad\"quote,advertising,false\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScan(t, data, "fuzz.csv")
	})
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"user_id":"u1","kind":"email","value":"a@example.com","purposes":"advertising","opted_out":false}` + "\n"))
	f.Add([]byte(`{"user_id":1,"kind":"phone","value":"(415) 555-0132","purposes":["security","advertising"],"opted_out":"true","x":{"y":[null]}}` + "\r\n\n"))
	f.Add([]byte(`{"user_id":"u1","kind":"phone","value":"+14155550132","purposes":"security","purposes":"advertising","opted_out":null}`))
	f.Add([]byte("[1,2]\n{\"a\":\n\"\\ud800\"}\n{}{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScan(t, data, "fuzz.jsonl")
	})
}

// checkScan scans data and checks the invariants that hold for any input:
// the counts add up, each identifier is yielded once and only for an
// eligible record, invalid records are reported in order, and reading one
// byte at a time gives the same result.
func checkScan(t *testing.T, data []byte, name string) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}, DefaultRegion: "US"})
	scan := func(r *bytes.Reader, oneByte bool) (Summary, map[ident.Input]bool, error) {
		yielded := make(map[ident.Input]bool)
		var invalid, last int64
		var rd io.ReadSeeker = r
		if oneByte {
			rd = oneByteSeeker{r}
		}
		s, err := Scan(context.Background(), rd, name, Auto, p, func(e Eligible) error {
			if !e.Valid() {
				t.Fatal("yielded an Eligible that is not Valid")
			}
			if yielded[e.Input()] {
				t.Fatal("an identifier was yielded twice")
			}
			yielded[e.Input()] = true
			return nil
		}, func(e *RecordError) {
			invalid++
			if e.Line < 1 || e.Line <= last {
				t.Fatalf("invalid record at line %d after line %d", e.Line, last)
			}
			last = e.Line
		})
		if s.Records != s.EligibleRecords+s.Excluded.Total() {
			t.Fatalf("counts do not add up: %+v", s)
		}
		if s.Excluded.Invalid != invalid {
			t.Fatalf("%d invalid records reported, %d counted", invalid, s.Excluded.Invalid)
		}
		if int64(len(yielded)) != s.EligibleIdentifiers.Email+s.EligibleIdentifiers.Phone {
			t.Fatalf("%d identifiers yielded, %+v counted", len(yielded), s.EligibleIdentifiers)
		}
		return s, yielded, err
	}
	s1, y1, err1 := scan(bytes.NewReader(data), false)
	s2, y2, err2 := scan(bytes.NewReader(data), true)
	if s1 != s2 || len(y1) != len(y2) || (err1 == nil) != (err2 == nil) {
		t.Fatalf("reading one byte at a time changed the result:\n%+v, %v\n%+v, %v", s1, err1, s2, err2)
	}
	for in := range y1 {
		if !y2[in] {
			t.Fatal("reading one byte at a time changed the eligible set")
		}
	}
}

// oneByteSeeker reads one byte at a time.
type oneByteSeeker struct{ *bytes.Reader }

func (o oneByteSeeker) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.Reader.Read(p)
}
