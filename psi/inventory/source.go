package inventory

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Format is the format of an inventory file.
type Format uint8

// The inventory file formats.
const (
	// Auto picks the format from the file name's extension.
	Auto Format = iota
	// CSV is comma-separated values with a header line naming the columns.
	CSV
	// JSONL is JSON Lines: one JSON object per line.
	JSONL
)

// String returns the format's name as accepted by ParseFormat.
func (f Format) String() string {
	switch f {
	case Auto:
		return "auto"
	case CSV:
		return "csv"
	case JSONL:
		return "jsonl"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// ParseFormat returns the format named s: "csv", "jsonl" or "ndjson" (the
// same), or "" or "auto" for Auto.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return Auto, nil
	case "csv":
		return CSV, nil
	case "jsonl", "ndjson":
		return JSONL, nil
	}
	return Auto, fmt.Errorf("inventory: unknown format %q (want csv or jsonl)", s)
}

// FormatOf returns the format of a file from its name's extension: .csv, or
// .jsonl or .ndjson, in any case.
func FormatOf(name string) (Format, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	}
	return Auto, fmt.Errorf("inventory: cannot tell the format of %s from its extension (want .csv, .jsonl or .ndjson)", name)
}

// The fields of a record, in the order they are reported.
var fieldNames = [...]string{"user_id", "kind", "value", "purposes", "opted_out"}

const (
	fieldUserID = iota
	fieldKind
	fieldValue
	fieldPurposes
	fieldOptedOut
	numFields
)

// fieldIndex returns the index of a field name in fieldNames, or -1.
func fieldIndex(name string) int {
	for i, f := range fieldNames {
		if name == f {
			return i
		}
	}
	return -1
}

// maxRecordSize bounds the bytes of one record, so that a file without line
// breaks cannot exhaust memory.
const maxRecordSize = 1 << 20

// NewSource returns a Source reading an inventory file from r in format
// (Auto: from name's extension). name names the file in errors.
//
// A CSV file must start with a header naming the columns user_id, kind,
// value, purposes and opted_out, in any order; other columns are ignored.
// A JSON Lines file holds one object per line with those keys; purposes may
// be a ";"-separated string or an array of strings, opted_out a boolean or
// "true", "false" or "". Blank lines are skipped. A record longer than 1 MiB
// is an error.
//
// When r is also an io.Seeker (a file), the Source is a Rewinder: Rewind
// seeks back to where r was when NewSource was called.
func NewSource(r io.Reader, name string, format Format) (Source, error) {
	if format == Auto {
		var err error
		if format, err = FormatOf(name); err != nil {
			return nil, err
		}
	}
	src, err := newSource(r, name, format)
	if err != nil {
		return nil, err
	}
	if rs, ok := r.(io.ReadSeeker); ok {
		if off, err := rs.Seek(0, io.SeekCurrent); err == nil {
			return &seekSource{Source: src, r: rs, off: off, format: format}, nil
		}
	}
	return src, nil
}

func newSource(r io.Reader, name string, format Format) (Source, error) {
	switch format {
	case CSV:
		return newCSVSource(r, name), nil
	case JSONL:
		return newJSONLSource(r, name), nil
	}
	return nil, fmt.Errorf("inventory: unknown format %v", format)
}

// seekSource is a file source that can be read again from its start.
type seekSource struct {
	Source
	r      io.ReadSeeker
	off    int64
	format Format
}

// Rewind seeks back to the first record.
func (s *seekSource) Rewind(context.Context) error {
	if _, err := s.r.Seek(s.off, io.SeekStart); err != nil {
		return fmt.Errorf("%s: reading it again: %w", s.Name(), err)
	}
	src, err := newSource(s.r, s.Name(), s.format)
	if err != nil {
		return err
	}
	s.Source = src
	return nil
}
