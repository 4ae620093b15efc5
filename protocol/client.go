package protocol

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// Client is the advertiser's side: it opens a session, fetches the epoch's
// set (from its cache when the digest is known), sends its blinded
// identifiers one batch per kind and looks the answers up.
type Client struct {
	// Server is the base URL, such as https://psi.example.net:8443.
	Server string
	Token  string
	// HTTP is the client to use; its Transport decides TLS (nil: default).
	HTTP *http.Client
	// CacheDir keeps downloaded sets by digest ("" for no cache).
	CacheDir string
	// Progress, if set, is told about each step: a name and a count done of
	// a total (bytes or elements).
	Progress func(step string, done, total int64)

	sent, received atomic.Int64
}

// MatchOptions selects the mode of a match.
type MatchOptions struct {
	Mode psi.Mode // psi.ModeCount when zero
	// MaxSetBytes bounds the set download (default 4 GiB).
	MaxSetBytes int64
	// RequireVerifiable refuses a server that does not run RFC 9497
	// verifiable mode (members mode: every answer then carries proofs that
	// the published epoch key was used).
	RequireVerifiable bool
}

// ErrNotVerifiable is returned when RequireVerifiable is set and the server
// does not run verifiable mode.
var ErrNotVerifiable = errors.New("protocol: the server does not run verifiable mode, which was required")

// ErrNoRowIndex is returned by a members-mode Match of a list read with
// customers.Options.SkipRowIndex: its answer is given per row.
var ErrNoRowIndex = errors.New("protocol: members mode needs the list's row index (read without customers.Options.SkipRowIndex)")

// Counts holds a number per kind, as {"email": n, "phone": m}.
type Counts = ident.PerKind[int]

// Report is the result of a match, as written by `psimatch match --report`.
type Report struct {
	Mode          psi.Mode `json:"mode"`
	Epoch         string   `json:"epoch"`
	Suite         string   `json:"suite"`
	Verifiable    bool     `json:"verifiable"`
	Rows          int      `json:"rows"`
	Invalid       Counts   `json:"invalid"`
	Sent          Counts   `json:"sent"`
	Matched       Counts   `json:"matched"`
	MatchedRows   *int     `json:"matched_rows,omitempty"`
	ServerSetSize int      `json:"server_set_size"`
	SetBytes      int      `json:"set_bytes"` // size of the coded set (downloaded unless from the cache)
	SetFromCache  bool     `json:"set_from_cache"`
	BytesSent     int64    `json:"bytes_sent"`
	BytesReceived int64    `json:"bytes_received"`
	Seconds       float64  `json:"seconds"`

	// RowMatches, in members mode, holds for each data row (0-based) the
	// kinds that matched. Not part of the JSON report.
	RowMatches [][]ident.Kind `json:"-"`

	// In estimate mode, the estimate (protocol/estimate.go); Matched is
	// then zero and left out of the JSON.
	*EstimateReport
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) progress(step string, done, total int64) {
	if c.Progress != nil {
		c.Progress(step, done, total)
	}
}

// do sends a request with the token and counts the bytes both ways. A
// non-2xx answer becomes a *StatusError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, header http.Header) (*http.Response, error) {
	if err := CheckServerURL(c.Server); err != nil {
		return nil, err
	}
	if err := CheckToken(c.Token); err != nil {
		return nil, err
	}
	u := strings.TrimRight(c.Server, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	c.sent.Add(int64(len(body)))
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		return nil, readStatusError(resp)
	}
	return resp, nil
}

// readBody reads at most limit bytes of a response and counts them.
func (c *Client) readBody(resp *http.Response, limit int64) ([]byte, error) {
	return c.readBodyExpect(resp, limit, 0)
}

// readBodyExpect is readBody for a response expected to be about expect
// bytes (at most limit; 0 for the announced Content-Length): it reads into
// one buffer of that size, where io.ReadAll's growth would hold up to twice
// an evaluated batch at once.
func (c *Client) readBodyExpect(resp *http.Response, limit, expect int64) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrBadResponse, resp.ContentLength, limit)
	}
	if expect <= 0 {
		expect = resp.ContentLength // announced, and at most limit
	}
	b, err := readAllSized(io.LimitReader(resp.Body, limit+1), min(expect, limit))
	c.received.Add(int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBadResponse, limit)
	}
	return b, nil
}

// Session is an open session as the client holds it: the server's
// announcement, checked, and the suite it names. Match uses one; a program
// that drives the steps itself (a test playing a deviating advertiser, say)
// calls Open, then Set and Batch or Evaluate.
type Session struct {
	c     *Client
	Info  SessionResponse
	Mode  psi.Mode
	Suite *psi.Suite
	pk    []byte // the decoded public key
}

