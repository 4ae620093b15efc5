package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/psimatch/psimatch/internal/audit"
)

// Limits bounds what one advertiser or one address can make the server do.
// Zero fields take the defaults below.
type Limits struct {
	// RefusalsPerWindow is how many refused requests of one advertiser are
	// written to the audit log per RefusalWindow (default 20 a minute);
	// past it, refusals are answered 429 refusals_limited without a line
	// each, and one summary line per window counts them.
	RefusalsPerWindow int
	RefusalWindow     time.Duration
	// EvaluationsInFlight bounds one advertiser's concurrent evaluate
	// requests (default 4).
	EvaluationsInFlight int
	// FailedTokens refused tokens from one address per FailedTokenWindow
	// (default 20 a minute) block further refused tokens from it; a valid
	// token is always served.
	FailedTokens      int
	FailedTokenWindow time.Duration
	// AdvertisersReload is how often the advertisers file is checked for
	// changes (default 10s).
	AdvertisersReload time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.RefusalsPerWindow, 20)
	defd(&l.RefusalWindow, time.Minute)
	def(&l.EvaluationsInFlight, 4)
	def(&l.FailedTokens, 20)
	defd(&l.FailedTokenWindow, time.Minute)
	defd(&l.AdvertisersReload, 10*time.Second)
	return l
}

// RefusalsSuppressed is the audit event that counts an advertiser's
// refusals answered without a line of their own in one window.
type RefusalsSuppressed struct {
	Advertiser    string         `json:"advertiser"`
	WindowStart   time.Time      `json:"window_start"`
	WindowSeconds float64        `json:"window_seconds"`
	Refusals      int            `json:"refusals"`
	Reasons       map[string]int `json:"reasons"` // the server's own reason codes
}

// EventName names the event in the audit log.
func (RefusalsSuppressed) EventName() string { return "refusals_suppressed" }

// refusalLog counts, per advertiser, the refusals of the current window
// that got no line.
type refusalLog struct {
	mu sync.Mutex
	by map[string]*RefusalsSuppressed
}

func newRefusalLog() *refusalLog { return &refusalLog{by: map[string]*RefusalsSuppressed{}} }

// add counts one suppressed refusal and returns the summaries of windows it
// closes.
func (l *refusalLog) add(advertiser string, window time.Time, w time.Duration, reason string) (closed []RefusalsSuppressed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.by[advertiser]
	if cur != nil && cur.WindowStart.Before(window) {
		closed = append(closed, *cur)
		cur = nil
	}
	if cur == nil {
		cur = &RefusalsSuppressed{Advertiser: advertiser, WindowStart: window, WindowSeconds: w.Seconds(), Reasons: map[string]int{}}
		l.by[advertiser] = cur
	}
	cur.Refusals++
	cur.Reasons[reason]++
	return closed
}

// take removes and returns the summaries of windows ended by now (all of
// them with all).
func (l *refusalLog) take(now time.Time, all bool) []RefusalsSuppressed {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []RefusalsSuppressed
	for a, s := range l.by {
		if all || !now.Before(s.WindowStart.Add(time.Duration(s.WindowSeconds*float64(time.Second)))) {
			out = append(out, *s)
			delete(l.by, a)
		}
	}
	return out
}

// refused logs a refusal, within the advertiser's allowance of refusal
// lines per window (counted in the state store, so shared by replicas).
// Past it the request is answered 429 refusals_limited and only counted,
// for the window's summary line.
func (s *Server) refused(ctx context.Context, advertiser string, ev audit.Named, e *apiError) *apiError {
	now := s.now()
	w := s.cfg.Limits.RefusalWindow
	window := now.Truncate(w)
	n, err := s.cfg.State.Refused(ctx, advertiser, window)
	if err != nil {
		s.log.Warn("counting a refusal in the state store", "err", err)
	}
	if err == nil && n <= int64(s.cfg.Limits.RefusalsPerWindow) {
		s.auditOptional(ev)
		return e
	}
	for _, sum := range s.refusals.add(advertiser, window, w, e.reason) {
		s.auditOptional(sum)
	}
	limited := errorf(http.StatusTooManyRequests, "refusals_limited", "advertiser %s had more than %d refused requests in %s; this one (%s) was refused too", advertiser, s.cfg.Limits.RefusalsPerWindow, w, e.reason)
	// The later of the window's end and when the refused request could
	// succeed (a quota's own Retry-After).
	limited.retryAfter = max(window.Add(w).Sub(now), e.retryAfter)
	return limited
}

// flushRefusals writes the summary lines of ended windows (of all, at
// shutdown).
func (s *Server) flushRefusals(all bool) {
	for _, sum := range s.refusals.take(s.now(), all) {
		s.auditOptional(sum)
	}
}

// auditOptional writes an event that may be dropped: a refusal, a summary.
// It never uses the audit log's reserve, which is kept for the events that
// must be written (sessions opened, batches evaluated).
func (s *Server) auditOptional(ev audit.Named) {
	if s.cfg.Audit == nil {
		return
	}
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if err := s.cfg.Audit.WriteOptional(ev); err != nil {
		s.log.Warn("an optional audit event was not written", "event", ev.EventName(), "err", err)
	}
}

// limiter counts refused attempts per key in a sliding window and blocks a
// key that exceeds the limit until the window has passed.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	fails  map[string][]time.Time
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, fails: map[string][]time.Time{}}
}

func (l *limiter) prune(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

func (l *limiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.prune(key, now)
	if len(ts) < l.limit {
		return 0
	}
	return l.window - now.Sub(ts[0])
}

func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.prune(key, now)
	if len(l.fails) > 100000 { // bound memory under a flood of addresses
		clear(l.fails)
	}
	if len(ts) >= l.limit { // keep the window's first limit attempts only
		return
	}
	l.fails[key] = append(ts, now)
}

// inFlight bounds each advertiser's concurrent evaluations.
type inFlight struct {
	mu    sync.Mutex
	limit int
	n     map[string]int
}

func newInFlight(limit int) *inFlight { return &inFlight{limit: limit, n: map[string]int{}} }

// acquire takes one of the advertiser's slots without waiting; ok is false
// when all are taken.
func (f *inFlight) acquire(advertiser string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[advertiser] >= f.limit {
		return nil, false
	}
	f.n[advertiser]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n[advertiser]--; f.n[advertiser] <= 0 {
			delete(f.n, advertiser)
		}
	}, true
}

// Close writes the summary lines of refusals not logged yet. The state
// store and the audit log belong to the caller, which closes them after.
func (s *Server) Close() { s.flushRefusals(true) }
