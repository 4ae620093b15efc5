package normalize

import (
	"fmt"
	"io"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
)

// benchValues are realistic inputs: mixed case, spaces, gmail rules,
// national and international numbers.
var benchValues = map[ident.Kind][]struct{ v, region string }{
	ident.Email: {
		{"Alice.Smith+promo@GMAIL.com", ""}, {" Bob.Jones@Example.ORG ", ""},
		{"carol+list@example.net", ""}, {"jÖrg.müller@beispiel.de", ""},
	},
	ident.Phone: {
		{"+1 (415) 555-0132", ""}, {"020 7946 0018", "GB"},
		{"07700 900123", "GB"}, {"+33 1 23 45 67 89", "GB"},
	},
}

// BenchmarkNormalize measures one normalization on one core, in
// normalizations per second (norm/s).
func BenchmarkNormalize(b *testing.B) {
	for _, k := range ident.Kinds {
		b.Run(k.String(), func(b *testing.B) {
			vals := benchValues[k]
			i := 0
			for b.Loop() {
				v := vals[i%len(vals)]
				if _, err := Value(k, v.v, v.region); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "norm/s")
		})
	}
}

// BenchmarkLines measures the streaming path on every core, hashing
// included, in lines per second.
func BenchmarkLines(b *testing.B) {
	for _, k := range ident.Kinds {
		for _, hash := range []bool{false, true} {
			b.Run(fmt.Sprintf("%v/hash=%v", k, hash), func(b *testing.B) {
				const lines = 20000
				for b.Loop() {
					src := &synthLines{n: lines, line: func(i int) string { return benchValues[k][i%len(benchValues[k])].v }}
					st, err := Lines(io.Discard, src, LineOptions{Kind: k, DefaultRegion: "GB", Hash: hash})
					if err != nil || st.Invalid != 0 {
						b.Fatal(st, err)
					}
				}
				b.ReportMetric(float64(b.N)*lines/b.Elapsed().Seconds(), "lines/s")
			})
		}
	}
}