// Open opens a session of mode m for the given number of distinct
// identifiers per kind, and checks the server's answer.
func (c *Client) Open(ctx context.Context, m psi.Mode, elements Counts) (*Session, error) {
	body, err := json.Marshal(SessionRequest{Mode: m.String(), Elements: elements})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, PathSessions, body, http.Header{"Content-Type": {ContentJSON}})
	if err != nil {
		return nil, err
	}
	raw, err := c.readBody(resp, MaxControlBody)
	if err != nil {
		return nil, err
	}
	var info SessionResponse
	if err := json.Unmarshal(raw, &info); err != nil || info.ID == "" || info.MaxBatch <= 0 {
		return nil, fmt.Errorf("%w: the session answer is not valid", ErrBadResponse)
	}
	if info.Mode != m.String() {
		return nil, fmt.Errorf("%w: asked for a %s session, the server opened %q", ErrBadResponse, m, printable(info.Mode, 32))
	}
	suite, err := psi.SuiteByName(info.Suite, info.Verifiable)
	if err == nil && info.Suite != suite.Name() {
		err = fmt.Errorf("suite %q is not written as the suite's name %s", printable(info.Suite, 32), suite.Name())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	pk, err := hex.DecodeString(info.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not hex", ErrBadResponse)
	}
	if err := info.check(suite, pk); err != nil {
		return nil, err
	}
	if err := checkEstimateInfo(m, &info); err != nil {
		return nil, err
	}
	return &Session{c: c, Info: info, Mode: m, Suite: suite, pk: pk}, nil
}

