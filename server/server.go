package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/audit"
	"github.com/psimatch/psimatch/internal/state"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
)

// AuditLog is where a Server writes its audit events (an *audit.Log).
// Write is for the events that must be logged before the request is
// answered; WriteOptional for refusals and summaries, which may be dropped
// and never use space kept for the others.
type AuditLog interface {
	Write(event audit.Named) error
	WriteOptional(event audit.Named) error
}

// Config configures a Server.
type Config struct {
	Suite *psi.Suite // the epoch's suite and RFC mode
	Seed  []byte     // the 32-byte master seed; nil when Dir holds the ratchet's anchor
	// SharedSeed (replicas sharing --seed-file): each epoch's secret is
	// psi.RatchetOrigin(Seed, epoch), derived from the seed directly so that
	// every replica computes the same keys with no shared ratchet position.
	// The seed is kept; forward secrecy rests on rotating the seed file.
	SharedSeed bool
	// Dir caches each epoch's set, so a restart reuses it; nil for none.
	Dir *store.Dir
	// Audit receives one JSON object per event; nil for none.
	Audit AuditLog
	// Advertisers is the registry file of advertisers and their token hashes.
	Advertisers string
	// OpenInventory opens the inventory for one read, with a function that
	// closes it.
	OpenInventory func(ctx context.Context) (inventory.Source, func() error, error)
	Policy        *inventory.Policy
	// Rotate is the epoch length (default 24h).
	Rotate time.Duration
	// MaxClientRows sizes the truncation of the set (default 2^24).
	MaxClientRows uint64
	// MaxBatch bounds the elements of one evaluate request (default 1<<20).
	MaxBatch int
	// SessionTTL bounds a session's life (default 1h).
	SessionTTL time.Duration
	Logger     *slog.Logger
	// Progress, if set, is called as the platform's identifiers are evaluated.
	Progress func(n int)
	// ProgressTotal, if set, is called with the number of identifiers to
	// evaluate once the inventory scan has ended.
	ProgressTotal func(total int)
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// State keeps sessions, budget usage and refusal counters (default: in
	// memory only). Replicas share one (state.Postgres); see state.go.
	State state.Store
	// Limits bounds refusal logging, evaluations in flight and failed
	// tokens; zero fields take defaults (see limits.go).
	Limits Limits
	// Estimate configures estimate mode (server/estimate.go).
	Estimate EstimateConfig
}

// Server is the platform's side of psimatch. Its Handler serves the v1 API;
// it doesn't listen on its own.
type Server struct {
	cfg     Config
	log     *slog.Logger
	current atomic.Pointer[epochState]
	buildMu sync.Mutex
	metrics *metrics

	regMu sync.RWMutex
	reg   *advertisers.Registry

	regStamp fileStamp // the advertisers file's identity when last read

	epochsMu sync.Mutex
	epochs   []recentEpoch // epoch states sessions may still use, newest last (state.go)

	badAuth  *limiter
	inFlight *inFlight
	refusals *refusalLog
	auditMu  sync.Mutex

	est estimateRuntime // estimate mode's long-lived key (server/estimate.go)
}

// New reads the advertisers, reads the inventory and loads the current
// epoch's set from the data directory's cache when its fingerprint matches,
// else builds it, and returns a server ready to serve. Call Run to rotate epochs.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Suite == nil || cfg.Seed != nil && len(cfg.Seed) != psi.SeedSize || cfg.OpenInventory == nil || cfg.Policy == nil {
		return nil, errors.New("server: Config needs Suite, a 32-byte Seed (or a Dir with a ratchet anchor), OpenInventory and Policy")
	}
	if cfg.Rotate <= 0 {
		cfg.Rotate = 24 * time.Hour
	}
	if cfg.MaxClientRows == 0 {
		cfg.MaxClientRows = psi.DefaultMaxClientRows
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1 << 20
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.State == nil {
		cfg.State = state.NewMemory()
	}
	cfg.Limits = cfg.Limits.withDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Logger, metrics: newMetrics(),
		badAuth:  newLimiter(cfg.Limits.FailedTokens, cfg.Limits.FailedTokenWindow),
		inFlight: newInFlight(cfg.Limits.EvaluationsInFlight),
		refusals: newRefusalLog(),
	}
	s.metrics.epochAge = func() float64 {
		if st := s.current.Load(); st != nil {
			return s.now().Sub(st.start).Seconds()
		}
		return 0
	}
	if err := s.ReloadAdvertisers(); err != nil {
		return nil, err
	}
	if err := s.initEstimate(); err != nil {
		return nil, err
	}
	st, err := s.loadEpoch(ctx, s.now(), "start", true)
	if err != nil {
		return nil, err
	}
	s.current.Store(st)
	s.remember(st)
	s.metrics.setSize.Set(float64(st.set.Size))
	return s, nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// Run rotates epochs on schedule and expires sessions until ctx ends.
