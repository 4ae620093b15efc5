package inventory

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

// genRecord is a generated inventory record together with what the test
// expects of it, worked out by the generator without the package's code.
type genRecord struct {
	user, kind, value string
	purposes          []string // as written, one or more ";"-lists
	optedOut          string   // as written
	jsonOptedOut      any      // the JSON form: a bool, a string or nil

	canon      string // the normalized value, when the value is valid
	valueValid bool   // kind and value are valid: canon is the value's normal form
	opted      bool   // opted_out reads true
	reason     Reason // what the policy must decide of the record on its own
}

// genInventory generates n records over a small pool of values, so that the
// same value is held by several users under several purposes, some opted
// out, and some records are invalid.
func genInventory(rng *rand.Rand, n int) []genRecord {
	type value struct{ kind, canon string }
	var pool []value
	for i := range 500 {
		if i%5 == 0 { // gmail: written with dots and +tags too
			pool = append(pool, value{"email", fmt.Sprintf("user%d@gmail.com", i)})
		} else {
			pool = append(pool, value{"email", fmt.Sprintf("user%d@example%d.com", i, i%4)})
		}
		pool = append(pool, value{"phone", fmt.Sprintf("+1415555%04d", 100+i)})
	}
	userOptedOut := make([]bool, 300)
	for i := range userOptedOut {
		userOptedOut[i] = rng.IntN(5) == 0
	}
	recs := make([]genRecord, n)
	for i := range recs {
		r := &recs[i]
		u := rng.IntN(len(userOptedOut))
		r.user = fmt.Sprintf("user-%d", u)
		v := pool[rng.IntN(len(pool))]
		r.kind, r.canon = v.kind, v.canon
		r.value = writeValue(rng, v.kind, v.canon)
		invalid := false

		// Purposes: a random subset, shuffled, in random case and spacing.
		var names []string
		var adv, acc, sec bool
		if rng.IntN(2) == 0 {
			names, adv = append(names, "advertising"), true
		}
		if rng.IntN(2) == 0 {
			names, acc = append(names, "account"), true
		}
		if rng.IntN(2) == 0 {
			names, sec = append(names, "security"), true
		}
		if rng.IntN(30) == 0 {
			names, invalid = append(names, "marketing"), true
		}
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		for j, name := range names {
			switch rng.IntN(4) {
			case 0:
				names[j] = strings.ToUpper(name)
			case 1:
				names[j] = " " + name
			}
		}
		sep := [...]string{";", "; ", ";;"}[rng.IntN(3)]
		r.purposes = []string{strings.Join(names, sep)}
		if len(names) > 1 && rng.IntN(3) == 0 { // as a JSON array
			r.purposes = names
		}

		// Opted out: mostly the user's setting, written in several ways.
		opted := userOptedOut[u]
		if rng.IntN(40) == 0 {
			opted = !opted
		}
		switch {
		case rng.IntN(40) == 0:
			r.optedOut, r.jsonOptedOut, invalid = "yes", "yes", true
		case opted:
			r.optedOut = [...]string{"true", "TRUE", "True"}[rng.IntN(3)]
			r.jsonOptedOut = any(true)
			if rng.IntN(2) == 0 {
				r.jsonOptedOut = r.optedOut
			}
		default:
			r.optedOut = [...]string{"false", "", "False"}[rng.IntN(3)]
			r.jsonOptedOut = any(false)
			if rng.IntN(2) == 0 {
				r.jsonOptedOut = r.optedOut
			}
		}

		// A few invalid kinds and values.
		switch rng.IntN(50) {
		case 0:
			r.kind, invalid = "fax", true
		case 1:
			r.value, invalid = map[string]string{"email": "user@nodot", "phone": "12"}[r.kind], true
		}

		r.valueValid = r.kind != "fax" && !(r.value == "user@nodot" || r.value == "12")
		r.opted = opted && r.optedOut != "yes"
		switch {
		case invalid:
			r.reason = Invalid
		case sec && !adv && !acc:
			r.reason = SecurityOnly
		case !adv:
			r.reason = NoAdvertisingPurpose
		case opted:
			r.reason = OptedOut
		default:
			r.reason = Included
		}
	}
	return recs
}

