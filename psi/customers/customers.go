// Package customers reads an advertiser's customer list: a CSV file with a
// header, as people have them. The delimiter (comma, semicolon, tab or
// vertical bar) is detected from the header line; a UTF-8 byte order mark is
// skipped before quoting is parsed; identifier columns are found by name,
// case- and punctuation-insensitively, among synonyms (email, e-mail, email
// address, mail; phone, phone number, mobile, cell, telephone, tel; and the
// hashed email_sha256 and phone_sha256), or by the names the user gives. It
// normalizes every identifier with psi/normalize, deduplicates them per kind
// (a hashed value and its plaintext are one identifier), counts invalid ones
// by kind and reports them by line number, and remembers which rows hold
// which identifier so a members-mode match can be given per row.
//
// Errors and reports carry line numbers, column names and kinds, never a
// value: customer data is personal data.
package customers

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

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
	// empty means any header that is a synonym of "email" or "phone". A
	// named column must exist. Names are compared ignoring case and
	// everything but letters and digits. Hashed columns are always
	// "<kind>_sha256".
	EmailColumn, PhoneColumn string
	// IDColumn names a column whose value is kept for each row (RowID), so
	// that matched rows can be written with the advertiser's own key. It
	// must exist when given.
	IDColumn string
	// MaxRows bounds the data rows read (0 for no bound).
	MaxRows int
	// SkipRowIndex drops which row holds which identifier (8 bytes a row):
	// a count or estimate match never needs it. RowInput must not be called
	// on such a list (HasRowIndex says).
	SkipRowIndex bool
}

var (
	// ErrNoIdentifierColumn is returned when the header names no identifier column.
	ErrNoIdentifierColumn = errors.New("customers: no identifier column")
	// ErrColumnNotFound is returned when a column named in Options is not in the header.
	ErrColumnNotFound = errors.New("customers: no such column")
	// ErrIDIsIdentifier is returned when Options.IDColumn names an email or
	// phone column: --matches would then hold identifiers.
	ErrIDIsIdentifier = errors.New("customers: the id column is an identifier column")
	// ErrMalformed is returned for a line that is not valid CSV (a stray or
	// unbalanced quote); the error names the line.
	ErrMalformed = errors.New("customers: malformed CSV")
	// ErrEmpty is returned for an input with no header line.
	ErrEmpty = errors.New("customers: empty file")
	// ErrTooManyRows is returned when the list has more rows than Options.MaxRows.
	ErrTooManyRows = errors.New("customers: too many rows")
)

// Synonyms are the header names (compared by HeaderKey) recognized for each
// plaintext identifier column when the user names none.
var Synonyms = ident.PerKind[[]string]{
	Email: []string{"email", "e-mail", "email address", "e-mail address", "mail", "email_address"},
	Phone: []string{"phone", "phone number", "mobile", "mobile number", "mobile phone", "cell", "cell phone", "telephone", "telephone number", "tel", "phone_number"},
}

// HeaderKey is the form in which header names are compared: lower case,
// letters and digits only ("E-Mail Address" and "email_address" are both
// "emailaddress").
func HeaderKey(h string) string {
	var b strings.Builder
	for _, r := range h {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// Delimiters are the field separators Read detects, in order of preference
// when the header line has as many of several.
const Delimiters = ",;\t|"

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
	// Rows is the number of data rows (records after the header).
	Rows int
	// Inputs holds the distinct PRF inputs of each kind, in first-seen order.
	Inputs ident.PerKind[[]ident.Input]
	// Invalid counts invalid identifier cells by kind.
	Invalid ident.PerKind[int]
	// Delimiter is the field separator that was detected.
	Delimiter rune
	// Columns are the header names read as identifier columns, as written.
	Columns []string
	// IDColumn is the header of the Options.IDColumn column as written, or "".
	IDColumn string
	// rowIDs.At(k)[row] is the index into Inputs.At(k) of the row's
	// identifier of kind k, or -1.
	rowIDs ident.PerKind[[]int32]
	// ids[row] is the row's IDColumn value (nil without one).
	ids []string
}

// Sent returns the number of distinct identifiers of kind k.
func (l *List) Sent(k ident.Kind) int { return len(l.Inputs.Get(k)) }

// RowInput returns the index into Inputs[k] of row's identifier of kind k
// (row is 0-based among data rows), or -1 if the row has none.
func (l *List) RowInput(k ident.Kind, row int) int { return int(l.rowIDs.Get(k)[row]) }

// HasRowIndex reports whether the list knows which row holds which
// identifier (RowInput): it does unless Options.SkipRowIndex was set.
func (l *List) HasRowIndex() bool {
	return len(l.rowIDs.Email) == l.Rows && len(l.rowIDs.Phone) == l.Rows
}

// RowID returns the row's value of Options.IDColumn ("" without one).
func (l *List) RowID(row int) string {
	if l.ids == nil {
		return ""
	}
	return l.ids[row]
}

type column struct {
	index  int
	name   string
	kind   ident.Kind
	hashed bool
}

// label is how a header cell is shown in an error: as written when it looks
// like a column name, and "(column N)" when it could be a value (a file
// without a header starts with a record; identifiers contain '@' or digits:
// more than two digits, as in a vanity number such as 1-800-FLOWERS, hide
// the cell).
func label(i int, h string) string {
	digits := 0
	for _, r := range h {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case unicode.IsLetter(r) || strings.ContainsRune(" -_.#()/", r):
		default:
			return fmt.Sprintf("(column %d)", i+1)
		}
	}
	if h == "" || len(h) > 40 || digits > 2 {
		return fmt.Sprintf("(column %d)", i+1)
	}
	return h
}