func (s *Server) Run(ctx context.Context) {
	go s.rotate(ctx)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	reload := time.NewTicker(s.cfg.Limits.AdvertisersReload)
	defer reload.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.expireSessions()
			s.flushRefusals(false)
		case <-reload.C:
			s.reloadAdvertisersIfChanged()
		}
	}
}

// Epoch returns the current epoch's name.
func (s *Server) Epoch() string { return s.current.Load().id }

// SetSize returns the current epoch's set size.
func (s *Server) SetSize() int { return s.current.Load().set.Size }

// ReloadAdvertisers re-reads the advertisers file: a revoked or rotated
// token is refused, and changed limits apply, from the next request.
func (s *Server) ReloadAdvertisers() error {
	stamp := stampOf(s.cfg.Advertisers)
	reg, err := advertisers.Load(s.cfg.Advertisers)
	if err != nil {
		return err
	}
	s.regMu.Lock()
	s.reg, s.regStamp = reg, stamp
	s.regMu.Unlock()
	return nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+protocol.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST "+protocol.PathSessions, s.authed(s.openSession))
	mux.HandleFunc("GET "+protocol.PathSession+"{id}/set", s.authed(s.getSet))
	mux.HandleFunc("POST "+protocol.PathSession+"{id}/evaluate", s.authed(s.evaluate))
	return s.contract(mux)
}

