package normalize

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/psimatch/psimatch/psi/ident"
)

// synthLines is an io.Reader that makes up n lines, line(i) for i from 0, each
// followed by "\n", without holding more than one line.
type synthLines struct {
	n, i int
	line func(i int) string
	cur  string // rest of the current line, line break included
}

func (r *synthLines) Read(p []byte) (int, error) {
	total := 0
	for total < len(p) {
		if r.cur == "" {
			if r.i == r.n {
				if total == 0 {
					return 0, io.EOF
				}
				break
			}
			r.cur = r.line(r.i) + "\n"
			r.i++
		}
		c := copy(p[total:], r.cur)
		r.cur = r.cur[c:]
		total += c
	}
	return total, nil
}

type invalidLine struct {
	line   int64
	reason error
}

func normalizeString(t *testing.T, input string, opts LineOptions, wrap func(io.Reader) io.Reader) (string, []invalidLine) {
	t.Helper()
	var bad []invalidLine
	opts.Invalid = func(line int64, reason error) { bad = append(bad, invalidLine{line, reason}) }
	var out bytes.Buffer
	st, err := Lines(&out, wrap(strings.NewReader(input)), opts)
	if err != nil {
		t.Fatalf("Lines: %v", err)
	}
	if got := int64(strings.Count(out.String(), "\n")); st.Lines != got || st.Invalid != int64(len(bad)) {
		t.Fatalf("stats %+v, but %d output lines and %d invalid reported", st, got, len(bad))
	}
	return out.String(), bad
}

func TestLines(t *testing.T) {
	long := strings.Repeat("a", MaxLineLength+1) + "@b.co"
	edge := strings.Repeat(" ", MaxLineLength-len("a@b.co")) + "a@b.co" // exactly the limit
	tests := []struct {
		name, input string
		opts        LineOptions
		want        string
		bad         []invalidLine
	}{
		{name: "empty input", input: "", opts: LineOptions{Kind: ident.Email}, want: ""},
		{name: "one empty line", input: "\n", opts: LineOptions{Kind: ident.Email}, want: "\n",
			bad: []invalidLine{{1, ErrEmailEmpty}}},
		{name: "no final line break", input: "A@B.co\nx@y.org", opts: LineOptions{Kind: ident.Email}, want: "a@b.co\nx@y.org\n"},
		{name: "CRLF", input: "A@B.co\r\nx@y.org\r\n", opts: LineOptions{Kind: ident.Email}, want: "a@b.co\nx@y.org\n"},
		{name: "CRLF last line without LF", input: "A@B.co\r\nx@y.org\r", opts: LineOptions{Kind: ident.Email}, want: "a@b.co\nx@y.org\n"},
		{name: "only one CR stripped", input: "a@b.co\r\r\n", opts: LineOptions{Kind: ident.Email}, want: "a@b.co\n"},
		{name: "invalid lines keep their place",
			input: "Alice.Smith+promo@GMAIL.com\nnope\n\n x@y@z.com \n Bob.Jones@Example.ORG \n",
			opts:  LineOptions{Kind: ident.Email},
			want:  "alicesmith@gmail.com\n\n\n\nbob.jones@example.org\n",
			bad:   []invalidLine{{2, ErrEmailNoAt}, {3, ErrEmailEmpty}, {4, ErrEmailManyAt}}},
		{name: "hash", input: "Alice.Smith+promo@GMAIL.com\nnope\n", opts: LineOptions{Kind: ident.Email, Hash: true},
			want: sha256Hex("alicesmith@gmail.com") + "\n\n", bad: []invalidLine{{2, ErrEmailNoAt}}},
		{name: "phones with region", input: "+1 (415) 555-0132\n020 7946 0018\n1-800-FLOWERS\n",
			opts: LineOptions{Kind: ident.Phone, DefaultRegion: "GB"},
			want: "+14155550132\n+442079460018\n\n", bad: []invalidLine{{3, ErrPhoneLetters}}},
		{name: "phones without region", input: "+1 (415) 555-0132\n415-555-0132",
			opts: LineOptions{Kind: ident.Phone},
			want: "+14155550132\n\n", bad: []invalidLine{{2, ErrPhoneNoCountryCode}}},
		{name: "region ignored for email", input: "a@b.co\n", opts: LineOptions{Kind: ident.Email, DefaultRegion: "XX"}, want: "a@b.co\n"},
		{name: "line too long", input: "a@b.co\n" + long + "\nc@d.co\n" + long, opts: LineOptions{Kind: ident.Email},
			want: "a@b.co\n\nc@d.co\n\n", bad: []invalidLine{{2, ErrLineTooLong}, {4, ErrLineTooLong}}},
		{name: "line at the limit", input: edge + "\r\n" + edge + "\n" + edge, opts: LineOptions{Kind: ident.Email},
			want: "a@b.co\na@b.co\na@b.co\n"},
	}
	wraps := map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"onebyte":  iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"dataerr":  iotest.DataErrReader,
		"onlyread": func(r io.Reader) io.Reader { return struct{ io.Reader }{r} },
	}
	for _, tt := range tests {
		for wname, wrap := range wraps {
			for _, workers := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/workers=%d", tt.name, wname, workers), func(t *testing.T) {
					opts := tt.opts
					opts.Workers = workers
					got, bad := normalizeString(t, tt.input, opts, wrap)
					if got != tt.want {
						t.Errorf("output %q, want %q", trunc(got), trunc(tt.want))
					}
					if len(bad) != len(tt.bad) {
						t.Fatalf("invalid lines %v, want %v", bad, tt.bad)
					}
					for i := range bad {
						if bad[i].line != tt.bad[i].line || !errors.Is(bad[i].reason, tt.bad[i].reason) {
							t.Errorf("invalid line %d: %v, want line %d: %v", bad[i].line, bad[i].reason, tt.bad[i].line, tt.bad[i].reason)
						}
					}
				})
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestLinesOptions(t *testing.T) {
	if _, err := Lines(io.Discard, strings.NewReader(""), LineOptions{Kind: 7}); !errors.Is(err, ident.ErrUnknownKind) {
		t.Errorf("kind 7: %v", err)
	}
	if _, err := Lines(io.Discard, strings.NewReader(""), LineOptions{Kind: ident.Phone, DefaultRegion: "XX"}); !errors.Is(err, ErrPhoneRegion) {
		t.Errorf("region XX: %v", err)
	}
}