// detect returns the delimiter of a header line: the candidate that occurs
// most often outside double quotes (a comma when none does).
func detect(line []byte) rune {
	counts := map[rune]int{}
	quoted := false
	for _, b := range line {
		switch {
		case b == '"':
			quoted = !quoted
		case !quoted && strings.IndexByte(Delimiters, b) >= 0:
			counts[rune(b)]++
		}
	}
	best := ','
	for _, d := range Delimiters {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}

// Read reads a customer list. onInvalid, if not nil, is called for each
// invalid identifier; the rest of the file is read regardless. A line that
// is not valid CSV (a stray or unbalanced double quote) ends the read with
// an error wrapping ErrMalformed that names the line: where one record ends
// is then unknown, so no count after it could be trusted. Values are
// normalized on GOMAXPROCS goroutines; onInvalid is called from the calling
// goroutine, in file order.
func Read(r io.Reader, opt Options, onInvalid func(*LineError)) (*List, error) {
	if opt.Name == "" {
		opt.Name = "input"
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\ufeff")) {
		br.Discard(3)
	}
	first, err := br.ReadSlice('\n')
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("%s: %w", opt.Name, err)
	}
	first = append([]byte(nil), first...)
	delim := detect(first)
	cr := csv.NewReader(io.MultiReader(bytes.NewReader(first), br))
	cr.Comma = delim
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	malformed := func(err error) error {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			where := fmt.Sprintf("line %d", pe.Line)
			if pe.StartLine != pe.Line {
				where = fmt.Sprintf("lines %d to %d", pe.StartLine, pe.Line)
			}
			return fmt.Errorf("%w: %s: %s: %v: a field that contains a double quote must be quoted, with each quote inside doubled (\"\")",
				ErrMalformed, opt.Name, where, pe.Err)
		}
		return fmt.Errorf("%s: %w", opt.Name, err)
	}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: %s: want a header line naming the columns", ErrEmpty, opt.Name)
	}
	if err != nil {
		return nil, malformed(err)
	}
	l := &List{Delimiter: delim}
	var cols []column
	found := make([]string, len(header))
	idCol := -1
	named := ident.PerKind[string]{Email: HeaderKey(opt.EmailColumn), Phone: HeaderKey(opt.PhoneColumn)}
	for i, h := range header {
		h = strings.TrimSpace(h)
		found[i] = label(i, h)
		key := HeaderKey(h)
		if opt.IDColumn != "" && key == HeaderKey(opt.IDColumn) && idCol < 0 {
			idCol = i
			l.IDColumn = found[i]
		}
		for _, k := range ident.Kinds {
			switch {
			case key == k.String()+"sha256":
				cols = append(cols, column{i, found[i], k, true})
			case named.Get(k) != "" && key == named.Get(k):
				cols = append(cols, column{i, found[i], k, false})
			case named.Get(k) == "" && isSynonym(k, key):
				cols = append(cols, column{i, found[i], k, false})
			default:
				continue
			}
			l.Columns = append(l.Columns, found[i])
		}
	}
	notFound := func(flag, name string) error {
		return fmt.Errorf("%w: %s has no column %q (%s): found columns %s",
			ErrColumnNotFound, opt.Name, name, flag, strings.Join(found, ", "))
	}
	for _, k := range ident.Kinds {
		if named.Get(k) == "" {
			continue
		}
		ok := false
		for _, c := range cols {
			ok = ok || (c.kind == k && !c.hashed)
		}
		if !ok {
			name := opt.EmailColumn
			if k == ident.Phone {
				name = opt.PhoneColumn
			}
			return nil, notFound("--"+k.String()+"-column", name)
		}
	}
	if opt.IDColumn != "" && idCol < 0 {
		return nil, notFound("--id-column", opt.IDColumn)
	}
	for _, c := range cols {
		if c.index == idCol {
			// Its values would be copied into --matches: identifiers in a file.
			return nil, fmt.Errorf("%w: %s: --id-column %s is an identifier column; name a customer id column instead", ErrIDIsIdentifier, opt.Name, found[idCol])
		}
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w in %s: found columns %s; want a column named email, e-mail, email address, phone, phone number, mobile, email_sha256 or phone_sha256 (or similar)",
			ErrNoIdentifierColumn, opt.Name, strings.Join(found, ", "))
	}
	if idCol >= 0 {
		l.ids = []string{}
	}
	if err := readRows(cr, l, cols, idCol, opt, malformed, onInvalid); err != nil {
		return nil, err
	}
	return l, nil
}

func isSynonym(k ident.Kind, key string) bool {
	for _, s := range Synonyms.Get(k) {
		if HeaderKey(s) == key {
			return true
		}
	}
	return false
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
