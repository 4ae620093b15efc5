package advertisers

import (
	"sync"
	"time"
)

// Day is the rolling window of Advertiser.SessionsPerDay.
const Day = 24 * time.Hour

// Quotas enforces the per-advertiser session and element limits, keyed by
// advertiser name so that a reloaded Registry keeps the counts. The zero
// Quotas is ready to use and safe for concurrent use.
//
// Usage is kept in memory only: a restart of the server forgets it. A
// server that must carry it over can replay the session events of its
// audit log through StartSession and Charge.
type Quotas struct {
	mu       sync.Mutex
	sessions map[string][]time.Time // start times within the last Day, oldest first
	elements map[epochKey]*epochUse
}

type epochKey struct{ name, epoch string }

type epochUse struct {
	used int64
	ends time.Time
}

// StartSession counts a session of a started at now if fewer than
// a.SessionsPerDay started in the 24 hours before now. Otherwise it counts
// nothing and returns ok false with the time until the oldest of those
// sessions leaves the window.
func (q *Quotas) StartSession(a *Advertiser, now time.Time) (retryAfter time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sessions == nil {
		q.sessions = make(map[string][]time.Time)
	}
	starts := q.sessions[a.Name]
	// Drop the starts that left the window.
	i := 0
	for i < len(starts) && !starts[i].After(now.Add(-Day)) {
		i++
	}
	starts = starts[i:]
	if len(starts) >= a.SessionsPerDay {
		// The limit may have been lowered by a reload: the retry waits for
		// enough old sessions to leave, not just the oldest.
		oldest := starts[len(starts)-a.SessionsPerDay]
		q.sessions[a.Name] = starts
		return max(oldest.Add(Day).Sub(now), time.Second), false
	}
	q.sessions[a.Name] = append(starts, now)
	return 0, true
}

// Charge counts elements evaluated for a in epoch if the epoch's total stays
// within a.ElementsPerEpoch. Otherwise it counts nothing and returns ok
// false with the time until epochEnds, when the next epoch's budget opens.
// A charge stands even if the session later fails: the elements were
// evaluated, and what the advertiser could learn from them is what the
// budget bounds. A session pinned to an epoch may run past its end, so
// Charge keeps an epoch's usage until a Day after epochEnds, then forgets it.
func (q *Quotas) Charge(a *Advertiser, epoch string, elements int64, now, epochEnds time.Time) (retryAfter time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.elements == nil {
		q.elements = make(map[epochKey]*epochUse)
	}
	for k, u := range q.elements {
		if u.ends.Add(Day).Before(now) {
			delete(q.elements, k)
		}
	}
	k := epochKey{a.Name, epoch}
	u := q.elements[k]
	if u == nil {
		u = &epochUse{ends: epochEnds}
		q.elements[k] = u
	}
	if epochEnds.After(u.ends) {
		u.ends = epochEnds
	}
	if elements < 0 || elements > a.ElementsPerEpoch-u.used {
		return max(epochEnds.Sub(now), time.Second), false
	}
	u.used += elements
	return 0, true
}

// Used returns the elements charged to the named advertiser in epoch.
func (q *Quotas) Used(name, epoch string) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if u := q.elements[epochKey{name, epoch}]; u != nil {
		return u.used
	}
	return 0
}
