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
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
)

// Config configures a Server.
type Config struct {
	Suite *psi.Suite // the epoch's suite and RFC mode
	Seed  []byte     // the 32-byte master seed
	// Dir caches each epoch's set, so a restart reuses it; nil for none.
	Dir *store.Dir
	// Audit receives one JSON object per event; nil for none.
	Audit interface{ Write(event audit.Named) error }
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

	quotas *advertisers.Quotas

	mu       sync.Mutex
	sessions map[string]*session

	badAuth *limiter
	auditMu sync.Mutex
}

type session struct {
	id         string
	advertiser *advertisers.Advertiser
	mode       psi.Mode
	epoch      *epochState
	declared   protocol.Counts
	evaluated  protocol.Counts
	expires    time.Time
}

// New reads the advertisers, derives or loads the current epoch's set (from
// the data directory's cache if present, else by reading the inventory) and
// returns a server ready to serve. Call Run to rotate epochs.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Suite == nil || len(cfg.Seed) != psi.SeedSize || cfg.OpenInventory == nil || cfg.Policy == nil {
		return nil, errors.New("server: Config needs Suite, a 32-byte Seed, OpenInventory and Policy")
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
	s := &Server{
		cfg: cfg, log: cfg.Logger, metrics: newMetrics(),
		quotas: &advertisers.Quotas{}, sessions: map[string]*session{},
		badAuth: newLimiter(20, time.Minute),
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
	st, err := s.loadEpoch(ctx, s.now(), "start", true)
	if err != nil {
		return nil, err
	}
	s.current.Store(st)
	s.metrics.setSize.Set(float64(st.set.Size))
	return s, nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// Run rotates epochs on schedule and expires sessions until ctx ends.
func (s *Server) Run(ctx context.Context) {
	go s.rotate(ctx)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.expireSessions()
		}
	}
}

// Epoch returns the current epoch's name.
func (s *Server) Epoch() string { return s.current.Load().id }

// SetSize returns the current epoch's set size.
func (s *Server) SetSize() int { return s.current.Load().set.Size }

