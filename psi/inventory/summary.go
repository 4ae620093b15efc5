package inventory

import (
	"fmt"

	"github.com/psimatch/psimatch/psi/ident"
)

// Summary counts what a read of an inventory found. It marshals to the JSON
// object printed by `psimatch inventory check --json` and written to the
// audit log.
type Summary struct {
	// Records counts every record read, eligible or not.
	Records int64 `json:"records"`
	// EligibleRecords counts the records whose identifier is in the
	// eligible set, duplicates included.
	EligibleRecords int64 `json:"eligible_records"`
	// Excluded counts the other records by Reason; each record is counted
	// once, under the first reason that applies.
	Excluded Excluded `json:"excluded"`
	// EligibleIdentifiers counts the distinct eligible identifiers by kind:
	// each is yielded exactly once.
	EligibleIdentifiers Identifiers `json:"eligible_identifiers"`
}

// Excluded counts excluded records by Reason. The first four reasons are
// the record's own; the last four are deny-wins exclusions: the record would
// be eligible on its own, but its user or another record of its value says
// no.
type Excluded struct {
	Invalid              int64 `json:"invalid"`
	SecurityOnly         int64 `json:"security_only"`
	NoAdvertisingPurpose int64 `json:"no_advertising_purpose"`
	OptedOut             int64 `json:"opted_out"`
	// UserOptedOut: another record of the same user is opted out.
	UserOptedOut int64 `json:"user_opted_out_elsewhere"`
	// ValueSecurityOnly: a record of the same normalized value (any user)
	// is security-only.
	ValueSecurityOnly int64 `json:"value_shared_with_security_only"`
	// ValueOptedOut: a record of the same normalized value (any user) is
	// opted out or belongs to a user who opted out.
	ValueOptedOut int64 `json:"value_shared_with_opted_out"`
	// ValueInvalid: a record of the same normalized value (any user) is
	// invalid in another field, so its purposes or opt-out are unknown.
	ValueInvalid int64 `json:"value_shared_with_invalid"`
}

// Total returns the number of excluded records.
func (e Excluded) Total() int64 {
	return e.Invalid + e.SecurityOnly + e.NoAdvertisingPurpose + e.OptedOut +
		e.UserOptedOut + e.ValueSecurityOnly + e.ValueOptedOut + e.ValueInvalid
}

// add counts n records under r.
func (e *Excluded) add(r Reason, n int64) {
	switch r {
	case Invalid:
		e.Invalid += n
	case SecurityOnly:
		e.SecurityOnly += n
	case NoAdvertisingPurpose:
		e.NoAdvertisingPurpose += n
	case OptedOut:
		e.OptedOut += n
	case UserOptedOut:
		e.UserOptedOut += n
	case ValueSecurityOnly:
		e.ValueSecurityOnly += n
	case ValueOptedOut:
		e.ValueOptedOut += n
	case ValueInvalid:
		e.ValueInvalid += n
	}
}

// Identifiers counts distinct identifiers by kind.
type Identifiers = ident.PerKind[int64]

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
