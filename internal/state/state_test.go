package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/state/pgtest"
	"github.com/psimatch/psimatch/psi/ident"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func sess(id, adv string, email, phone int64, opened time.Time) Session {
	return Session{ID: id, Advertiser: adv, Mode: "count", Epoch: "e1", Digest: "d1",
		Declared: ident.PerKind[int64]{Email: email, Phone: phone}, Opened: opened, Expires: opened.Add(time.Hour)}
}

// stores returns each Store to test, opened fresh; reopen gives a new
// handle on the same state where the store is durable (nil otherwise).
type storeCase struct {
	name string
	open func(t *testing.T) (Store, func() Store)
}

func storeCases() []storeCase {
	return []storeCase{
		{"memory", func(t *testing.T) (Store, func() Store) { return NewMemory(), nil }},
		{"journal", func(t *testing.T) (Store, func() Store) {
			path := filepath.Join(t.TempDir(), "state.jsonl")
			open := func() Store {
				j, err := OpenJournal(path, func() time.Time { return t0 })
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { j.Close() })
				return j
			}
			return open(), open
		}},
		{"postgres", func(t *testing.T) (Store, func() Store) {
			conn := pgtest.Database(t)
			open := func() Store {
				p, err := OpenPostgres(context.Background(), conn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				return p
			}
			return open(), open
		}},
	}
}

func quota(err error) *QuotaError {
	var q *QuotaError
	errors.As(err, &q)
	return q
}

func TestStoreBudgets(t *testing.T) {
	ctx := context.Background()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			st, reopen := sc.open(t)
			lim := Limits{SessionsPerDay: 2, ElementsPerEpoch: 1000, EpochEnds: t0.Add(14 * time.Hour)}
			if err := st.OpenSession(ctx, sess("a1", "acme", 300, 100, t0), lim); err != nil {
				t.Fatal(err)
			}
			// Elements refused: 700 left, 701 asked; it costs no session.
			err := st.OpenSession(ctx, sess("a2", "acme", 701, 0, t0.Add(time.Minute)), lim)
			if q := quota(err); q == nil || !errors.Is(err, ErrQuotaElements) || q.Left != 600 || q.RetryAfter != 14*time.Hour-time.Minute {
				t.Fatalf("over the element budget: %v", err)
			}
			if err := st.OpenSession(ctx, sess("a3", "acme", 600, 0, t0.Add(time.Hour)), lim); err != nil {
				t.Fatalf("the second session (the refused one cost nothing): %v", err)
			}
			err = st.OpenSession(ctx, sess("a4", "acme", 0, 0, t0.Add(2*time.Hour)), Limits{SessionsPerDay: 2, ElementsPerEpoch: 5000, EpochEnds: lim.EpochEnds})
			if q := quota(err); q == nil || !errors.Is(err, ErrQuotaSessions) || q.RetryAfter != 22*time.Hour {
				t.Fatalf("third session: %v, want sessions refused, retry 22h", err)
			}
			if err := st.OpenSession(ctx, sess("g1", "globex", 1000, 0, t0), lim); err != nil {
				t.Fatalf("another advertiser: %v", err)
			}

			// Batches within the declaration.
			if err := st.Reserve(ctx, "a1", ident.Email, 200); err != nil {
				t.Fatal(err)
			}
			err = st.Reserve(ctx, "a1", ident.Email, 101)
			if q := quota(err); q == nil || !errors.Is(err, ErrOverDeclared) || q.Left != 100 {
				t.Fatalf("over declared: %v", err)
			}
			if err := st.Reserve(ctx, "a1", ident.Phone, 100); err != nil {
				t.Fatal(err)
			}
			if err := st.Release(ctx, "a1", ident.Email, 50); err != nil {
				t.Fatal(err)
			}
			if err := st.Release(ctx, "a1", ident.Email, 151); err == nil {
				t.Fatal("released more than was reserved")
			}
			if err := st.Reserve(ctx, "nope", ident.Email, 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown session: %v", err)
			}
			if _, err := st.Session(ctx, "a2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a refused session was recorded: %v", err)
			}

			check := func(st Store) {
				t.Helper()
				s, err := st.Session(ctx, "a1")
				if err != nil || s.Evaluated.Email != 150 || s.Evaluated.Phone != 100 || s.Declared.Email != 300 || s.Mode != "count" || s.Digest != "d1" || !s.Expires.Equal(t0.Add(time.Hour)) {
					t.Fatalf("session a1: %+v, %v", s, err)
				}
				u, err := st.Usage(ctx, t0.Add(3*time.Hour))
				if err != nil || fmt.Sprint(u) != "[{acme 2 e1 1000} {globex 1 e1 1000}]" {
					t.Fatalf("usage: %v, %v", u, err)
				}
			}
			check(st)
			if reopen != nil {
				st.Close()
				check(reopen())
			}
		})
	}
}