// writeValue writes a canonical value in one of the forms that normalize to
// it (with the default region US).
func writeValue(rng *rand.Rand, kind, canon string) string {
	if kind == "email" {
		if local, ok := strings.CutSuffix(canon, "@gmail.com"); ok && rng.IntN(2) == 0 {
			// An alias: a dot inside the local part and a +tag.
			return local[:2] + "." + local[2:] + "+2fa@GMAIL.com"
		}
		switch rng.IntN(4) {
		case 0:
			return strings.ToUpper(canon)
		case 1:
			return " " + canon + " "
		case 2:
			return strings.ToUpper(canon[:1]) + canon[1:]
		}
		return canon
	}
	d := canon[2:] // ten digits
	if rng.IntN(6) == 0 {
		return fmt.Sprintf("+1 %s %s %s ext %d", d[:3], d[3:6], d[6:], rng.IntN(100))
	}
	switch rng.IntN(4) {
	case 0:
		return fmt.Sprintf("+1 (%s) %s-%s", d[:3], d[3:6], d[6:])
	case 1:
		return fmt.Sprintf("+1.%s.%s.%s", d[:3], d[3:6], d[6:])
	case 2:
		return fmt.Sprintf("(%s) %s-%s", d[:3], d[3:6], d[6:]) // national: needs the region
	}
	return canon
}

// expected returns the summary and the eligible set the policy must give:
// a naive, in-memory implementation of deny wins over the generator's own
// decisions, written without the package's code.
func expected(recs []genRecord) (Summary, map[ident.Input]bool) {
	optedUsers := make(map[string]bool)
	for _, r := range recs {
		if r.opted {
			optedUsers[r.user] = true
		}
	}
	type deny struct{ sec, opt, inv bool }
	denied := make(map[string]*deny) // by kind and normal form
	for _, r := range recs {
		if !r.valueValid {
			continue
		}
		key := r.kind + " " + r.canon
		d := denied[key]
		if d == nil {
			d = &deny{}
			denied[key] = d
		}
		d.sec = d.sec || r.reason == SecurityOnly
		d.opt = d.opt || r.opted || optedUsers[r.user]
		d.inv = d.inv || r.reason == Invalid
	}
	var s Summary
	set := make(map[ident.Input]bool)
	for _, r := range recs {
		s.Records++
		reason := r.reason
		if reason == Included {
			d := denied[r.kind+" "+r.canon]
			switch {
			case optedUsers[r.user]:
				reason = UserOptedOut
			case d.sec:
				reason = ValueSecurityOnly
			case d.opt:
				reason = ValueOptedOut
			case d.inv:
				reason = ValueInvalid
			}
		}
		switch reason {
		case Invalid:
			s.Excluded.Invalid++
		case SecurityOnly:
			s.Excluded.SecurityOnly++
		case NoAdvertisingPurpose:
			s.Excluded.NoAdvertisingPurpose++
		case OptedOut:
			s.Excluded.OptedOut++
		case UserOptedOut:
			s.Excluded.UserOptedOut++
		case ValueSecurityOnly:
			s.Excluded.ValueSecurityOnly++
		case ValueOptedOut:
			s.Excluded.ValueOptedOut++
		case ValueInvalid:
			s.Excluded.ValueInvalid++
		case Included:
			s.EligibleRecords++
			k, _ := ident.ParseKind(r.kind)
			in := ident.FromNormalized(k, r.canon)
			if !set[in] {
				set[in] = true
				if k == ident.Email {
					s.EligibleIdentifiers.Email++
				} else {
					s.EligibleIdentifiers.Phone++
				}
			}
		}
	}
	return s, set
}