// ReloadAdvertisers re-reads the advertisers file.
func (s *Server) ReloadAdvertisers() error {
	reg, err := advertisers.Load(s.cfg.Advertisers)
	if err != nil {
		return err
	}
	s.regMu.Lock()
	s.reg = reg
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
	mux.Handle("GET "+protocol.PathMetrics, s.metrics.handler())
	mux.HandleFunc("POST "+protocol.PathSessions, s.authed(s.openSession))
	mux.HandleFunc("GET "+protocol.PathSession+"{id}/set", s.authed(s.getSet))
	mux.HandleFunc("POST "+protocol.PathSession+"{id}/evaluate", s.authed(s.evaluate))
	return mux
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
		host := clientHost(r)
		if wait := s.badAuth.blocked(host, s.now()); wait > 0 {
			s.writeError(w, &apiError{status: http.StatusTooManyRequests, reason: "auth_rate_limited",
				msg: "too many refused tokens from this address", retryAfter: wait})
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var a *advertisers.Advertiser
		if ok {
			s.regMu.RLock()
			a, ok = s.reg.Authenticate(strings.TrimSpace(token))
			s.regMu.RUnlock()
		}
		if !ok {
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
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, protocol.MaxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, "malformed", "the session request is not the expected JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "malformed", "the session request has data after its JSON object")
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
	ev := SessionEvent{Advertiser: a.Name, Epoch: st.id, Elements: declared}
	if modeErr == nil {
		ev.Mode = mode.String()
	}
	refuse := func(e *apiError) *apiError {
		ev.Outcome, ev.Reason = "refused", e.reason
		s.audit(ev)
		return e
	}
	if modeErr != nil {
		return refuse(errorf(http.StatusBadRequest, "bad_mode", "mode must be %q or %q", psi.ModeCount, psi.ModeMembers))
	}
	if !a.Allows(mode) {
		return refuse(errorf(http.StatusForbidden, "mode_not_allowed", "mode %s is not allowed for advertiser %s (allowed: %s)", mode, a.Name, modeList(a.Modes)))
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
	if wait, ok := s.quotas.StartSession(a, now); !ok {
		e := errorf(http.StatusTooManyRequests, "quota_sessions", "advertiser %s has used its %d sessions a day", a.Name, a.SessionsPerDay)
		e.retryAfter = wait
		return refuse(e)
	}
	if wait, ok := s.quotas.Charge(a, st.id, int64(total), now, st.end); !ok {
		e := errorf(http.StatusTooManyRequests, "quota_elements", "advertiser %s would exceed its %d elements in epoch %s", a.Name, a.ElementsPerEpoch, st.id)
		e.retryAfter = wait
		return refuse(e)
	}
	id := newSessionID()
	sess := &session{id: id, advertiser: a, mode: mode, epoch: st, declared: declared, expires: now.Add(s.cfg.SessionTTL)}
	ev.Session, ev.Outcome = id, "opened"
	if err := s.audit(ev); err != nil {
		return errAuditUnavailable()
	}
	s.mu.Lock()
	s.sessions[id] = sess
	s.mu.Unlock()
	s.metrics.sessions.WithLabelValues(mode.String()).Inc()
	enc, digest := st.setFor(mode)
	resp := protocol.SessionResponse{
		ID: id, Mode: mode.String(), Epoch: st.id, Suite: s.cfg.Suite.Name(), Verifiable: s.cfg.Suite.Verifiable(),
		PublicKey: hex.EncodeToString(st.key.PublicKey()), SetSize: st.set.Size, SetBits: st.set.Bits,
		SetDigest: digest, SetBytes: len(enc), MaxBatch: s.cfg.MaxBatch, ProofChunk: psi.ProofChunk, Expires: sess.expires,
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

// lookup returns the advertiser's session.
func (s *Server) lookup(r *http.Request, a *advertisers.Advertiser) (*session, *apiError) {
	id := r.PathValue("id")
	s.mu.Lock()
	sess, ok := s.sessions[id]
	s.mu.Unlock()
	if !ok || sess.advertiser.Name != a.Name {
		return nil, errorf(http.StatusNotFound, "unknown_session", "no such session (sessions last %s)", s.cfg.SessionTTL)
	}
	if s.now().After(sess.expires) {
		return nil, errorf(http.StatusGone, "session_expired", "the session expired at %s; open a new one", sess.expires.Format(time.RFC3339))
	}
	return sess, nil
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

func (s *Server) evaluate(w http.ResponseWriter, r *http.Request, a *advertisers.Advertiser) *apiError {
	sess, e := s.lookup(r, a)
	if e != nil {
		return e
	}
	kindName := r.URL.Query().Get("kind")
	kind, err := ident.ParseKind(kindName)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_kind", "query parameter kind must be email or phone")
	}
	ev := EvaluateEvent{Session: sess.id, Advertiser: a.Name, Mode: sess.mode.String(), Epoch: sess.epoch.id, Kind: kind.String()}
	refuse := func(e *apiError) *apiError {
		ev.Outcome, ev.Reason = "refused", e.reason
		s.audit(ev)
		return e
	}
	size := s.cfg.Suite.ElementSize()
	limit := int64(s.cfg.MaxBatch) * int64(size)
	if r.ContentLength > limit {
		return refuse(errorf(http.StatusRequestEntityTooLarge, "too_large", "the body has %d bytes; the limit is %d elements of %d bytes", r.ContentLength, s.cfg.MaxBatch, size))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return refuse(errorf(http.StatusRequestEntityTooLarge, "too_large", "the body exceeds the limit of %d elements of %d bytes", s.cfg.MaxBatch, size))
		}
		return refuse(errorf(http.StatusBadRequest, "read_error", "reading the body: %v", err))
	}
	n := len(body) / size
	if want := r.Header.Get(protocol.HeaderElements); want != "" && want != strconv.Itoa(n) {
		return refuse(errorf(http.StatusBadRequest, "count_mismatch", "%s says %s elements but the body holds %d bytes (%d-byte elements)", protocol.HeaderElements, want, len(body), size))
	}
	if len(body) == 0 || len(body)%size != 0 {
		return refuse(errorf(http.StatusBadRequest, "bad_element", "the body has %d bytes, not a positive multiple of the %d-byte element size", len(body), size))
	}
	// Reserve the elements against what the session declared. Only a
	// reserved batch is handed back when it is refused below.
	s.mu.Lock()
	left := sess.declared.Get(kind) - sess.evaluated.Get(kind)
	if n <= left {
		*sess.evaluated.At(kind) += n
	}
	s.mu.Unlock()
	if n > left {
		return refuse(errorf(http.StatusBadRequest, "over_declared", "the session declared %d %s identifiers; %d are left and this batch has %d", sess.declared.Get(kind), kind, left, n))
	}
	res, err := sess.epoch.key.Evaluate(body, sess.mode, s.cfg.MaxBatch)
	if err != nil {
		s.mu.Lock()
		*sess.evaluated.At(kind) -= n
		s.mu.Unlock()
		return refuse(errorf(http.StatusBadRequest, "bad_element", "%v", err))
	}
	ev.Elements, ev.Outcome = n, "evaluated"
	if err := s.audit(ev); err != nil {
		s.mu.Lock()
		*sess.evaluated.At(kind) -= n
		s.mu.Unlock()
		return errAuditUnavailable()
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
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.sessions {
		if now.After(sess.expires) {
			delete(s.sessions, id)
		}
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
	l.fails[key] = append(ts, now)
}

// modeList names modes for a message: "count, members".
func modeList(ms []psi.Mode) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.String()
	}
	return strings.Join(names, ", ")
}
