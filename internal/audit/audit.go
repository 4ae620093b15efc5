// Package audit owns the server's audit log: an append-only JSON Lines file
// (DIR/audit.jsonl in the data directory) with one line per inventory load
// and per session, each written with a single write(2) and fsynced before
// Write returns.
//
// Open the log with Open, which first repairs the torn last line a crash may
// have left. Write an Event or a caller's own Named struct. ReadAll reads a
// log back for tests and tools.
//
// The log never holds an identifier value. Callers must pass only counts,
// names of advertisers, epochs, modes, outcomes and reasons; never an email,
// a phone number, a hash of one or an evaluated element, because a hash of
// an identifier falls to a dictionary.
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// timeFormat is RFC 3339 in UTC with milliseconds, fixed width.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// maxLine bounds a line, on writing and on reading.
const maxLine = 1 << 20

// Named is an event with a name, written as the "event" field.
type Named interface {
	EventName() string
}

// Event is a free-form event. Its "event" key names it and is required;
// a "time" key is overwritten.
type Event map[string]any

// EventName returns e["event"] if it is a string.
func (e Event) EventName() string {
	s, _ := e["event"].(string)
	return s
}

// Recovered is written by Open when it removed a torn last line.
type Recovered struct {
	// DroppedBytes is how many bytes were cut off the end of the log.
	DroppedBytes int64 `json:"dropped_bytes"`
	// Reason says why: "no trailing newline" or "invalid JSON".
	Reason string `json:"reason"`
}

// EventName returns "audit_recovered".
func (Recovered) EventName() string { return "audit_recovered" }

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	mu        sync.Mutex
	f         *os.File
	path      string
	size      int64 // the length of the file's complete lines
	now       func() time.Time
	recovered *Recovered
	reserved  bool                                    // the reserve file is in place
	write     func(f *os.File, b []byte) (int, error) // f.Write; tests fill the disk
}

// Open opens the audit log at path for appending, creating it with mode 0600
// if it is missing. If the last line is torn (a crash in the middle of a
// write left no trailing newline, or left a line that is not a JSON object),
// Open truncates it off and writes a Recovered event saying how many bytes
// were dropped. Only one process may write a log; the data directory's lock
// (package store) ensures that.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{f: f, path: path, now: time.Now, write: (*os.File).Write}
	keep, reason, err := scanTail(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	l.size = fi.Size()
	if keep < l.size {
		if err := f.Truncate(keep); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: %s: remove torn last line: %w", path, err)
		}
		l.recovered = &Recovered{DroppedBytes: l.size - keep, Reason: reason}
		l.size = keep
		if err := l.Write(*l.recovered); err != nil {
			f.Close()
			return nil, err
		}
	}
	l.mu.Lock()
	l.makeReserve()
	l.mu.Unlock()
	return l, nil
}

// ReserveBytes is the disk space the log keeps for the events that must be
// written, in a file beside it (PATH.reserve). When the disk is full, Write
// frees it and retries, so that sessions opened and batches evaluated are
// still logged after refusals (WriteOptional) filled the disk; optional
// events are not written while the reserve is not in place.
const ReserveBytes = 1 << 20

// ErrNoReserve is the error of an optional event not written because the
// log's reserve is in use (the disk was full).
var ErrNoReserve = errors.New("audit: the disk was full; optional events are not written until the reserve is restored")

func (l *Log) reservePath() string { return l.path + ".reserve" }

// makeReserve puts the reserve file in place if it is not; l.mu is held.
func (l *Log) makeReserve() {
	if l.reserved {
		return
	}
	if fi, err := os.Stat(l.reservePath()); err == nil && fi.Size() == ReserveBytes {
		l.reserved = true
		return
	}
	err := atomicfile.WriteFile(l.reservePath(), make([]byte, ReserveBytes), 0o600)
	l.reserved = err == nil
}

// Reserved reports whether the reserve is in place.
func (l *Log) Reserved() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reserved
}

// Recovered returns what Open cut off the end of the log, or nil if the log
// was intact.
func (l *Log) Recovered() *Recovered { return l.recovered }

// Path returns the log's path.
func (l *Log) Path() string { return l.path }

