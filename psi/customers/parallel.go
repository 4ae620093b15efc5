package customers

import (
	"encoding/csv"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
)

// Normalization (≈ 16 µs a phone number) runs on every core: the reading
// goroutine cuts the records into batches of identifier cells, GOMAXPROCS
// workers normalize and hash them, and Read merges the batches in file
// order, so de-duplication, first-seen order, counts and the order and line
// numbers of invalid identifiers are what a one-core read gives.
const (
	batchCells = 512  // identifier cells per batch
	batchRows  = 4096 // rows per batch, for rows without identifiers
)

// cell is one non-blank identifier cell of a batch.
type cell struct {
	row int32 // within the batch
	col int32 // index into the columns read
	v   string
}

// batch is a run of consecutive data rows on its way through the workers.
type batch struct {
	lines []int64  // each row's 1-based line
	ids   []string // each row's IDColumn value (with one)
	cells []cell
	out   []ident.Input
	errs  []error
	done  chan struct{}
}

// readRows reads the data rows of cr into l.
func readRows(cr *csv.Reader, l *List, cols []column, idCol int, opt Options, malformed func(error) error, onInvalid func(*LineError)) error {
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *batch, 2*workers)
	order := make(chan *batch, 2*workers)
	var readErr error
	go func() { // read and cut into batches, in file order
		defer close(work)
		defer close(order)
		rows := 0
		b := &batch{done: make(chan struct{})}
		send := func() {
			order <- b
			work <- b
			b = &batch{done: make(chan struct{})}
		}
		defer func() {
			if len(b.lines) > 0 {
				send()
			}
		}()
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				return
			}
			if err != nil {
				readErr = malformed(err)
				return
			}
			line, _ := cr.FieldPos(0)
			if opt.MaxRows > 0 && rows == opt.MaxRows {
				readErr = fmt.Errorf("%w: %s: more than %d rows, the limit", ErrTooManyRows, opt.Name, opt.MaxRows)
				return
			}
			rows++
			row := int32(len(b.lines))
			b.lines = append(b.lines, int64(line))
			if idCol >= 0 {
				id := ""
				if idCol < len(rec) {
					id = strings.Clone(rec[idCol])
				}
				b.ids = append(b.ids, id)
			}
			for ci, c := range cols {
				// The fields of a record are substrings of one string
				// that encoding/csv allocates per record (ReuseRecord
				// reuses only the slice), so they outlive the next Read.
				if c.index < len(rec) && strings.TrimSpace(rec[c.index]) != "" {
					b.cells = append(b.cells, cell{row: row, col: int32(ci), v: rec[c.index]})
				}
			}
			if len(b.cells) >= batchCells || len(b.lines) >= batchRows {
				send()
			}
		}
	}()
	for range workers {
		go func() {
			for b := range work {
				b.out = make([]ident.Input, len(b.cells))
				b.errs = make([]error, len(b.cells))
				for i, c := range b.cells {
					b.out[i], b.errs[i] = parse(cols[c.col], c.v, opt.DefaultRegion)
				}
				close(b.done)
			}
		}()
	}

	var seen ident.PerKind[*index]
	for _, k := range ident.Kinds {
		*seen.At(k) = newIndex()
	}
	for b := range order {
		<-b.done
		base := l.Rows
		l.Rows += len(b.lines)
		if !opt.SkipRowIndex {
			for _, k := range ident.Kinds {
				ids := l.rowIDs.At(k)
				for range b.lines {
					*ids = append(*ids, -1)
				}
			}
		}
		if idCol >= 0 {
			l.ids = append(l.ids, b.ids...)
		}
		for i, c := range b.cells {
			col := cols[c.col]
			if err := b.errs[i]; err != nil {
				*l.Invalid.At(col.kind)++
				if onInvalid != nil {
					onInvalid(&LineError{Name: opt.Name, Line: b.lines[c.row], Column: col.name, Kind: col.kind, Err: err})
				}
				continue
			}
			id := seen.Get(col.kind).add(l.Inputs.At(col.kind), b.out[i])
			if !opt.SkipRowIndex {
				l.rowIDs.Get(col.kind)[base+int(c.row)] = id
			}
		}
	}
	if readErr != nil {
		return readErr
	}
	// The list lives as long as the match: drop the append slack (up to a
	// quarter), now that the de-duplication tables are garbage.
	seen = ident.PerKind[*index]{}
	for _, k := range ident.Kinds {
		if in := l.Inputs.At(k); cap(*in)-len(*in) > len(*in)/16 {
			*in = append([]ident.Input(nil), *in...)
		}
	}
	return nil
}
