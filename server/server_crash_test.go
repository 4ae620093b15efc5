package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/protocol"
)

// failingAudit refuses every event, as a log on a full disk does.
type failingAudit struct{}

func (failingAudit) Write(audit.Named) error {
	return &os.PathError{Op: "write", Path: "audit.jsonl", Err: syscall.ENOSPC}
}

func (a failingAudit) WriteOptional(ev audit.Named) error { return a.Write(ev) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDiskRefusesWrites: the server on a disk that refuses writes. A set
// that cannot be saved stops New with a clear error, and a rotation that
// cannot save keeps the previous epoch serving; while the audit log cannot
// be written, no session is opened (503 audit_unavailable, nothing
// evaluated unlogged), and serving resumes when it can.
func TestDiskRefusesWrites(t *testing.T) {
	f := newFixture(t, false)
	var logs lockedBuffer
	f.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
	working := f.srv.cfg.Audit
	f.srv.cfg.Audit = failingAudit{}
	_, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{})
	var se *protocol.StatusError
	if !errors.As(err, &se) || se.Status != 503 || se.Reason != "audit_unavailable" {
		t.Fatalf("with a failing audit log: %v", err)
	}
	if n := strings.Count(logs.String(), "writing the audit log"); n < 1 {
		t.Fatalf("audit failure not logged:\n%s", logs.String())
	}
	// The sessions were reserved (a budget is never handed back on a
	// failure after the reservation) but none was answered: the client got
	// no id to evaluate with.
	usage, _ := f.srv.cfg.State.Usage(context.Background(), f.srv.now())
	t.Logf("usage after refused openings: %v", usage)
	f.srv.cfg.Audit = working
	rep, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{})
	if err != nil || rep.Matched.Email+rep.Matched.Phone != f.truth.Overlap {
		t.Fatalf("after the audit log recovered: %v", err)
	}

	// The sets directory refuses new files: a rotation fails, the old
	// epoch keeps serving, its saved set is intact.
	old := f.srv.Epoch()
	sets := filepath.Join(f.store.Path(), "sets")
	os.Rename(sets, sets+".moved")
	os.WriteFile(sets, nil, 0o600) // a file where the directory was
	f.advance(time.Hour)
	if err := f.srv.rebuild(context.Background(), "rotation"); err == nil || !strings.Contains(err.Error(), "saving the set of epoch") {
		t.Fatalf("rotation onto a refusing disk: %v", err)
	}
	if f.srv.Epoch() != old {
		t.Fatalf("epoch %s after a failed rotation, want %s still", f.srv.Epoch(), old)
	}
	if _, err := f.client("member").Match(context.Background(), f.list, protocol.MatchOptions{}); err != nil {
		t.Fatalf("after a failed rotation: %v", err)
	}
	os.Remove(sets)
	os.Rename(sets+".moved", sets)
	if _, _, _, ok, err := f.store.LoadSet(old); !ok || err != nil {
		t.Fatalf("the saved set after the failure: ok %v, %v", ok, err)
	}

	// A new server whose set cannot be saved does not start.
	dir2, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir2.Close()
	os.WriteFile(filepath.Join(dir2.Path(), "sets"), nil, 0o600)
	cfg := f.cfg
	cfg.Dir, cfg.Audit = dir2, nil
	if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "saving the set of epoch") {
		t.Fatalf("New on a refusing disk: %v", err)
	}
}
