package customers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/psi/ident"
)

// phoneList writes a list of rows: emails and phones (some repeated, some
// invalid, some hashed, some blank) in many batches' worth of rows.
func phoneList(rows int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("id,email,phone,email_sha256\n")
	for i := range rows {
		email, phone, hashed := "", "", ""
		switch n := r.IntN(rows / 3); r.IntN(6) {
		case 0: // repeated (a third as many distinct values as rows)
			email = fmt.Sprintf("user%d@example.com", n)
		case 1:
			sum := sha256.Sum256([]byte(fmt.Sprintf("user%d@example.com", n)))
			hashed = hex.EncodeToString(sum[:])
		case 2:
			email = fmt.Sprintf("broken%d", n) // invalid
		case 3:
			phone = "555" // invalid
		case 4: // blank
		default:
			phone = fmt.Sprintf("+1 415 555 %04d", n%10000)
		}
		if r.IntN(3) == 0 {
			phone = fmt.Sprintf("(415) 555-%04d", r.IntN(10000)) // national: valid with the region
		}
		fmt.Fprintf(&b, "%d,%s,%s,%s\n", i, email, phone, hashed)
	}
	return b.String()
}

// reference reads a list the plain way: one row at a time, one core, a map
// to de-duplicate. Read must give exactly what it gives.
func reference(t *testing.T, text string, opt Options) (rows int, inputs ident.PerKind[[]ident.Input], rowIDs ident.PerKind[[]int32], invalid []string) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	cols := []column{{2, "phone", ident.Phone, false}, {1, "email", ident.Email, false}, {3, "email_sha256", ident.Email, true}}
	seen := ident.PerKind[map[ident.Input]int32]{Email: map[ident.Input]int32{}, Phone: map[ident.Input]int32{}}
	for i, line := range lines[1:] {
		rec := strings.Split(line, ",")
		rows++
		for _, k := range ident.Kinds {
			*rowIDs.At(k) = append(rowIDs.Get(k), -1)
		}
		// Read takes the columns in header order, each once per kind.
		for _, c := range []column{cols[1], cols[0], cols[2]} {
			v := rec[c.index]
			if v == "" {
				continue
			}
			in, err := parse(c, v, opt.DefaultRegion)
			if err != nil {
				invalid = append(invalid, fmt.Sprintf("line %d %s %v", i+2, c.name, err))
				continue
			}
			id, ok := seen.Get(c.kind)[in]
			if !ok {
				id = int32(len(inputs.Get(c.kind)))
				seen.Get(c.kind)[in] = id
				*inputs.At(c.kind) = append(inputs.Get(c.kind), in)
			}
			rowIDs.Get(c.kind)[i] = id
		}
	}
	return
}

// TestParallelReadIsSequential: with the normalization on every core, Read
// gives the same inputs in the same first-seen order, the same row index,
// counts, and invalid identifiers in file order with their lines, on one
// core and on several.
func TestParallelReadIsSequential(t *testing.T) {
	text := phoneList(3*batchCells+77, 7) // several batches and a partial one
	opt := Options{Name: "c.csv", DefaultRegion: "US"}
	rows, inputs, rowIDs, invalid := reference(t, text, opt)
	for _, procs := range []int{1, 2, 5} {
		t.Run(fmt.Sprint("GOMAXPROCS=", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			var got []string
			l, err := Read(strings.NewReader(text), opt, func(e *LineError) {
				got = append(got, fmt.Sprintf("line %d %s %v", e.Line, e.Column, e.Err))
			})
			if err != nil {
				t.Fatal(err)
			}
			if l.Rows != rows || !l.HasRowIndex() {
				t.Fatalf("rows %d, want %d", l.Rows, rows)
			}
			for _, k := range ident.Kinds {
				if fmt.Sprint(l.Inputs.Get(k)) != fmt.Sprint(inputs.Get(k)) {
					t.Fatalf("%v: %d inputs, want %d, or another order", k, len(l.Inputs.Get(k)), len(inputs.Get(k)))
				}
				for r := range rows {
					if l.RowInput(k, r) != int(rowIDs.Get(k)[r]) {
						t.Fatalf("%v: row %d: input %d, want %d", k, r, l.RowInput(k, r), rowIDs.Get(k)[r])
					}
				}
			}
			if strings.Join(got, "\n") != strings.Join(invalid, "\n") {
				t.Fatalf("invalid identifiers differ: got %d, want %d", len(got), len(invalid))
			}
			if l.Invalid.Email+l.Invalid.Phone != len(invalid) || len(invalid) == 0 {
				t.Fatalf("invalid counts %v, want %d in all", l.Invalid, len(invalid))
			}
		})
	}
}

