package inventory

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
)

// csvSource reads a CSV inventory with a header line.
type csvSource struct {
	name string
	lim  *capReader
	cr   *csv.Reader
	cols [numFields]int // column of each field, set from the header
	read bool           // the header has been read
	line int            // line of the last record read
}

func newCSVSource(r io.Reader, name string) *csvSource {
	lim := &capReader{r: r, max: maxRecordSize}
	cr := csv.NewReader(lim)
	cr.ReuseRecord = true
	// FieldsPerRecord is 0: every record must have as many fields as the
	// header, else Read returns ErrFieldCount (with the record).
	return &csvSource{name: name, lim: lim, cr: cr}
}

func (s *csvSource) Name() string { return s.name }

func (s *csvSource) Next(r *Raw) error {
	if !s.read {
		if err := s.readHeader(); err != nil {
			return err
		}
		s.read = true
	}
	s.lim.reset()
	rec, err := s.cr.Read()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil && !errors.Is(err, csv.ErrFieldCount) {
		return s.fatal(err)
	}
	s.line, _ = s.cr.FieldPos(0)
	*r = Raw{Line: int64(s.line)}
	if err != nil {
		r.Err = fmt.Errorf("has %d fields, the header has %d", len(rec), s.cr.FieldsPerRecord)
		return nil
	}
	r.UserID = rec[s.cols[fieldUserID]]
	r.Kind = rec[s.cols[fieldKind]]
	r.Value = rec[s.cols[fieldValue]]
	r.Purposes = []string{rec[s.cols[fieldPurposes]]}
	r.OptedOut = rec[s.cols[fieldOptedOut]]
	return nil
}

// readHeader reads the header and finds the column of each field.
func (s *csvSource) readHeader() error {
	header, err := s.cr.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file; the first line must be a header naming the columns %s", s.name, strings.Join(fieldNames[:], ", "))
	}
	if err != nil {
		return s.fatal(err)
	}
	s.line = 1
	for i := range s.cols {
		s.cols[i] = -1
	}
	found := make([]string, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark
		}
		h = strings.TrimSpace(h)
		found[i] = ident.ColumnLabel(i, h)
		f := fieldIndex(h)
		if f < 0 {
			continue // extra columns are ignored
		}
		if s.cols[f] >= 0 {
			return fmt.Errorf("%s: line 1: column %s appears twice in the header", s.name, fieldNames[f])
		}
		s.cols[f] = i
	}
	var missing []string
	for f, c := range s.cols {
		if c < 0 {
			missing = append(missing, fieldNames[f])
		}
	}
	if missing != nil {
		return fmt.Errorf("%s: line 1: the header lacks the column(s) %s (found: %s); the first line must name the columns %s",
			s.name, strings.Join(missing, ", "), strings.Join(found, ", "), strings.Join(fieldNames[:], ", "))
	}
	return nil
}

// fatal turns an error that ends a CSV scan into one naming the position.
// A malformed quote ends the scan: after it, where records start and end is
// a guess.
func (s *csvSource) fatal(err error) error {
	var pe *csv.ParseError
	switch {
	case errors.Is(err, errRecordTooLong):
		return fmt.Errorf("%s: after line %d: a record is longer than %d bytes", s.name, s.line, maxRecordSize)
	case errors.As(err, &pe):
		// csv's own messages ("bare \" in non-quoted-field") hold no data.
		return fmt.Errorf("%s: line %d: malformed CSV: %v", s.name, pe.Line, pe.Err)
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

var errRecordTooLong = errors.New("inventory: record too long")

// capReader fails once more than max bytes have been read since the last
// reset. csv.Reader buffers its input, so the count is per record give or
// take a buffer.
type capReader struct {
	r      io.Reader
	n, max int
}

func (c *capReader) reset() { c.n = 0 }

func (c *capReader) Read(p []byte) (int, error) {
	if c.n >= c.max {
		return 0, errRecordTooLong
	}
	if len(p) > c.max-c.n {
		p = p[:c.max-c.n]
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