// TestStoreConcurrentOpens: 32 concurrent opens through two handles on the
// same state grant exactly the budget.
func TestStoreConcurrentOpens(t *testing.T) {
	ctx := context.Background()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			a, reopen := sc.open(t)
			b := a
			if sc.name == "postgres" {
				b = reopen()
			}
			lim := Limits{SessionsPerDay: 5, ElementsPerEpoch: 1 << 40, EpochEnds: t0.Add(time.Hour)}
			elim := Limits{SessionsPerDay: 1000, ElementsPerEpoch: 7000, EpochEnds: t0.Add(time.Hour)}
			var granted, egranted atomic.Int32
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st := a
					if i%2 == 1 {
						st = b
					}
					err := st.OpenSession(ctx, sess(fmt.Sprint("s", i), "acme", 10, 0, t0), lim)
					if err == nil {
						granted.Add(1)
					} else if !errors.Is(err, ErrQuotaSessions) {
						t.Error(err)
					}
					err = st.OpenSession(ctx, sess(fmt.Sprint("e", i), "globex", 1000, 0, t0), elim)
					if err == nil {
						egranted.Add(1)
					} else if !errors.Is(err, ErrQuotaElements) {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if granted.Load() != 5 || egranted.Load() != 7 {
				t.Fatalf("granted %d sessions (budget 5) and %d of 1000 elements (budget 7000)", granted.Load(), egranted.Load())
			}
			// Concurrent batches never exceed the declaration.
			if err := a.OpenSession(ctx, sess("big", "initech", 1000, 0, t0), lim); err != nil {
				t.Fatal(err)
			}
			var reserved atomic.Int64
			for i := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st := a
					if i%2 == 1 {
						st = b
					}
					if err := st.Reserve(ctx, "big", ident.Email, 70); err == nil {
						reserved.Add(70)
					} else if !errors.Is(err, ErrOverDeclared) {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if reserved.Load() != 980 {
				t.Fatalf("reserved %d of 1000 in batches of 70, want 980", reserved.Load())
			}
		})
	}
}

func TestStorePrune(t *testing.T) {
	ctx := context.Background()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			st, _ := sc.open(t)
			lim := Limits{SessionsPerDay: 1, ElementsPerEpoch: 100, EpochEnds: t0.Add(time.Hour)}
			if err := st.OpenSession(ctx, sess("a1", "acme", 100, 0, t0), lim); err != nil {
				t.Fatal(err)
			}
			// Expired but still in the day: kept, still counts.
			st.Prune(ctx, t0.Add(2*time.Hour))
			if _, err := st.Session(ctx, "a1"); err != nil {
				t.Fatalf("pruned a session still counting against the day: %v", err)
			}
			st.Prune(ctx, t0.Add(Day+2*time.Hour))
			if _, err := st.Session(ctx, "a1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("kept a session a day old: %v", err)
			}
			if u, _ := st.Usage(ctx, t0.Add(Day+2*time.Hour)); len(u) != 0 {
				t.Fatalf("usage after a day: %v", u)
			}
			w := t0.Truncate(time.Minute)
			for i := 1; i <= 3; i++ {
				if n, err := st.Refused(ctx, "acme", w); err != nil || n != int64(i) {
					t.Fatalf("refusal %d: %d, %v", i, n, err)
				}
			}
			if n, _ := st.Refused(ctx, "acme", w.Add(time.Minute)); n != 1 {
				t.Fatalf("a new window starts at %d", n)
			}
		})
	}
}

// TestJournalCrash: a torn or damaged last line (a crash mid-write) is
// dropped; damage elsewhere is an error naming the file and the line.
func TestJournalCrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.jsonl")
	j, err := OpenJournal(path, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{SessionsPerDay: 10, ElementsPerEpoch: 1000, EpochEnds: t0.Add(time.Hour)}
	for i := range 3 {
		if err := j.OpenSession(ctx, sess(fmt.Sprint("s", i), "acme", 100, 0, t0), lim); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Reserve(ctx, "s0", ident.Email, 40); err != nil {
		t.Fatal(err)
	}
	j.Close()
	good, _ := os.ReadFile(path)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v", fi.Mode())
	}
	for name, tail := range map[string]string{"torn": `{"op":"eval","id":"s0","ki`, "garbage": "\x00\x00\x00\n"} {
		os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o600)
		j, err := OpenJournal(path, func() time.Time { return t0 })
		if err != nil {
			t.Fatalf("%s tail: %v", name, err)
		}
		s, _ := j.Session(ctx, "s0")
		u, _ := j.Usage(ctx, t0)
		if s.Evaluated.Email != 40 || len(u) != 1 || u[0].Elements != 300 || u[0].Sessions != 3 {
			t.Fatalf("%s tail: session %+v usage %v", name, s, u)
		}
		j.Close()
	}
	lines := strings.SplitAfter(string(good), "\n")
	os.WriteFile(path, []byte(lines[0]+"{oops\n"+strings.Join(lines[1:], "")), 0o600)
	if _, err := OpenJournal(path, nil); err == nil || !strings.Contains(err.Error(), path+": line 2") {
		t.Fatalf("damaged middle line: %v", err)
	}
	if _, err := ReadJournal(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadJournal of a missing file: %v", err)
	}
}

// TestJournalCompacts: a journal grown past compactAt is rewritten to the
// state as it stands, and reopening it gives the same state.
func TestJournalCompacts(t *testing.T) {
	defer func(old int64) { compactAt = old }(compactAt)
	compactAt = 4 << 10
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.jsonl")
	j, err := OpenJournal(path, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{SessionsPerDay: 10, ElementsPerEpoch: 1 << 40, EpochEnds: t0.Add(time.Hour)}
	if err := j.OpenSession(ctx, sess("s", "acme", 100000, 0, t0), lim); err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		if err := j.Reserve(ctx, "s", ident.Email, 3); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	if fi, _ := os.Stat(path); fi.Size() > 2*compactAt {
		t.Fatalf("journal of %d bytes after 2000 reservations, compacting at %d", fi.Size(), compactAt)
	}
	j, err = OpenJournal(path, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if s, _ := j.Session(ctx, "s"); s.Evaluated.Email != 6000 {
		t.Fatalf("after compactions: evaluated %d, want 6000", s.Evaluated.Email)
	}
}