// scanTail finds where the log's last good line ends: keep is the length to
// keep and reason says why anything after it is torn.
func scanTail(f *os.File) (keep int64, reason string, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := fi.Size()
	if size == 0 {
		return 0, "", nil
	}
	// Find the last two newlines, reading backwards in blocks.
	var last1, last2 int64 = -1, -1 // offsets of the last and the one before
	buf := make([]byte, 64<<10)
	for end := size; end > 0 && last2 < 0; {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, "", err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			if last1 < 0 {
				last1 = start + int64(i)
			} else {
				last2 = start + int64(i)
				break
			}
		}
		end = start
	}
	if last1 != size-1 {
		return last1 + 1, "no trailing newline", nil
	}
	// The last line is complete; check that it is a JSON object.
	lineStart := last2 + 1
	if size-lineStart > maxLine {
		return lineStart, "invalid JSON", nil
	}
	line := make([]byte, size-lineStart)
	if _, err := f.ReadAt(line, lineStart); err != nil && err != io.EOF {
		return 0, "", err
	}
	var obj map[string]any
	if json.Unmarshal(line, &obj) != nil || obj == nil {
		return lineStart, "invalid JSON", nil
	}
	return size, "", nil
}

// Write appends event as one line: a JSON object with "time" (RFC 3339,
// UTC) and "event" (its EventName) first, then the event's own fields. The
// line goes out in one write(2) and is fsynced before Write returns. If the
// write fails part way (a full disk), the partial line is truncated off so
// the log stays whole.
//
// event must be a Named whose JSON is an object: an
// Event or a caller's own struct. It must hold no identifier values (see
// the package documentation).
func (l *Log) Write(event Named) error { return l.writeEvent(event, true) }

// WriteOptional writes an event that may be dropped (a refusal, a summary):
// never into the reserve. While the reserve is in use it tries to restore
// it, and returns ErrNoReserve if it cannot.
func (l *Log) WriteOptional(event Named) error { return l.writeEvent(event, false) }

func (l *Log) writeEvent(event Named, mandatory bool) error {
	name := event.EventName()
	if name == "" {
		return fmt.Errorf("audit: event %T has no name", event)
	}
	var body []byte
	var err error
	if e, ok := event.(Event); ok {
		m := make(map[string]any, len(e))
		for k, v := range e {
			if k != "time" && k != "event" {
				m[k] = v
			}
		}
		body, err = json.Marshal(m)
	} else {
		body, err = json.Marshal(event)
	}
	if err != nil {
		return fmt.Errorf("audit: event %s: %w", name, err)
	}
	if len(body) < 2 || body[0] != '{' {
		return fmt.Errorf("audit: event %s: %T is not a JSON object", name, event)
	}
	head, err := json.Marshal(struct {
		Time  string `json:"time"`
		Event string `json:"event"`
	}{l.now().UTC().Format(timeFormat), name})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	line := make([]byte, 0, len(head)+len(body)+1)
	line = append(line, head[:len(head)-1]...) // without its '}'
	if len(body) > 2 {
		line = append(line, ',')
	}
	line = append(line, body[1:]...) // without its '{'
	line = append(line, '\n')
	if len(line) > maxLine {
		return fmt.Errorf("audit: event %s: %d bytes, limit %d", name, len(line), maxLine)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("audit: log is closed")
	}
	if !mandatory {
		if l.makeReserve(); !l.reserved {
			return fmt.Errorf("%w (event %s)", ErrNoReserve, name)
		}
	}
	_, err = l.write(l.f, line)
	if err != nil && mandatory && l.reserved && errors.Is(err, syscall.ENOSPC) {
		// The disk is full: free the reserve for this and the next
		// mandatory events, and retry.
		if terr := l.f.Truncate(l.size); terr == nil && os.Remove(l.reservePath()) == nil {
			l.reserved = false
			_, err = l.write(l.f, line)
		}
	}
	if err != nil {
		// Cut off whatever part of the line reached the file.
		if terr := l.f.Truncate(l.size); terr != nil {
			return fmt.Errorf("audit: write %s: %w (and removing the partial line failed: %v)", name, err, terr)
		}
		return fmt.Errorf("audit: write %s: %w", name, err)
	}
	l.size += int64(len(line))
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: write %s: sync: %w", name, err)
	}
	return nil
}

// Close closes the log. Later Writes fail.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ReadAll reads every line of the audit log at path as a JSON object. A line
// that is not one, or a last line without its newline, is an error naming
// the line number.
func ReadAll(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []map[string]any
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Longer than the reader's buffer: gather the rest.
			full := bytes.Clone(line)
			for err == bufio.ErrBufferFull && len(full) <= maxLine {
				line, err = r.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if err == io.EOF {
			if len(line) > 0 {
				return out, fmt.Errorf("audit: %s: line %d: torn (no trailing newline)", path, n)
			}
			return out, nil
		}
		if err != nil {
			if len(line) > maxLine {
				return out, fmt.Errorf("audit: %s: line %d: longer than %d bytes", path, n, maxLine)
			}
			return out, fmt.Errorf("audit: %s: %w", path, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(line, &obj); err != nil || obj == nil {
			return out, fmt.Errorf("audit: %s: line %d: not a JSON object", path, n)
		}
		out = append(out, obj)
	}
}