type failWriter struct{ after int }

var errWrite = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, errWrite
	}
	w.after--
	return len(p), nil
}

func TestLinesErrors(t *testing.T) {
	src := &synthLines{n: 100000, line: func(i int) string { return "a@b.co" }}
	_, err := Lines(&failWriter{after: 3}, src, LineOptions{Kind: ident.Email})
	if !errors.Is(err, errWrite) {
		t.Errorf("write error: got %v", err)
	}
	errRead := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("a@b.co\nc@d.co\npartial"), iotest.ErrReader(errRead))
	var out bytes.Buffer
	st, err := Lines(&out, r, LineOptions{Kind: ident.Email})
	if !errors.Is(err, errRead) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("read error: got %v", err)
	}
	if out.String() != "a@b.co\nc@d.co\n" || st.Lines != 2 {
		t.Errorf("before the read error: %q, %+v", out.String(), st)
	}
}

// TestLinesConstantMemory streams 10 million made-up lines (1 million
// with -short) and checks that every one gives a line of output while the
// heap stays small, and that allocations per line are bounded.
func TestLinesConstantMemory(t *testing.T) {
	n := 10_000_000
	if testing.Short() {
		n = 1_000_000
	}
	line := func(i int) string {
		switch i % 4 {
		case 0:
			return " User.Name+tag@GMAIL.com "
		case 1:
			return "someone@example.org"
		case 2:
			return "not an email"
		}
		return "Another.Person@Example.CO.UK"
	}
	w := &countingWriter{}
	runtime.GC()
	st, err := Lines(w, &synthLines{n: n, line: line}, LineOptions{Kind: ident.Email})
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != int64(n) || w.lines != n || st.Invalid != int64(n/4) {
		t.Fatalf("%d lines in, %d out, stats %+v", n, w.lines, st)
	}
	const limit = 32 << 20
	if w.maxHeap > limit {
		t.Errorf("heap in use reached %d MiB while streaming, want under %d MiB", w.maxHeap>>20, limit>>20)
	}
	t.Logf("%d lines, heap in use at most %.1f MiB", n, float64(w.maxHeap)/(1<<20))

	const perRun = 10000
	allocs := testing.AllocsPerRun(5, func() {
		Lines(io.Discard, &synthLines{n: perRun, line: line}, LineOptions{Kind: ident.Email, Hash: true})
	})
	// One line costs the string of the line, the synthesizing reader's own
	// line, and the normalized value when it differs from the input.
	if perLine := allocs / perRun; perLine > 4 {
		t.Errorf("%.2f allocations per line, want at most 4", perLine)
	}
}

// countingWriter counts lines and samples the heap now and then.
type countingWriter struct {
	lines, writes int
	maxHeap       uint64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.lines += bytes.Count(p, []byte{'\n'})
	if w.writes%500 == 0 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.maxHeap = max(w.maxHeap, ms.HeapInuse)
	}
	w.writes++
	return len(p), nil
}
