package inventory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// jsonlSource reads a JSON Lines inventory: one object per line.
type jsonlSource struct {
	name string
	br   *bufio.Reader
	line int64
	buf  []byte // a line longer than br's buffer
	eof  bool
}

func newJSONLSource(r io.Reader, name string) *jsonlSource {
	return &jsonlSource{name: name, br: bufio.NewReaderSize(r, 64<<10)}
}

func (s *jsonlSource) Name() string { return s.name }

func (s *jsonlSource) Next(r *Raw) error {
	for !s.eof {
		line, tooLong, err := s.readLine()
		if err == io.EOF {
			s.eof = true
			if len(line) == 0 && !tooLong {
				break
			}
		} else if err != nil {
			return fmt.Errorf("%s: after line %d: %w", s.name, s.line, err)
		}
		s.line++
		if tooLong {
			*r = Raw{Line: s.line, Err: fmt.Errorf("longer than %d bytes", maxRecordSize)}
			return nil
		}
		if s.line == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		*r = Raw{Line: s.line}
		if err := parseJSONRecord(line, r); err != nil {
			*r = Raw{Line: s.line, Err: err}
		}
		return nil
	}
	return io.EOF
}

// readLine returns the next line without its "\n". A line longer than
// maxRecordSize is read to its end and dropped: tooLong is then true.
func (s *jsonlSource) readLine() (line []byte, tooLong bool, err error) {
	s.buf = s.buf[:0]
	for {
		chunk, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !tooLong {
				if len(s.buf)+len(chunk) > maxRecordSize {
					tooLong, s.buf = true, s.buf[:0]
				} else {
					s.buf = append(s.buf, chunk...)
				}
			}
			continue
		}
		if tooLong {
			return nil, true, err
		}
		chunk = bytes.TrimSuffix(chunk, []byte("\n"))
		if len(s.buf) == 0 {
			return chunk, false, err
		}
		if len(s.buf)+len(chunk) > maxRecordSize {
			return nil, true, err
		}
		s.buf = append(s.buf, chunk...)
		return s.buf, false, err
	}
}

// errMalformed is returned for a line that is not JSON. The decoder's own
// message is not used: it quotes a character of the input.
func errMalformed(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d", se.Offset)
	}
	return errors.New("malformed JSON")
}

// parseJSONRecord decodes one JSON object into r. Keys are matched exactly;
// unknown keys are ignored; a known key given twice is an error, since the
// last one silently winning could change a record's purposes.
func parseJSONRecord(line []byte, r *Raw) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errMalformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	var seen [numFields]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errMalformed(err)
		}
		key, _ := tok.(string) // More and Token ensure an object key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return errMalformed(err)
		}
		f := fieldIndex(key)
		if f < 0 {
			continue
		}
		if seen[f] {
			return fmt.Errorf("%s: given twice", fieldNames[f])
		}
		seen[f] = true
		if err := setJSONField(r, f, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return errMalformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value on the line")
	}
	var missing []string
	for f, ok := range seen {
		if !ok {
			missing = append(missing, fieldNames[f])
		}
	}
	if missing != nil {
		return fmt.Errorf("missing field(s) %s", strings.Join(missing, ", "))
	}
	return nil
}

// setJSONField sets field f of r from its JSON value.
func setJSONField(r *Raw, f int, raw json.RawMessage) error {
	name := fieldNames[f]
	switch f {
	case fieldUserID:
		if len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
			r.UserID = string(raw) // a numeric id, kept as written
			return nil
		}
		if err := json.Unmarshal(raw, &r.UserID); err != nil {
			return fmt.Errorf("%s: want a string or a number", name)
		}
	case fieldKind, fieldValue:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return fmt.Errorf("%s: want a string", name)
		}
		if f == fieldKind {
			r.Kind = s
		} else {
			r.Value = s
		}
	case fieldPurposes:
		switch raw[0] {
		case 'n': // null: no purposes
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("%s: want a string or an array of strings", name)
			}
			r.Purposes = []string{s}
		default:
			if err := json.Unmarshal(raw, &r.Purposes); err != nil || raw[0] != '[' {
				return fmt.Errorf("%s: want a string or an array of strings", name)
			}
		}
	case fieldOptedOut:
		switch raw[0] {
		case 'n': // null: empty, which is false
		case 't', 'f':
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return fmt.Errorf("%s: want true or false", name)
			}
			r.OptedOut = fmt.Sprint(b)
		default:
			if json.Unmarshal(raw, &r.OptedOut) != nil {
				return fmt.Errorf("%s: want true or false", name)
			}
		}
	}
	return nil
}