// apiError is an error answer.
type apiError struct {
	status     int
	reason     string
	msg        string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, reason, format string, a ...any) *apiError {
	return &apiError{status: status, reason: reason, msg: fmt.Sprintf(format, a...)}
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	s.metrics.refusals.WithLabelValues(e.reason).Inc()
	body := protocol.ErrorResponse{Error: e.msg, Reason: e.reason}
	if e.retryAfter > 0 {
		secs := int(math.Ceil(e.retryAfter.Seconds()))
		body.RetryAfterSeconds = secs
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="psimatch"`)
	}
	w.Header().Set("Content-Type", protocol.ContentJSON)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(body)
}

type authedHandler func(w http.ResponseWriter, r *http.Request, a *advertisers.Advertiser) *apiError

// authed checks the bearer token; failed attempts are rate limited per
// client address so tokens cannot be guessed at speed.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A valid token is served whatever the address's record: the
		// limit is on refused tokens, so an address shared by many (a
		// proxy, a NAT) is not locked out by one guesser behind it.
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var a *advertisers.Advertiser
		if ok {
			s.regMu.RLock()
			a, ok = s.reg.Authenticate(strings.TrimSpace(token))
			s.regMu.RUnlock()
		}
		if !ok {
			host := clientHost(r)
			if wait := s.badAuth.blocked(host, s.now()); wait > 0 {
				s.writeError(w, &apiError{status: http.StatusTooManyRequests, reason: "auth_rate_limited",
					msg: "too many refused tokens from this address", retryAfter: wait})
				return
			}
			s.badAuth.fail(host, s.now())
			s.writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "the bearer token was refused"))
			return
		}
		if e := h(w, r, a); e != nil {
			s.writeError(w, e)
		}
	}
}

func clientHost(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return host
}

// SessionEvent is the audit event of a session being opened or refused.
type SessionEvent struct {
	Session    string          `json:"session,omitempty"`
	Advertiser string          `json:"advertiser"`
	Mode       string          `json:"mode,omitempty"` // a valid mode's name only, never the client's text
	Epoch      string          `json:"epoch"`
	Elements   protocol.Counts `json:"elements"`
	Outcome    string          `json:"outcome"` // "opened" or "refused"
	Reason     string          `json:"reason,omitempty"`
}

// EvaluateEvent is the audit event of a batch evaluated in a session.
type EvaluateEvent struct {
	Session    string `json:"session"`
	Advertiser string `json:"advertiser"`
	Mode       string `json:"mode"`
	Epoch      string `json:"epoch"`
	Kind       string `json:"kind"`
	Elements   int    `json:"elements"`
	Outcome    string `json:"outcome"` // "evaluated" or "refused"
	Reason     string `json:"reason,omitempty"`
}

// EventName names the event in the audit log.
func (SessionEvent) EventName() string { return "session" }

// EventName names the event in the audit log.
func (EvaluateEvent) EventName() string { return "evaluate" }

// audit writes an event to the audit log. Refusals and inventory loads are
// logged best effort; an opened session or an evaluated batch that cannot
// be logged is not served (see errAuditUnavailable): every evaluated
// element count is in the log, or nothing was evaluated.
func (s *Server) audit(ev audit.Named) error {
	if s.cfg.Audit == nil {
		return nil
	}
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if err := s.cfg.Audit.Write(ev); err != nil {
		s.log.Error("writing the audit log", "err", err)
		return err
	}
	return nil
}

// errAuditUnavailable answers a request that could not be logged.
func errAuditUnavailable() *apiError {
	e := errorf(http.StatusServiceUnavailable, "audit_unavailable", "the server cannot write its audit log; nothing was evaluated, retry later")
	e.retryAfter = time.Minute
	return e
}

func (s *Server) openSession(w http.ResponseWriter, r *http.Request, a *advertisers.Advertiser) *apiError {
	// The request is decoded with elements as a map so that an unknown kind
	// is refused as bad_elements, not as malformed JSON.
	var req struct {
		Mode     string         `json:"mode"`
		Elements map[string]int `json:"elements"`
	}
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	st := s.current.Load()
	mode, modeErr := psi.ParseMode(req.Mode)
	var declared protocol.Counts
	elementsOK := true
	for name, n := range req.Elements {
		k, err := ident.ParseKind(name)
		if err != nil || n < 0 {
			elementsOK = false
			continue
		}
		*declared.At(k) = n
	}
	// The event holds validated facts only: a mode from the fixed
	// vocabulary (none when the client's was not one), counts of known
	// kinds, the server's own reason.
	ev := SessionEvent{Advertiser: a.Name, Epoch: st.id, Elements: declared}
	if modeErr == nil {
		ev.Mode = mode.String()
	}
	refuse := func(e *apiError) *apiError {
		ev.Outcome, ev.Reason = "refused", e.reason
		return s.refused(r.Context(), a.Name, ev, e)
	}
	if modeErr != nil {
		return refuse(errorf(http.StatusBadRequest, "bad_mode", "mode must be %q, %q or %q", psi.ModeEstimate, psi.ModeCount, psi.ModeMembers))
	}
	if !a.Allows(mode) {
		return refuse(errorf(http.StatusForbidden, "mode_not_allowed", "mode %s is not allowed for advertiser %s (allowed: %s)", mode, a.Name, psi.JoinModes(a.Modes, ", ")))
	}
	if e := estimateUnavailable(mode, st); e != nil {
		return refuse(e)
	}
	if !elementsOK {
		return refuse(errorf(http.StatusBadRequest, "bad_elements", "elements: want non-negative counts for email and phone"))
	}
	total := ident.Sum(declared)
	if int64(total) < a.MinRows {
		return refuse(errorf(http.StatusBadRequest, "below_min_rows", "the session declares %d identifiers; this advertiser's minimum is %d", total, a.MinRows))
	}
	if int64(total) > a.MaxRows || uint64(total) > s.cfg.MaxClientRows {
		limit := min(a.MaxRows, int64(s.cfg.MaxClientRows))
		return refuse(errorf(http.StatusBadRequest, "above_max_rows", "the session declares %d identifiers; the maximum is %d", total, limit))
	}
	now := s.now()
	s.remember(st)
	enc, digest := st.setFor(mode)
	rec := state.Session{
		ID: newSessionID(), Advertiser: a.Name, Mode: mode.String(), Epoch: st.id, Generation: st.fingerprint.String(), Digest: digest,
		Declared: ident.PerKind[int64]{Email: int64(declared.Email), Phone: int64(declared.Phone)},
		Opened:   now, Expires: now.Add(s.cfg.SessionTTL),
	}
	// One step reserves a session of the day and the declared elements of
	// the epoch, in every replica's view: a refusal reserves neither.
	err := s.cfg.State.OpenSession(r.Context(), rec, state.Limits{SessionsPerDay: a.SessionsPerDay, ElementsPerEpoch: a.ElementsPerEpoch, EpochEnds: st.end})
	var q *state.QuotaError
	switch {
	case errors.As(err, &q) && errors.Is(err, state.ErrQuotaSessions):
		e := errorf(http.StatusTooManyRequests, "quota_sessions", "advertiser %s has used its %d sessions a day", a.Name, a.SessionsPerDay)
		e.retryAfter = q.RetryAfter
		return refuse(e)
	case errors.As(err, &q) && errors.Is(err, state.ErrQuotaElements):
		e := errorf(http.StatusTooManyRequests, "quota_elements", "advertiser %s would exceed its %d elements in epoch %s (%d left)", a.Name, a.ElementsPerEpoch, st.id, q.Left)
		e.retryAfter = q.RetryAfter
		return refuse(e)
	case err != nil:
		return s.stateUnavailable(err)
	}
	ev.Session, ev.Outcome = rec.ID, "opened"
	if err := s.audit(ev); err != nil {
		return errAuditUnavailable()
	}
	s.metrics.sessions.WithLabelValues(mode.String()).Inc()
	resp := protocol.SessionResponse{
		ID: rec.ID, Mode: mode.String(), Epoch: st.id, Suite: s.cfg.Suite.Name(), Verifiable: s.cfg.Suite.Verifiable(),
		PublicKey: hex.EncodeToString(st.keyFor(mode).PublicKey()), SetSize: st.set.Size, SetBits: st.set.Bits,
		SetDigest: digest, SetBytes: len(enc), MaxBatch: s.cfg.MaxBatch, ProofChunk: psi.ProofChunk, Expires: rec.Expires,
	}
	if mode == psi.ModeEstimate {
		announceEstimate(&resp, st.est)
	}
	w.Header().Set("Content-Type", protocol.ContentJSON)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(resp)
	return nil
}

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validSessionID reports whether id has the form newSessionID gives: 32
// lowercase hex characters.
func validSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// session is a session as a request serves it: its record in the state
// store and the epoch state (key and set) it was opened with.
type session struct {
	state.Session
	mode  psi.Mode
	epoch *epochState
}

// lookup returns the advertiser's session, from the state store: any
// replica serves any session whose epoch and set it holds.
func (s *Server) lookup(r *http.Request, a *advertisers.Advertiser) (*session, *apiError) {
	id := r.PathValue("id")
	if !validSessionID(id) {
		// Not one newSessionID makes: unknown, without asking the store
		// (and so without the client's bytes reaching a store error or log).
		return nil, errorf(http.StatusNotFound, "unknown_session", "no such session (sessions last %s)", s.cfg.SessionTTL)
	}
	rec, err := s.cfg.State.Session(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) || err == nil && rec.Advertiser != a.Name {
		return nil, errorf(http.StatusNotFound, "unknown_session", "no such session (sessions last %s)", s.cfg.SessionTTL)
	}
	if err != nil {
		return nil, s.stateUnavailable(err)
	}
	if s.now().After(rec.Expires) {
		return nil, errorf(http.StatusGone, "session_expired", "the session expired at %s; open a new one", rec.Expires.Format(time.RFC3339))
	}
	mode, err := psi.ParseMode(rec.Mode)
	if err != nil {
		return nil, s.stateUnavailable(fmt.Errorf("session %s has mode %q", id, rec.Mode))
	}
	st := s.epochFor(rec.Epoch, mode, rec.Digest)
	if st == nil {
		return nil, errSetUnavailable(rec.Epoch)
	}
	return &session{Session: rec, mode: mode, epoch: st}, nil
}

func (s *Server) getSet(w http.ResponseWriter, r *http.Request, a *advertisers.Advertiser) *apiError {
	sess, e := s.lookup(r, a)
	if e != nil {
		return e
	}
	enc, digest := sess.epoch.setFor(sess.mode)
	etag := `"` + digest + `"`
	w.Header().Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", protocol.ContentSet)
	w.Header().Set("Content-Length", strconv.Itoa(len(enc)))
	w.Write(enc)
	return nil
}

// evaluate answers a batch. Its size comes from the Psimatch-Elements
// header and is reserved against what is left of the session's
// declaration before a byte of the body is read; the body is then read up
// to exactly that size, so a request can make the server hold no more
// than what the advertiser was granted. Each advertiser has a bounded
// number of evaluations in flight.
func (s *Server) evaluate(w http.ResponseWriter, r *http.Request, a *advertisers.Advertiser) *apiError {
	sess, e := s.lookup(r, a)
	if e != nil {
		return e
	}
	kind, err := ident.ParseKind(r.URL.Query().Get("kind"))
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_kind", "query parameter kind must be email or phone")
	}
	ev := EvaluateEvent{Session: sess.ID, Advertiser: a.Name, Mode: sess.mode.String(), Epoch: sess.Epoch, Kind: kind.String()}
	refuse := func(e *apiError) *apiError {
		ev.Outcome, ev.Reason = "refused", e.reason
		return s.refused(r.Context(), a.Name, ev, e)
	}
	size := s.cfg.Suite.ElementSize()
	n, e := s.batchSize(r, size)
	if e != nil {
		return refuse(e)
	}
	release, ok := s.inFlight.acquire(a.Name)
	if !ok {
		e := errorf(http.StatusTooManyRequests, "too_many_in_flight", "advertiser %s has %d evaluations in flight; send the next batch when one is answered", a.Name, s.cfg.Limits.EvaluationsInFlight)
		e.retryAfter = time.Second
		return refuse(e)
	}
	defer release()
	err = s.cfg.State.Reserve(r.Context(), sess.ID, kind, int64(n))
	var q *state.QuotaError
	switch {
	case errors.As(err, &q) && errors.Is(err, state.ErrOverDeclared):
		return refuse(errorf(http.StatusBadRequest, "over_declared", "the session declared %d %s identifiers; %d are left and this batch has %d", sess.Declared.Get(kind), kind, q.Left, n))
	case err != nil:
		return s.stateUnavailable(err)
	}
	// From here a refusal hands the reservation back.
	unreserve := func(e *apiError) *apiError {
		if err := s.cfg.State.Release(context.WithoutCancel(r.Context()), sess.ID, kind, int64(n)); err != nil {
			s.log.Error("releasing a refused batch's reservation", "session", sess.ID, "err", err)
		}
		return e
	}
	body, e := readBatch(w, r, n, size)
	if e != nil {
		return unreserve(refuse(e))
	}
	if i, j, dup := duplicateElement(body, size); dup {
		return unreserve(refuse(errorf(http.StatusBadRequest, "duplicate_element", "elements %d and %d of the batch are the same; blinded elements are never repeated", i+1, j+1)))
	}
	res, err := sess.epoch.keyFor(sess.mode).Evaluate(body, sess.mode, s.cfg.MaxBatch)
	if err != nil {
		return unreserve(refuse(errorf(http.StatusBadRequest, "bad_element", "%v", err)))
	}
	ev.Elements, ev.Outcome = n, "evaluated"
	if err := s.audit(ev); err != nil {
		return unreserve(errAuditUnavailable())
	}
	s.metrics.elements.WithLabelValues(sess.mode.String()).Add(float64(n))
	w.Header().Set("Content-Type", protocol.ContentElements)
	w.Header().Set(protocol.HeaderElements, strconv.Itoa(n))
	w.Header().Set(protocol.HeaderProofs, strconv.Itoa(len(res.Proofs)/max(s.cfg.Suite.ProofSize(), 1)))
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Elements)+len(res.Proofs)))
	w.Write(res.Elements)
	w.Write(res.Proofs)
	return nil
}

func (s *Server) expireSessions() {
	if err := s.cfg.State.Prune(context.Background(), s.now()); err != nil {
		s.log.Warn("pruning the state store", "err", err)
	}
}
