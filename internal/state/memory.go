package state

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/psimatch/psimatch/psi/ident"
)

// tables is the state in memory: the embedded store's working copy, rebuilt
// from its journal at start.
type tables struct {
	sessions map[string]*Session
	usage    map[usageKey]*usageRow
	refusals map[string]refusalWindow
}

type usageKey struct{ advertiser, epoch string }

type usageRow struct {
	used int64
	ends time.Time
}

type refusalWindow struct {
	start time.Time
	n     int64
}

func newTables() *tables {
	return &tables{sessions: map[string]*Session{}, usage: map[usageKey]*usageRow{}, refusals: map[string]refusalWindow{}}
}

// checkOpen decides whether s may open; it changes nothing.
func (t *tables) checkOpen(s *Session, lim Limits) error {
	if err := s.validate(); err != nil {
		return err
	}
	if _, dup := t.sessions[s.ID]; dup {
		return ErrInvalid
	}
	var starts []time.Time
	for _, o := range t.sessions {
		if o.Advertiser == s.Advertiser && o.Opened.After(s.Opened.Add(-Day)) {
			starts = append(starts, o.Opened)
		}
	}
	if len(starts) >= lim.SessionsPerDay {
		slices.SortFunc(starts, func(a, b time.Time) int { return b.Compare(a) })
		return &QuotaError{Err: ErrQuotaSessions, RetryAfter: sessionsRetry(starts, lim.SessionsPerDay, s.Opened)}
	}
	total := s.Declared.Email + s.Declared.Phone
	var used int64
	if u := t.usage[usageKey{s.Advertiser, s.Epoch}]; u != nil {
		used = u.used
	}
	if total > lim.ElementsPerEpoch-used {
		return &QuotaError{Err: ErrQuotaElements, RetryAfter: max(lim.EpochEnds.Sub(s.Opened), time.Second), Left: max(lim.ElementsPerEpoch-used, 0)}
	}
	return nil
}

// applyOpen records s and charges its declared total.
func (t *tables) applyOpen(s Session, ends time.Time) {
	t.sessions[s.ID] = &s
	k := usageKey{s.Advertiser, s.Epoch}
	u := t.usage[k]
	if u == nil {
		u = &usageRow{}
		t.usage[k] = u
	}
	u.used += s.Declared.Email + s.Declared.Phone
	if ends.After(u.ends) {
		u.ends = ends
	}
}

// checkReserve decides whether n more elements of kind k fit the session.
func (t *tables) checkReserve(id string, k ident.Kind, n int64) error {
	s := t.sessions[id]
	if s == nil {
		return ErrNotFound
	}
	if !k.Valid() || n <= 0 {
		return ErrInvalid
	}
	left := s.Declared.Get(k) - s.Evaluated.Get(k)
	if n > left {
		return &QuotaError{Err: ErrOverDeclared, Left: left}
	}
	return nil
}

func (t *tables) checkRelease(id string, k ident.Kind, n int64) error {
	s := t.sessions[id]
	if s == nil {
		return ErrNotFound
	}
	if !k.Valid() || n <= 0 || n > s.Evaluated.Get(k) {
		return ErrInvalid
	}
	return nil
}

// applyEvaluated adds n (negative to release) to the session's count.
func (t *tables) applyEvaluated(id string, k ident.Kind, n int64) {
	if s := t.sessions[id]; s != nil && k.Valid() {
		*s.Evaluated.At(k) += n
	}
}

func (t *tables) refused(advertiser string, window time.Time) int64 {
	w := t.refusals[advertiser]
	if !w.start.Equal(window) {
		if w.start.After(window) { // a late caller of an older window
			return w.n
		}
		w = refusalWindow{start: window}
	}
	w.n++
	t.refusals[advertiser] = w
	return w.n
}

func (t *tables) usageAt(now time.Time) []Usage {
	by := map[string]*Usage{}
	get := func(name string) *Usage {
		u := by[name]
		if u == nil {
			u = &Usage{Advertiser: name}
			by[name] = u
		}
		return u
	}
	for _, s := range t.sessions {
		if s.Opened.After(now.Add(-Day)) && !s.Opened.After(now) {
			get(s.Advertiser).Sessions++
		}
	}
	latest := map[string]time.Time{}
	for k, r := range t.usage {
		u := get(k.advertiser)
		if r.ends.After(latest[k.advertiser]) {
			latest[k.advertiser] = r.ends
			u.Epoch, u.Elements = k.epoch, r.used
		}
	}
	out := make([]Usage, 0, len(by))
	for _, u := range by {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Usage) int { return cmp.Compare(a.Advertiser, b.Advertiser) })
	return out
}

func (t *tables) prune(now time.Time) {
	for id, s := range t.sessions {
		if !keepSession(s, now) {
			delete(t.sessions, id)
		}
	}
	for k, u := range t.usage {
		if now.After(u.ends.Add(Day)) {
			delete(t.usage, k)
		}
	}
	for a, w := range t.refusals {
		if now.After(w.start.Add(Day)) {
			delete(t.refusals, a)
		}
	}
}

// Memory is a Store in memory only: nothing survives the process. It is for
// tests and for servers run without a data directory.
type Memory struct {
	mu sync.Mutex
	t  *tables
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{t: newTables()} }

// OpenSession implements Store.
func (m *Memory) OpenSession(_ context.Context, s Session, lim Limits) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.t.checkOpen(&s, lim); err != nil {
		return err
	}
	m.t.applyOpen(s, lim.EpochEnds)
	return nil
}

// Session implements Store.
func (m *Memory) Session(_ context.Context, id string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.t.sessions[id]; s != nil {
		return *s, nil
	}
	return Session{}, ErrNotFound
}

// Reserve implements Store.
func (m *Memory) Reserve(_ context.Context, id string, k ident.Kind, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.t.checkReserve(id, k, n); err != nil {
		return err
	}
	m.t.applyEvaluated(id, k, n)
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, id string, k ident.Kind, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.t.checkRelease(id, k, n); err != nil {
		return err
	}
	m.t.applyEvaluated(id, k, -n)
	return nil
}

// Refused implements Store.
func (m *Memory) Refused(_ context.Context, advertiser string, window time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t.refused(advertiser, window), nil
}

// Usage implements Store.
func (m *Memory) Usage(_ context.Context, now time.Time) ([]Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t.usageAt(now), nil
}

// Prune implements Store.
func (m *Memory) Prune(_ context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t.prune(now)
	return nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
