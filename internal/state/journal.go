package state

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
	"github.com/psimatch/psimatch/psi/ident"
)

// record is one line of the journal.
type record struct {
	// Op is "open" (a session opened: Session, charged against the epoch
	// ending Ends), "eval" (N elements of Kind reserved, or released when
	// negative, in session ID), or in a compacted journal "session" (a
	// session as it stands) and "usage" (an epoch's element usage).
	Op         string    `json:"op"`
	Session    *Session  `json:"s,omitempty"`
	Ends       time.Time `json:"ends,omitzero"`
	ID         string    `json:"id,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	N          int64     `json:"n,omitempty"`
	Advertiser string    `json:"advertiser,omitempty"`
	Epoch      string    `json:"epoch,omitempty"`
}

// maxRecord bounds a journal line; a longer one is corrupt.
const maxRecord = 64 << 10

// compactAt is the journal size past which it is rewritten (a variable
// for tests).
var compactAt int64 = 64 << 20

// Journal is the embedded Store: the state in memory, with every change
// appended to a file and fsynced before it takes effect. Opening the file
// replays it, so a restart, even after SIGKILL, loses no reservation that
// was granted. It is rewritten compactly at open and when it grows past
// 64 MiB. Refusal counters are kept in memory only: they bound the audit
// log's growth within a minute and need not survive a restart.
type Journal struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
	t    *tables
	now  func() time.Time
}

// OpenJournal opens (creating it if needed, with mode 0600) the journal at
// path, replays it and compacts it. A torn last line (a crash mid-write) is
// dropped: its change was never acted on. Any other damaged line is an
// error naming the file and the line. The caller keeps other processes
// away (the data directory's lock).
func OpenJournal(path string, now func() time.Time) (*Journal, error) {
	if now == nil {
		now = time.Now
	}
	t, err := replay(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	j := &Journal{path: path, t: t, now: now}
	if err := j.compact(); err != nil {
		return nil, err
	}
	return j, nil
}

// ReadJournal replays the journal at path without changing it, for
// reading usage while a server runs. A torn last line is ignored.
func ReadJournal(path string) (*Memory, error) {
	t, err := replay(path)
	if err != nil {
		return nil, err
	}
	return &Memory{t: t}, nil
}

// replay reads the journal into tables.
func replay(path string) (*tables, error) {
	t := newTables()
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return t, err
		}
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("state: %s: line %d: longer than %d bytes; the journal is damaged: move it aside to start with empty budgets, or restore it", path, n, maxRecord)
		}
		if err == io.EOF {
			return t, nil // a torn last line (no newline) never took effect
		}
		if err != nil {
			return nil, fmt.Errorf("state: %s: %w", path, err)
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil || t.apply(&rec) != nil {
			if _, perr := r.Peek(1); perr == io.EOF {
				return t, nil // the last line is damaged: a crash mid-write
			}
			return nil, fmt.Errorf("state: %s: line %d: not a valid record; the journal is damaged: move it aside to start with empty budgets, or restore it", path, n)
		}
	}
}

// apply replays one record.
func (t *tables) apply(rec *record) error {
	switch rec.Op {
	case "open", "session":
		if rec.Session == nil || rec.Session.ID == "" {
			return ErrInvalid
		}
		s := *rec.Session
		if rec.Op == "session" {
			t.sessions[s.ID] = &s
			return nil
		}
		t.applyOpen(s, rec.Ends)
	case "eval":
		k, err := ident.ParseKind(rec.Kind)
		if err != nil {
			return ErrInvalid
		}
		t.applyEvaluated(rec.ID, k, rec.N)
	case "usage":
		t.usage[usageKey{rec.Advertiser, rec.Epoch}] = &usageRow{used: rec.N, ends: rec.Ends}
	default:
		return ErrInvalid
	}
	return nil
}

// compact rewrites the journal as the state stands, pruned, and reopens it
// for appending.
func (j *Journal) compact() error {
	j.t.prune(j.now())
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, s := range j.t.sessions {
		enc.Encode(record{Op: "session", Session: s})
	}
	for k, u := range j.t.usage {
		enc.Encode(record{Op: "usage", Advertiser: k.advertiser, Epoch: k.epoch, N: u.used, Ends: u.ends})
	}
	if err := atomicfile.WriteFile(j.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("state: compacting %s: %w", j.path, err)
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size = f, int64(buf.Len())
	return nil
}

// append writes one record and fsyncs it. On failure the file is cut back,
// so nothing half-written stays.
func (j *Journal) append(rec record) error {
	if j.f == nil {
		return ErrClosed
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b = append(b, '\n')
	if _, err := j.f.Write(b); err != nil {
		j.f.Truncate(j.size)
		return fmt.Errorf("state: writing %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		j.f.Truncate(j.size)
		return fmt.Errorf("state: syncing %s: %w", j.path, err)
	}
	j.size += int64(len(b))
	return nil
}

// maybeCompact rewrites a journal grown past compactAt; a failure leaves
// the (complete) journal as it was.
func (j *Journal) maybeCompact() {
	if j.size > compactAt {
		j.compact()
	}
}

// OpenSession implements Store.
func (j *Journal) OpenSession(_ context.Context, s Session, lim Limits) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.t.checkOpen(&s, lim); err != nil {
		return err
	}
	if err := j.append(record{Op: "open", Session: &s, Ends: lim.EpochEnds}); err != nil {
		return err
	}
	j.t.applyOpen(s, lim.EpochEnds)
	j.maybeCompact()
	return nil
}

// Session implements Store.
func (j *Journal) Session(_ context.Context, id string) (Session, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if s := j.t.sessions[id]; s != nil {
		return *s, nil
	}
	return Session{}, ErrNotFound
}

// Reserve implements Store.
func (j *Journal) Reserve(_ context.Context, id string, k ident.Kind, n int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.t.checkReserve(id, k, n); err != nil {
		return err
	}
	if err := j.append(record{Op: "eval", ID: id, Kind: k.String(), N: n}); err != nil {
		return err
	}
	j.t.applyEvaluated(id, k, n)
	j.maybeCompact()
	return nil
}

// Release implements Store.
func (j *Journal) Release(_ context.Context, id string, k ident.Kind, n int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.t.checkRelease(id, k, n); err != nil {
		return err
	}
	if err := j.append(record{Op: "eval", ID: id, Kind: k.String(), N: -n}); err != nil {
		return err
	}
	j.t.applyEvaluated(id, k, -n)
	return nil
}

// Refused implements Store.
func (j *Journal) Refused(_ context.Context, advertiser string, window time.Time) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.t.refused(advertiser, window), nil
}

// Usage implements Store.
func (j *Journal) Usage(_ context.Context, now time.Time) ([]Usage, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.t.usageAt(now), nil
}

// Prune implements Store. The journal file is pruned when it is compacted.
func (j *Journal) Prune(_ context.Context, now time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.t.prune(now)
	return nil
}

// Close implements Store.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
