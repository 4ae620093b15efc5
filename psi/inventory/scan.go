package inventory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/psimatch/psimatch/psi/ident"
)

// Summary counts what a scan of an inventory found. It marshals to the JSON
// object printed by `psimatch inventory check --json` and written to the
// audit log.
type Summary struct {
	// Records counts every record read, eligible or not.
	Records int64 `json:"records"`
	// EligibleRecords counts the records that passed the policy, duplicates
	// included.
	EligibleRecords int64 `json:"eligible_records"`
	// Excluded counts the other records by Reason; each record is counted
	// once, under the first reason that applies.
	Excluded Excluded `json:"excluded"`
	// EligibleIdentifiers counts the distinct eligible identifiers by kind:
	// each was yielded exactly once.
	EligibleIdentifiers Identifiers `json:"eligible_identifiers"`
}

// Excluded counts excluded records by Reason.
type Excluded struct {
	Invalid              int64 `json:"invalid"`
	SecurityOnly         int64 `json:"security_only"`
	NoAdvertisingPurpose int64 `json:"no_advertising_purpose"`
	OptedOut             int64 `json:"opted_out"`
}

// Total returns the number of excluded records.
func (e Excluded) Total() int64 {
	return e.Invalid + e.SecurityOnly + e.NoAdvertisingPurpose + e.OptedOut
}

// Identifiers counts distinct identifiers by kind.
type Identifiers struct {
	Email int64 `json:"email"`
	Phone int64 `json:"phone"`
}

// RecordError is an invalid record: its position and what is wrong with it,
// never its values. Its message reads "inventory.csv: line 812: phone: no
// country code".
type RecordError struct {
	Source string // the source's Name, such as "inventory.csv"
	Line   int64  // the record's Raw.Line
	Err    error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s: line %d: %v", e.Source, e.Line, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// A Source reads inventory records one at a time. NewSource makes one for a
// CSV or JSON Lines file; a database source implements it over its rows.
type Source interface {
	// Name names the source in errors, such as "inventory.csv".
	Name() string
	// Next reads the next record into r, reusing nothing from the previous
	// one. It returns io.EOF after the last record. A record that cannot be
	// decoded is still returned, with r.Err set, so that it is counted as
	// invalid; any other error ends the scan.
	Next(r *Raw) error
}

// Run reads every record from src, applies p to each, and calls yield once
// for each distinct eligible identifier, the first time a record makes it
// eligible. An identifier that one record makes eligible is yielded even if
// other records holding it are excluded. onInvalid, if not nil, is called for
// each invalid record.
//
// Run stops at the first error from src, from yield or from ctx, and returns
// it with the counts so far. The identifiers yielded before an error are not
// the whole eligible set: discard them.
//
// Identifiers are told apart by the first 64 bits of the SHA-256 in their
// PRF input, so memory is 8 bytes (plus map overhead) per distinct eligible
// identifier. Two distinct identifiers of the same kind share a key with
// probability about n²/2⁶⁵ for n of them: below 3e-6 for n = 10⁷. A
// collision can only drop an eligible identifier from the set, never add an
// excluded one.
func Run(ctx context.Context, src Source, p *Policy, yield func(Eligible) error, onInvalid func(*RecordError)) (Summary, error) {
	if p == nil {
		return Summary{}, errors.New("inventory: nil Policy")
	}
	f := newFilter(p)
	var r Raw
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return f.sum, err
			}
		}
		r = Raw{}
		if err := src.Next(&r); err != nil {
			if err == io.EOF {
				return f.sum, nil
			}
			return f.sum, err
		}
		e, first, err := f.add(r)
		if err != nil {
			if onInvalid != nil {
				onInvalid(&RecordError{Source: src.Name(), Line: r.Line, Err: err})
			}
			continue
		}
		if first {
			if err := yield(e); err != nil {
				return f.sum, err
			}
		}
	}
}

// Scan is Run over a CSV or JSON Lines file read from r; name is the file's
// name, used in errors and, when format is Auto, to pick the format.
func Scan(ctx context.Context, r io.Reader, name string, format Format, p *Policy, yield func(Eligible) error, onInvalid func(*RecordError)) (Summary, error) {
	src, err := NewSource(r, name, format)
	if err != nil {
		return Summary{}, err
	}
	return Run(ctx, src, p, yield, onInvalid)
}

// filter applies a policy to a stream of records: it counts them and
// remembers which eligible identifiers it has seen.
type filter struct {
	p    *Policy
	sum  Summary
	seen [3]map[uint64]struct{} // by kind tag: first 64 bits of the digest
}

func newFilter(p *Policy) *filter {
	f := &filter{p: p}
	for _, k := range ident.Kinds {
		f.seen[k] = make(map[uint64]struct{})
	}
	return f
}

// add classifies r and counts it. It returns the Eligible and whether this is
// the first record to make its identifier eligible, or the error of an
// invalid record.
func (f *filter) add(r Raw) (Eligible, bool, error) {
	f.sum.Records++
	e, reason, err := f.p.Classify(r)
	switch reason {
	case Included:
		f.sum.EligibleRecords++
	case Invalid:
		f.sum.Excluded.Invalid++
		if err == nil { // cannot happen; never count an invalid record silently
			err = errors.New("invalid record")
		}
		return Eligible{}, false, err
	case SecurityOnly:
		f.sum.Excluded.SecurityOnly++
	case NoAdvertisingPurpose:
		f.sum.Excluded.NoAdvertisingPurpose++
	case OptedOut:
		f.sum.Excluded.OptedOut++
	}
	if reason != Included || !e.Valid() {
		return Eligible{}, false, nil
	}
	in := e.Input()
	seen := f.seen[in.Kind()]
	key := binary.LittleEndian.Uint64(in[1:9])
	if _, dup := seen[key]; dup {
		return e, false, nil
	}
	seen[key] = struct{}{}
	switch in.Kind() {
	case ident.Email:
		f.sum.EligibleIdentifiers.Email++
	case ident.Phone:
		f.sum.EligibleIdentifiers.Phone++
	}
	return e, true, nil
}