// writeCSV writes recs as CSV with the columns in a random order and an
// extra column.
func writeCSV(rng *rand.Rand, recs []genRecord) []byte {
	cols := []string{"user_id", "kind", "value", "purposes", "opted_out", "note"}
	rng.Shuffle(len(cols), func(i, j int) { cols[i], cols[j] = cols[j], cols[i] })
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(cols)
	row := make([]string, len(cols))
	for _, r := range recs {
		for i, c := range cols {
			switch c {
			case "user_id":
				row[i] = r.user
			case "kind":
				row[i] = r.kind
			case "value":
				row[i] = r.value
			case "purposes":
				row[i] = strings.Join(r.purposes, ";")
			case "opted_out":
				row[i] = r.optedOut
			case "note":
				row[i] = `a "quoted", note`
			}
		}
		w.Write(row)
	}
	w.Flush()
	return b.Bytes()
}

// writeJSONL writes recs as JSON Lines with the keys in a random order and
// an extra key.
func writeJSONL(rng *rand.Rand, recs []genRecord) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		var purposes any = r.purposes
		if len(r.purposes) == 1 {
			purposes = r.purposes[0]
		}
		fields := []struct {
			k string
			v any
		}{{"user_id", r.user}, {"kind", r.kind}, {"value", r.value}, {"purposes", purposes}, {"opted_out", r.jsonOptedOut}, {"note", map[string]any{"x": []int{1, 2}}}}
		rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
		b.WriteByte('{')
		for i, f := range fields {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(f.k)
			v, _ := json.Marshal(f.v)
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

// scanAll scans an inventory and returns its summary and what was yielded,
// failing the test if a value is yielded twice.
func scanAll(t *testing.T, r io.ReadSeeker, name string, p *Policy) (Summary, map[ident.Input]bool) {
	t.Helper()
	got := make(map[ident.Input]bool)
	s, err := Scan(context.Background(), r, name, Auto, p, func(e Eligible) error {
		if got[e.Input()] {
			t.Errorf("%s: an identifier was yielded twice", name)
		}
		got[e.Input()] = true
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("Scan(%s): %v", name, err)
	}
	return s, got
}

// TestPolicyProperty checks over random inventories, in several orders and
// in both formats, that the summary and the eligible set are exactly what a
// naive in-memory implementation of deny wins (expected) gives: values are
// shared across users and written differently (case, spacing, phone
// formats, gmail aliases, extensions), users opt out on some records only,
// and some records are invalid.
func TestPolicyProperty(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}, DefaultRegion: "US"})
	for seed := uint64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x9497))
		recs := genInventory(rng, 1500)
		for _, r := range recs { // the generator's claim about normalization
			if k, err := ident.ParseKind(r.kind); err == nil && r.reason != Invalid {
				if n, err := normalize.Value(k, r.value, "US"); err != nil || n != r.canon {
					t.Fatalf("generator: Normalize(%q) = %q, %v; want %q", r.value, n, err, r.canon)
				}
			}
		}
		wantSum, wantSet := expected(recs)
		if e := wantSum.Excluded; e.SecurityOnly == 0 || e.OptedOut == 0 || e.Invalid == 0 || wantSum.EligibleRecords == 0 ||
			e.UserOptedOut == 0 || e.ValueSecurityOnly == 0 || e.ValueOptedOut == 0 || e.ValueInvalid == 0 {
			t.Fatalf("seed %d: the generator missed a case: %+v", seed, wantSum)
		}

		t.Logf("seed %d: %+v", seed, wantSum)

		// Values that only excluded records hold must never be yielded.
		onlyExcluded := make(map[ident.Input]bool)
		for _, r := range recs {
			if k, err := ident.ParseKind(r.kind); err == nil && r.reason != Included && r.reason != Invalid {
				if in := ident.FromNormalized(k, r.canon); !wantSet[in] {
					onlyExcluded[in] = true
				}
			}
		}
		if len(onlyExcluded) == 0 {
			t.Fatalf("seed %d: no value is held only by excluded records", seed)
		}

		for order := range 3 {
			if order > 0 {
				rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
			}
			for _, f := range []struct {
				name string
				data []byte
			}{
				{"inventory.csv", writeCSV(rng, recs)},
				{"inventory.jsonl", writeJSONL(rng, recs)},
			} {
				name := fmt.Sprintf("seed %d, order %d, %s", seed, order, f.name)
				gotSum, gotSet := scanAll(t, bytes.NewReader(f.data), f.name, p)
				if gotSum != wantSum {
					t.Errorf("%s: summary\n got %+v\nwant %+v", name, gotSum, wantSum)
				}
				for in := range gotSet {
					if onlyExcluded[in] {
						t.Errorf("%s: a value held only by excluded records was yielded", name)
					} else if !wantSet[in] {
						t.Errorf("%s: a value no record makes eligible was yielded", name)
					}
				}
				for in := range wantSet {
					if !gotSet[in] {
						t.Errorf("%s: an eligible value was not yielded", name)
					}
				}
			}
		}
	}
}