// Match runs one session for the list and returns the report. Nothing in
// the report is claimed unless every step checked: a set that does not match
// its digest, an evaluation of the wrong size, a malformed element or a
// failed proof ends the match with an error.
func (c *Client) Match(ctx context.Context, list *customers.List, opt MatchOptions) (*Report, error) {
	start := time.Now()
	if opt.Mode == 0 {
		opt.Mode = psi.ModeCount
	}
	if opt.MaxSetBytes == 0 {
		opt.MaxSetBytes = 4 << 30
	}
	if opt.Mode == psi.ModeMembers && !list.HasRowIndex() {
		return nil, ErrNoRowIndex
	}
	var sent Counts
	for _, k := range ident.Kinds {
		*sent.At(k) = list.Sent(k)
	}
	sess, err := c.Open(ctx, opt.Mode, sent)
	if err != nil {
		return nil, err
	}
	if opt.RequireVerifiable && (!sess.Info.Verifiable || sess.Mode.Shuffled()) {
		return nil, ErrNotVerifiable
	}
	info := &sess.Info
	rep := &Report{Mode: sess.Mode, Epoch: info.Epoch, Suite: info.Suite, Verifiable: info.Verifiable, Rows: list.Rows,
		ServerSetSize: info.SetSize, SetBytes: info.SetBytes, Invalid: list.Invalid, Sent: sent}
	found, err := c.runPipeline(ctx, sess, list, func(ctx context.Context) (*setcodec.Set, error) {
		set, cached, err := sess.Set(ctx, opt.MaxSetBytes)
		rep.SetFromCache = cached
		return set, err
	}, rep)
	if err != nil {
		return nil, err
	}
	if sess.Mode == psi.ModeEstimate {
		if err := estimateReport(rep, info); err != nil {
			return nil, err
		}
	}
	if sess.Mode == psi.ModeMembers {
		rows := 0
		rep.RowMatches = make([][]ident.Kind, list.Rows)
		for r := range list.Rows {
			for _, k := range ident.Kinds {
				if i := list.RowInput(k, r); i >= 0 && found.Get(k)[i] {
					rep.RowMatches[r] = append(rep.RowMatches[r], k)
				}
			}
			if len(rep.RowMatches[r]) > 0 {
				rows++
			}
		}
		rep.MatchedRows = &rows
	}
	rep.BytesSent, rep.BytesReceived = c.sent.Load(), c.received.Load()
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// Batch blinds one batch of inputs of kind k, has it evaluated and looks
// the outputs up in set. In count mode the answers come back shuffled, so
// found[i] says only how many matched, not which: use it only to count.
func (s *Session) Batch(ctx context.Context, set *setcodec.Set, k ident.Kind, inputs []ident.Input) ([]bool, error) {
	c := s.c
	c.progress("blind "+k.String(), 0, int64(len(inputs)))
	b, err := psi.NewBlinder(s.Suite, s.Mode, s.pk)
	if err != nil {
		return nil, err
	}
	blinded, err := b.Blind(inputs)
	if err != nil {
		return nil, err
	}
	c.progress("upload "+k.String(), 0, int64(len(blinded)))
	ev, err := s.Evaluate(ctx, k, blinded)
	if err != nil {
		return nil, err
	}
	c.progress("finalize "+k.String(), 0, int64(len(inputs)))
	out, err := b.Finalize(ev)
	if err != nil {
		return nil, err
	}
	return s.Suite.Lookup(set, out), nil
}

// Evaluate sends blinded elements of kind k (the concatenation of their
// encodings) and returns the server's answer, split into elements and
// proofs and checked for size; the elements themselves are checked by the
// blinder's Finalize.
func (s *Session) Evaluate(ctx context.Context, k ident.Kind, blinded []byte) (*psi.Evaluation, error) {
	size := s.Suite.ElementSize()
	if len(blinded) == 0 || len(blinded)%size != 0 {
		return nil, fmt.Errorf("protocol: %d bytes is not a whole number of %d-byte elements", len(blinded), size)
	}
	n := len(blinded) / size
	h := http.Header{"Content-Type": {ContentElements}, HeaderElements: {strconv.Itoa(n)}}
	resp, err := s.c.do(ctx, http.MethodPost, PathSession+s.Info.ID+"/evaluate?kind="+k.String(), blinded, h)
	if err != nil {
		return nil, err
	}
	want := n * size
	proofs := 0
	if s.Suite.Verifiable() && !s.Mode.Shuffled() {
		proofs = (n + psi.ProofChunk - 1) / psi.ProofChunk
	}
	body, err := s.c.readBodyExpect(resp, int64(want+proofs*s.Suite.ProofSize()), int64(want+proofs*s.Suite.ProofSize()))
	if err != nil {
		return nil, err
	}
	if len(body) < want {
		return nil, fmt.Errorf("%w (sent %d, received %d bytes of elements)", psi.ErrEvaluationCount, n, len(body))
	}
	return &psi.Evaluation{Elements: body[:want], Proofs: body[want:]}, nil
}

// Set returns the session's set: from the cache if a file named by its
// digest is there and checks, else downloaded, checked against the digest
// and cached. cached says which.
func (s *Session) Set(ctx context.Context, limit int64) (set *setcodec.Set, cached bool, err error) {
	return s.c.fetchSet(ctx, &s.Info, limit)
}

// fetchSet returns the session's set: from the cache if a file named by its
// digest is there and checks, else downloaded, checked against the digest
// and cached.
func (c *Client) fetchSet(ctx context.Context, sess *SessionResponse, limit int64) (*setcodec.Set, bool, error) {
	if !validDigest(sess.SetDigest) {
		// It names a cache file: only 64 lowercase hex characters may.
		return nil, false, fmt.Errorf("%w: set digest is not 64 lowercase hex characters", ErrBadResponse)
	}
	maxCount := uint64(max(sess.SetSize, 0))
	var cachePath string
	if c.CacheDir != "" {
		cachePath = filepath.Join(c.CacheDir, sess.SetDigest+".set")
		if b, err := os.ReadFile(cachePath); err == nil {
			if set, err := setcodec.Open(b, maxCount); err == nil && DigestHex(set) == sess.SetDigest && int(set.Len()) == sess.SetSize && set.Bits() == sess.SetBits {
				return set, true, nil
			}
			os.Remove(cachePath) // corrupt or stale: fetch again
		}
	}
	if sess.SetBytes <= 0 || sess.SetSize < 0 {
		return nil, false, fmt.Errorf("%w: set_bytes %d, set_size %d", ErrBadResponse, sess.SetBytes, sess.SetSize)
	}
	limit = min(limit, int64(sess.SetBytes))
	c.progress("download set", 0, limit)
	resp, err := c.do(ctx, http.MethodGet, PathSession+sess.ID+"/set", nil, nil)
	if err != nil {
		return nil, false, err
	}
	b, err := c.readBody(resp, limit)
	if err != nil {
		return nil, false, err
	}
	c.progress("download set", int64(len(b)), limit)
	set, err := setcodec.Open(b, maxCount)
	if err != nil {
		if errors.Is(err, setcodec.ErrDigest) {
			return nil, false, fmt.Errorf("%w: %v", ErrSetDigest, err)
		}
		return nil, false, fmt.Errorf("%w: the set: %v", ErrBadResponse, err)
	}
	if DigestHex(set) != sess.SetDigest || int(set.Len()) != sess.SetSize || set.Bits() != sess.SetBits {
		return nil, false, ErrSetDigest
	}
	if cachePath != "" {
		if err := os.MkdirAll(c.CacheDir, 0o700); err == nil {
			_ = atomicfile.WriteFile(cachePath, b, 0o600) // a cache: failing to keep it costs a download
		}
	}
	return set, false, nil
}

// DigestHex is the hex SHA-256 that closes a coded set: its ETag and the
// session's set_digest.
func DigestHex(s *setcodec.Set) string {
	d := s.Digest()
	return hex.EncodeToString(d[:])
}
