package inventory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

// synthetic is an io.Reader of a CSV inventory of n records, made on the fly
// so that the test itself holds no inventory. Record i holds a distinct
// value (every 4th a phone); its purposes and opt-out cycle so that about
// half the records are eligible.
type synthetic struct {
	n, i int
	buf  []byte
}

var syntheticPurposes = [...]string{"advertising", "advertising;account", "security", "account", "advertising;security", "security;account"}

func (s *synthetic) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.i > s.n {
			return 0, io.EOF
		}
		if s.i == 0 {
			s.buf = append(s.buf, "user_id,kind,value,purposes,opted_out\n"...)
		} else {
			s.buf = s.line(s.buf, s.i)
		}
		s.i++
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:cap(s.buf)]
	}
	return n, nil
}

// Seek starts the inventory again (only Seek(0, io.SeekStart) is used).
func (s *synthetic) Seek(int64, int) (int64, error) {
	s.i, s.buf = 0, s.buf[:0]
	return 0, nil
}

func (s *synthetic) line(b []byte, i int) []byte {
	b = append(b, 'u')
	b = strconv.AppendInt(b, int64(i), 10)
	if i%4 == 0 {
		b = append(b, ",phone,+1"...)
		b = strconv.AppendInt(b, 2000000000+int64(i), 10)
	} else {
		b = append(b, ",email,user"...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ".with-a-longer-local-part@example.com"...)
	}
	b = append(b, ',')
	b = append(b, syntheticPurposes[i%len(syntheticPurposes)]...)
	if i%7 == 0 {
		b = append(b, ",true\n"...)
	} else {
		b = append(b, ",false\n"...)
	}
	return b
}

// TestStreamingMemory scans a synthetic inventory of a million records (ten
// million with PSIMATCH_LARGE=1, N with PSIMATCH_LARGE=N) and checks that the live heap stays within
// the bound Check documents: a fixed-size key per distinct value and per
// opted-out user, never the strings. Run with a fake normalizer: this test is about memory, and phone
// parsing would make it slow.
func TestStreamingMemory(t *testing.T) {
	n := 1_000_000
	if v, _ := strconv.Atoi(os.Getenv("PSIMATCH_LARGE")); v > 1 {
		n = v // PSIMATCH_LARGE=4000000: that many records
	} else if v == 1 {
		n = 10_000_000
	} else if testing.Short() {
		n = 100_000
	}
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	p.normalize = fakeNormalize

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var yielded, peak uint64
	sample := func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base && ms.HeapAlloc-base > peak {
			peak = ms.HeapAlloc - base
		}
	}
	start := time.Now()
	sum, err := Scan(context.Background(), &synthetic{n: n}, "synthetic.csv", Auto, p, func(Eligible) error {
		yielded++
		if yielded%(uint64(n)/8) == 0 {
			sample()
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	// Work out the expected counts from the cycle.
	var want Summary
	for i := 1; i <= n; i++ {
		want.Records++
		purposes := syntheticPurposes[i%len(syntheticPurposes)]
		switch {
		case purposes == "security":
			want.Excluded.SecurityOnly++
		case purposes == "account" || purposes == "security;account":
			want.Excluded.NoAdvertisingPurpose++
		case i%7 == 0:
			want.Excluded.OptedOut++
		default:
			want.EligibleRecords++
			if i%4 == 0 {
				want.EligibleIdentifiers.Phone++
			} else {
				want.EligibleIdentifiers.Email++
			}
		}
	}
	if sum != want {
		t.Errorf("summary\n got %+v\nwant %+v", sum, want)
	}

	// Run keeps a 16-byte key and 8 bytes of state per distinct value that
	// some record allows or denies, and a 16-byte key per user who opted
	// out, in maps: with the maps' overhead and growth, about 48 bytes per
	// entry measured; allow 64. Keeping the strings (a 48-byte allocation for
	// the value plus a 16-byte header) would exceed it.
	var entries uint64
	for i := 1; i <= n; i++ {
		purposes := syntheticPurposes[i%len(syntheticPurposes)]
		if i%7 == 0 {
			entries++ // an opted-out user
		}
		if purposes != "account" && purposes != "security;account" || i%7 == 0 {
			entries++ // a value with a decision
		}
	}
	bound := 64*entries + 4<<20
	t.Logf("%d records in %v (%.0f/s); %d distinct eligible; %d values and users kept; peak live heap %.1f MiB (%.1f bytes/entry, %.1f bytes/record), bound %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), yielded, entries,
		float64(peak)/(1<<20), float64(peak)/float64(entries), float64(peak)/float64(n), float64(bound)/(1<<20))
	if peak > bound {
		t.Errorf("peak live heap %d bytes exceeds %d", peak, bound)
	}
}

// fakeNormalize stands in for normalize.Value where only the policy and the
// streaming are under test.
func fakeNormalize(_ ident.Kind, value, _ string) (string, error) {
	if value == "" {
		return "", fmt.Errorf("empty")
	}
	return value, nil
}

// BenchmarkScan measures Scan on the synthetic inventory with the real
// normalizer (every fourth record a phone number); b.N counts records.
func BenchmarkScan(b *testing.B) {
	p := mustPolicy(b, Config{Normalizer: normalize.Rules{}})
	b.Run("inventory/scan/csv", func(b *testing.B) {
		b.ReportAllocs()
		if _, err := Scan(context.Background(), &synthetic{n: b.N}, "synthetic.csv", Auto, p, func(Eligible) error { return nil }, nil); err != nil {
			b.Fatal(err)
		}
	})
}

// phoneHeavy is a CSV inventory of n records, all phone numbers written with
// spaces and parentheses (the costly case of normalization), made on the fly.
func phoneHeavy(n int) *bytes.Reader {
	var b bytes.Buffer
	b.WriteString("user_id,kind,value,purposes,opted_out\n")
	for i := range n {
		d := 2000000000 + i
		fmt.Fprintf(&b, "u%d,phone,+1 (%03d) %03d-%04d,advertising,%v\n", i, d/10000000%1000, d/10000%1000, d%10000, i%50 == 0)
	}
	return bytes.NewReader(b.Bytes())
}

// BenchmarkCheckParallel measures Check (both passes) on a phone-heavy
// inventory with GOMAXPROCS 1 and then 2 in the same run, and reports the
// speed-up of two cores over one (issue 18 asks for at least 1.6).
func BenchmarkCheckParallel(b *testing.B) {
	p := mustPolicy(b, Config{Normalizer: normalize.Rules{}})
	const n = 20_000
	inv := phoneHeavy(n)
	run := func(procs int) time.Duration {
		prev := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(prev)
		start := time.Now()
		res, err := Check(context.Background(), ReaderOpener(inv, "phones.csv", CSV), p, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Summary.EligibleIdentifiers.Phone != n-n/50 {
			b.Fatalf("%+v", res.Summary)
		}
		return time.Since(start)
	}
	var one, two time.Duration
	for b.Loop() {
		one += run(1)
		two += run(2)
	}
	b.ReportMetric(float64(one)/float64(two), "speedup_2_over_1")
	b.ReportMetric(float64(two.Nanoseconds())/float64(b.N*n), "ns/record_2procs")
}
