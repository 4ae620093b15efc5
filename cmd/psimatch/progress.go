package main

import (
	"io"
	"os"
	"sync"

	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows one progress bar at a time on standard error, and only
// when standard error is a terminal and --quiet was not given.
type progress struct {
	w       io.Writer
	enabled bool
	mu      sync.Mutex
	step    string
	bar     *progressbar.ProgressBar
}

func newProgress(w io.Writer, quiet bool) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		p.enabled = true
	}
	return p
}

// set moves the bar of step to done of total (total < 0: unknown).
func (p *progress) set(step string, done, total int64) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.step != step || p.bar == nil {
		p.finishLocked()
		p.step = step
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(step),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionClearOnFinish(),
		)
	} else if total >= 0 && total != p.bar.GetMax64() {
		p.bar.ChangeMax64(total) // the total became known
	}
	p.bar.Set64(done)
}

// counter returns a function that adds n to the bar of step, for callbacks
// that report increments from several goroutines, and one that sets the
// step's total once it is known.
func (p *progress) counter(step string) (add func(n int), setTotal func(total int)) {
	if !p.enabled {
		return nil, nil
	}
	var mu sync.Mutex
	var done int64
	total := int64(-1)
	add = func(n int) {
		mu.Lock()
		done += int64(n)
		d, t := done, total
		mu.Unlock()
		p.set(step, d, t)
	}
	setTotal = func(n int) {
		mu.Lock()
		total = int64(n)
		d := done
		mu.Unlock()
		p.set(step, d, int64(n))
	}
	return add, setTotal
}

func (p *progress) finishLocked() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// done removes the bar.
func (p *progress) done() {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
}

// countingSource reports each inventory record read to a progress bar.
type countingSource struct {
	inventory.Source
	add func(n int)
}

func (s countingSource) Next(r *inventory.Raw) error {
	err := s.Source.Next(r)
	if err == nil {
		s.add(1)
	}
	return err
}

// withProgress wraps src so a terminal shows the records read.
func withProgress(src inventory.Source, p *progress) inventory.Source {
	if add, _ := p.counter("read inventory " + src.Name()); add != nil {
		return countingSource{src, add}
	}
	return src
}
