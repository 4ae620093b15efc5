// Package state holds what the server must not forget and what replicas
// must share: sessions, budget usage (sessions per day, elements per epoch
// per advertiser) and refusal counters, behind one interface, Store.
//
// Two stores implement it: the embedded Journal, an append-only file in the
// data directory whose every change is fsynced before it is acted on and
// which is replayed at start (so a SIGKILL loses nothing), and Postgres,
// which lets several replicas share sessions and budgets. Every reservation
// is atomic: no two callers, in one process or in several, can both take
// the last session of the day or the last elements of an epoch.
package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/psimatch/psimatch/psi/ident"
)

// Day is the window of the sessions-per-day budget: any 24 hours.
const Day = 24 * time.Hour

// Errors of a Store. A refused reservation wraps ErrQuotaSessions,
// ErrQuotaElements or ErrOverDeclared in a *QuotaError that says when to
// retry.
var (
	ErrNotFound      = errors.New("state: no such session")
	ErrQuotaSessions = errors.New("state: the advertiser's sessions per day are used up")
	ErrQuotaElements = errors.New("state: the advertiser's elements per epoch are used up")
	ErrOverDeclared  = errors.New("state: the batch exceeds what the session declared")
	ErrInvalid       = errors.New("state: invalid request")
	ErrClosed        = errors.New("state: store is closed")
)

// QuotaError is a refused reservation.
type QuotaError struct {
	Err        error         // ErrQuotaSessions, ErrQuotaElements or ErrOverDeclared
	RetryAfter time.Duration // when the budget frees up; 0 for ErrOverDeclared
	Left       int64         // what is left of the budget that refused
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v (%d left)", e.Err, e.Left)
}

func (e *QuotaError) Unwrap() error { return e.Err }

// Session is a session's record: everything a replica needs to serve any
// request of it. Every string in it was validated by the server (mode and
// kinds come from a fixed vocabulary, the rest the server made).
type Session struct {
	ID         string `json:"id"`
	Advertiser string `json:"advertiser"`
	Mode       string `json:"mode"`
	// Epoch is the epoch's id, Generation the set generation within it
	// (the fingerprint of its eligible set) and Digest the digest of the
	// set the session was given: a replica serves the session only with a
	// set of the same epoch and digest.
	Epoch      string               `json:"epoch"`
	Generation string               `json:"generation,omitempty"`
	Digest     string               `json:"digest"`
	Declared   ident.PerKind[int64] `json:"declared"`
	Evaluated  ident.PerKind[int64] `json:"evaluated"`
	Opened     time.Time            `json:"opened"`
	Expires    time.Time            `json:"expires"`
}

// Limits are the budgets a session is opened against.
type Limits struct {
	SessionsPerDay   int
	ElementsPerEpoch int64
	// EpochEnds is when the session's epoch ends; its element usage is kept
	// a day beyond.
	EpochEnds time.Time
}

// Usage is an advertiser's use of its budgets.
type Usage struct {
	Advertiser string
	// Sessions is the number of sessions opened in the 24 hours before now.
	Sessions int
	// Epoch is the latest epoch with elements charged, Elements their number.
	Epoch    string
	Elements int64
}

// Store keeps sessions, budgets and refusal counters. Its methods are safe
// for concurrent use, and for use by several processes where the store
// is shared (Postgres).
type Store interface {
	// OpenSession records s after reserving, in one step, one of the
	// advertiser's sessions per day (counted over the 24 hours before
	// s.Opened) and the session's declared total against its elements per
	// epoch. A refusal (a *QuotaError) reserves and records nothing: a
	// session refused for its elements costs no session.
	OpenSession(ctx context.Context, s Session, lim Limits) error
	// Session returns the session id; ErrNotFound if there is none.
	Session(ctx context.Context, id string) (Session, error)
	// Reserve adds n elements of kind k to what the session evaluated, if
	// that stays within what it declared; otherwise it returns a
	// *QuotaError wrapping ErrOverDeclared with what is left.
	Reserve(ctx context.Context, id string, k ident.Kind, n int64) error
	// Release hands back n elements reserved but not evaluated.
	Release(ctx context.Context, id string, k ident.Kind, n int64) error
	// Refused counts a refusal of the advertiser in the window starting at
	// window and returns the window's count so far, this one included.
	Refused(ctx context.Context, advertiser string, window time.Time) (int64, error)
	// Usage returns every advertiser's usage at now.
	Usage(ctx context.Context, now time.Time) ([]Usage, error)
	// Prune forgets what no longer counts at now: sessions expired and out
	// of the sessions-per-day window, element usage of epochs ended a day
	// ago, refusal windows older than a day.
	Prune(ctx context.Context, now time.Time) error
	// Close releases the store.
	Close() error
}

// validate checks a session before it is recorded.
func (s *Session) validate() error {
	switch {
	case s.ID == "" || len(s.ID) > 128:
		return fmt.Errorf("%w: session id", ErrInvalid)
	case s.Advertiser == "" || len(s.Advertiser) > 64:
		return fmt.Errorf("%w: advertiser", ErrInvalid)
	case s.Mode == "" || len(s.Mode) > 32 || s.Epoch == "" || len(s.Epoch) > 64 || len(s.Generation) > 64 || len(s.Digest) > 128:
		return fmt.Errorf("%w: mode, epoch or digest", ErrInvalid)
	case s.Declared.Email < 0 || s.Declared.Phone < 0:
		return fmt.Errorf("%w: negative declared count", ErrInvalid)
	case s.Evaluated != ident.PerKind[int64]{}:
		return fmt.Errorf("%w: a new session has evaluated nothing", ErrInvalid)
	case s.Opened.IsZero() || !s.Expires.After(s.Opened):
		return fmt.Errorf("%w: times", ErrInvalid)
	}
	return nil
}

// sessionsRetry is when the oldest of the last limit sessions leaves the
// day, given their open times newest first.
func sessionsRetry(newestFirst []time.Time, limit int, now time.Time) time.Duration {
	if limit <= 0 || len(newestFirst) < limit {
		return time.Second
	}
	return max(newestFirst[limit-1].Add(Day).Sub(now), time.Second)
}

// keepSession reports whether a session still matters at now: it may still
// be served, or it still counts against the sessions per day.
func keepSession(s *Session, now time.Time) bool {
	return now.Before(s.Expires) || now.Before(s.Opened.Add(Day))
}
