// Package customers reads an advertiser's customer list: a CSV file with a
// header, whose identifier columns (email, phone, email_sha256, phone_sha256,
// or the names the user gives) are found by name. It normalizes every
// identifier with psi/ident, deduplicates them per kind (a hashed value and
// its plaintext are one identifier), counts invalid ones by kind and reports
// them by line number, and remembers which rows hold which identifier so a
// members-mode match can be given per row.
//
// Errors and reports carry line numbers, column names and kinds, never a
// value: customer data is personal data.
package customers

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

// Options configures Read.
type Options struct {
	// Name names the input in errors, such as "customers.csv".
	Name string
	// DefaultRegion is the ISO 3166 region of phone numbers written without a
	// country code ("" for none: such numbers are invalid).
	DefaultRegion string
	// EmailColumn and PhoneColumn name the plaintext identifier columns;
	// empty means "email" and "phone". Hashed columns are always
	// "<kind>_sha256".
	EmailColumn, PhoneColumn string
	// MaxRows bounds the data rows read (0 for no bound).
	MaxRows int
}

// ErrNoIdentifierColumn is returned when the header names no identifier column.
var ErrNoIdentifierColumn = errors.New("customers: no identifier column")

// LineError is one invalid identifier: where it is and why, never what.
type LineError struct {
	Name   string // the input's name
	Line   int64  // 1-based line of the file (the header is line 1)
	Column string
	Kind   ident.Kind
	Err    error
}

func (e *LineError) Error() string {
	msg := strings.TrimPrefix(e.Err.Error(), "normalize: ")
	if errors.Is(e.Err, normalize.ErrPhoneNoCountryCode) {
		msg += "; pass --default-region"
	}
	return fmt.Sprintf("%s: line %d: column %s: %s", e.Name, e.Line, e.Column, msg)
}

func (e *LineError) Unwrap() error { return e.Err }

// List is a read customer list.
type List struct {
	// Rows is the number of data rows (lines after the header).
	Rows int
	// Inputs holds the distinct PRF inputs of each kind, in first-seen order.
	Inputs ident.PerKind[[]ident.Input]
	// Invalid counts invalid identifier cells by kind.
	Invalid ident.PerKind[int]
	// rowIDs.At(k)[row] is the index into Inputs.At(k) of the row's
	// identifier of kind k, or -1.
	rowIDs ident.PerKind[[]int32]
}

// Sent returns the number of distinct identifiers of kind k.
func (l *List) Sent(k ident.Kind) int { return len(l.Inputs.Get(k)) }

// RowInput returns the index into Inputs[k] of row's identifier of kind k
// (row is 0-based among data rows), or -1 if the row has none.
func (l *List) RowInput(k ident.Kind, row int) int { return int(l.rowIDs.Get(k)[row]) }

type column struct {
	index  int
	name   string
	kind   ident.Kind
	hashed bool
}

// Read reads a customer list. onInvalid, if not nil, is called for each
// invalid identifier; the rest of the file is read regardless. A malformed
// CSV line (unbalanced quotes) is reported through onInvalid as one invalid
// row and skipped.
func Read(r io.Reader, opt Options, onInvalid func(*LineError)) (*List, error) {
	if opt.Name == "" {
		opt.Name = "input"
	}
	emailCol, phoneCol := opt.EmailColumn, opt.PhoneColumn
	if emailCol == "" {
		emailCol = "email"
	}
	if phoneCol == "" {
		phoneCol = "phone"
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file: want a header line naming the columns", opt.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading the header: %w", opt.Name, err)
	}
	var cols []column
	found := make([]string, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		found[i] = ident.ColumnLabel(i, h) // a headerless file starts with a record: show no value
		switch strings.ToLower(h) {
		case strings.ToLower(emailCol):
			cols = append(cols, column{i, h, ident.Email, false})
		case strings.ToLower(phoneCol):
			cols = append(cols, column{i, h, ident.Phone, false})
		case "email_sha256":
			cols = append(cols, column{i, h, ident.Email, true})
		case "phone_sha256":
			cols = append(cols, column{i, h, ident.Phone, true})
		}
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w in %s: found columns %s; want %s, %s, email_sha256 or phone_sha256",
			ErrNoIdentifierColumn, opt.Name, strings.Join(found, ", "), emailCol, phoneCol)
	}
	l := &List{}
	seen := ident.PerKind[map[ident.Input]int32]{Email: map[ident.Input]int32{}, Phone: map[ident.Input]int32{}}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("%s: %w", opt.Name, err)
			}
			l.Rows++
			for _, k := range ident.Kinds {
				*l.rowIDs.At(k) = append(l.rowIDs.Get(k), -1)
			}
			if onInvalid != nil {
				onInvalid(&LineError{Name: opt.Name, Line: int64(pe.StartLine), Column: "*", Err: errors.New("malformed CSV line: " + pe.Err.Error())})
			}
			continue
		}
		if opt.MaxRows > 0 && l.Rows == opt.MaxRows {
			return nil, fmt.Errorf("%s: more than %d rows, the limit", opt.Name, opt.MaxRows)
		}
		l.Rows++
		for _, k := range ident.Kinds {
			*l.rowIDs.At(k) = append(l.rowIDs.Get(k), -1)
		}
		row := l.Rows - 1
		for _, c := range cols {
			if c.index >= len(rec) {
				continue
			}
			v := rec[c.index]
			if strings.TrimSpace(v) == "" {
				continue
			}
			in, err := parse(c, v, opt.DefaultRegion)
			if err != nil {
				*l.Invalid.At(c.kind)++
				if onInvalid != nil {
					onInvalid(&LineError{Name: opt.Name, Line: int64(line), Column: c.name, Kind: c.kind, Err: err})
				}
				continue
			}
			id, ok := seen.Get(c.kind)[in]
			if !ok {
				inputs := l.Inputs.At(c.kind)
				id = int32(len(*inputs))
				seen.Get(c.kind)[in] = id
				*inputs = append(*inputs, in)
			}
			l.rowIDs.Get(c.kind)[row] = id
		}
	}
	return l, nil
}

func parse(c column, v, region string) (ident.Input, error) {
	if c.hashed {
		d, err := normalize.Hashed(strings.TrimSpace(v))
		if err != nil {
			return ident.Input{}, err
		}
		return ident.FromDigest(c.kind, d), nil
	}
	n, err := normalize.Value(c.kind, v, region)
	if err != nil {
		return ident.Input{}, err
	}
	return ident.FromNormalized(c.kind, n), nil
}