// TestShortReads checks that both readers give the same result however the
// input is split into reads.
func TestShortReads(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}, DefaultRegion: "US"})
	rng := rand.New(rand.NewPCG(7, 7))
	recs := genInventory(rng, 400)
	wantSum, wantSet := expected(recs)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"inventory.csv", writeCSV(rng, recs)},
		{"inventory.ndjson", writeJSONL(rng, recs)},
	} {
		for _, rd := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{
			{"OneByteReader", iotest.OneByteReader},
			{"HalfReader", iotest.HalfReader},
			{"DataErrReader", iotest.DataErrReader},
		} {
			t.Run(f.name+"/"+rd.name, func(t *testing.T) {
				gotSum, gotSet := scanAll(t, &rewinder{data: f.data, wrap: rd.wrap}, f.name, p)
				if gotSum != wantSum || len(gotSet) != len(wantSet) {
					t.Errorf("summary\n got %+v\nwant %+v", gotSum, wantSum)
				}
			})
		}
	}
}

// rewinder reads data through wrap, from its start after each Seek.
type rewinder struct {
	data []byte
	wrap func(io.Reader) io.Reader
	r    io.Reader
}

func (w *rewinder) Seek(int64, int) (int64, error) {
	w.r = w.wrap(bytes.NewReader(w.data))
	return 0, nil
}

func (w *rewinder) Read(p []byte) (int, error) {
	if w.r == nil {
		w.Seek(0, io.SeekStart)
	}
	return w.r.Read(p)
}

// TestSecurityPhonesNeverMatch is the end-to-end property at the level of PRF
// inputs: an advertiser's list made of the platform's security-only phones
// (and some of its advertising phones) intersects the eligible set only in
// the advertising phones, even when other users hold the security phones
// under account or opted out.
func TestSecurityPhonesNeverMatch(t *testing.T) {
	var inv strings.Builder
	inv.WriteString("user_id,kind,value,purposes,opted_out\n")
	var advertiser []string
	wantMatch := make(map[string]bool)
	for i := range 50 {
		sec := fmt.Sprintf("+4420794600%02d", i)
		ads := fmt.Sprintf("+1415555%04d", 1000+i)
		fmt.Fprintf(&inv, "u%d,phone,%s,security,false\n", i, sec)
		fmt.Fprintf(&inv, "v%d,phone,%s,security;account,false\n", i, sec)
		fmt.Fprintf(&inv, "w%d,phone,%s,advertising;security,true\n", i, sec)
		fmt.Fprintf(&inv, "u%d,phone,%s,advertising,false\n", i, ads)
		advertiser = append(advertiser, sec)
		if i%2 == 0 {
			advertiser = append(advertiser, ads)
			wantMatch[ads] = true
		}
	}
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	sum, set := scanAll(t, strings.NewReader(inv.String()), "inventory.csv", p)
	if sum.Excluded.SecurityOnly != 50 || sum.EligibleIdentifiers.Phone != 50 {
		t.Fatalf("summary %+v", sum)
	}
	matched := 0
	for _, v := range advertiser {
		if set[ident.FromNormalized(ident.Phone, v)] {
			if !wantMatch[v] {
				t.Errorf("a security-only phone matched")
			}
			matched++
		}
	}
	if matched != len(wantMatch) {
		t.Errorf("matched %d phones, want %d", matched, len(wantMatch))
	}
}