// TestParallelReadErrorsKeepOrder: an error late in the file (a malformed
// line, too many rows) comes after every invalid identifier before it was
// reported, as on one core.
func TestParallelReadErrorsKeepOrder(t *testing.T) {
	text := phoneList(2*batchCells, 9)
	_, _, _, invalid := reference(t, text, Options{DefaultRegion: "US"})
	n := strings.Count(text, "\n") // the header and the rows
	for _, c := range []struct {
		text string
		opt  Options
		want string
	}{
		{text + "x,\"a\"b,,\n", Options{Name: "c.csv", DefaultRegion: "US"}, fmt.Sprintf("c.csv: line %d:", n+1)},
		{text + "x,a@b.co,,\n", Options{Name: "c.csv", DefaultRegion: "US", MaxRows: n - 1}, "more than"},
	} {
		var got []string
		_, err := Read(strings.NewReader(c.text), c.opt, func(e *LineError) {
			got = append(got, fmt.Sprintf("line %d %s %v", e.Line, e.Column, e.Err))
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("got %v, want %q", err, c.want)
		}
		if strings.Join(got, "\n") != strings.Join(invalid, "\n") {
			t.Fatalf("invalid identifiers before the error: %d, want %d", len(got), len(invalid))
		}
	}
}

// TestSkipRowIndex: a list read for counting keeps the same inputs without
// the per-row index.
func TestSkipRowIndex(t *testing.T) {
	text := phoneList(1000, 3)
	a, err := Read(strings.NewReader(text), Options{DefaultRegion: "US"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Read(strings.NewReader(text), Options{DefaultRegion: "US", SkipRowIndex: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.HasRowIndex() || b.HasRowIndex() || a.Rows != b.Rows || fmt.Sprint(a.Inputs) != fmt.Sprint(b.Inputs) || a.Invalid != b.Invalid {
		t.Fatal("SkipRowIndex changed the list")
	}
}

// BenchmarkReadParallel reads a phone-heavy list (every row a phone number,
// a third of them also an email) on one core and then on two, interleaved,
// and reports the speed-up (x-speedup = one core's time ÷ two cores'; the
// target is ≥ 1.6 on an otherwise idle 2-core machine) and each one's time
// per row.
func BenchmarkReadParallel(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("email,phone\n")
	r := rand.New(rand.NewPCG(1, 2))
	const rows = 20000
	for i := range rows {
		email := ""
		if i%3 == 0 {
			email = fmt.Sprintf("user%d@example.com", r.IntN(1<<30))
		}
		fmt.Fprintf(&sb, "%s,+1 (415) 555-%04d ext. %d\n", email, r.IntN(10000), i)
	}
	text := sb.String()
	opt := Options{DefaultRegion: "US", SkipRowIndex: true}
	var elapsed [2]float64
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	b.ResetTimer()
	for range b.N {
		for p := range 2 {
			runtime.GOMAXPROCS(p + 1)
			t0 := time.Now()
			if _, err := Read(strings.NewReader(text), opt, nil); err != nil {
				b.Fatal(err)
			}
			elapsed[p] += time.Since(t0).Seconds()
		}
	}
	b.ReportMetric(elapsed[0]/elapsed[1], "x-speedup")
	b.ReportMetric(elapsed[0]*1e9/float64(b.N*rows), "ns/row-1core")
	b.ReportMetric(elapsed[1]*1e9/float64(b.N*rows), "ns/row-2cores")
}
