// Command plot draws bench/README.md's figure from `go test -bench` output:
// time per identifier against the number of identifiers, one line per
// metric (psimatch, its floor, the hashed baseline).
//
//	go test -bench 'PSI/ristretto255/session' ./bench/ | tee results.txt
//	(cd bench/plot && go run . -in ../../results.txt -out ../per-identifier.png)
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

var sizeRE = regexp.MustCompile(`/n=(\d+)`)

// series maps a metric unit to its label in the legend.
var series = []struct{ unit, label string }{
	{"ns/id", "psimatch (count mode, both sides)"},
	{"floor-ns/id", "floor: circl group operations"},
	{"hashed-ns/id", "hashed matching (SHA-256 + map)"},
}

func main() {
	in := flag.String("in", "-", "`FILE` of go test -bench output (- for standard input)")
	out := flag.String("out", "per-identifier.png", "the PNG `FILE` to write")
	match := flag.String("match", `PSI/ristretto255/session/count/`, "`REGEXP` selecting the benchmark lines")
	flag.Parse()
	if err := run(*in, *out, *match); err != nil {
		fmt.Fprintln(os.Stderr, "plot: error:", err)
		os.Exit(1)
	}
}

func run(in, out, match string) error {
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	sel, err := regexp.Compile(match)
	if err != nil {
		return err
	}
	// points[unit][n] collects every value seen (several -count runs); the
	// median is plotted.
	points := map[string]map[float64][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !sel.MatchString(fields[0]) {
			continue
		}
		m := sizeRE.FindStringSubmatch(fields[0])
		if m == nil {
			continue
		}
		n, _ := strconv.ParseFloat(m[1], 64)
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			unit := fields[i+1]
			if points[unit] == nil {
				points[unit] = map[float64][]float64{}
			}
			points[unit][n] = append(points[unit][n], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = "Time per advertiser identifier (2 cores)"
	p.X.Label.Text = "identifiers in the session"
	p.Y.Label.Text = "µs per identifier (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	// The legend sits in the empty band between the cryptographic lines
	// (around 100 µs) and the hashed baseline (below 1 µs).
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(110)
	drawn := 0
	for i, s := range series {
		byN := points[s.unit]
		if len(byN) == 0 {
			continue
		}
		var xys plotter.XYs
		for n, vs := range byN {
			sort.Float64s(vs)
			xys = append(xys, plotter.XY{X: n, Y: vs[len(vs)/2] / 1000})
		}
		sort.Slice(xys, func(a, b int) bool { return xys[a].X < xys[b].X })
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		if s.unit == "floor-ns/id" {
			c = color.Gray{Y: 90}
		}
		line.Color, pts.Color = c, c
		line.Width = vg.Points(1.5)
		p.Add(line, pts)
		p.Legend.Add(s.label, line, pts)
		drawn++
	}
	if drawn == 0 {
		return fmt.Errorf("no line of %s matched %q with /n= in its name", in, match)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, out)
}
