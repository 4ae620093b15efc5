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

	"github.com/psimatch/psimatch/protocol/store"
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
	Mode string // ModeCount (default) or ModeMembers
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

// Counts holds a number per kind.
type Counts struct {
	Email int `json:"email"`
	Phone int `json:"phone"`
}

func (c *Counts) add(k ident.Kind, n int) {
	if k == ident.Email {
		c.Email += n
	} else {
		c.Phone += n
	}
}

// Report is the result of a match, as written by `psimatch match --report`.
type Report struct {
	Mode          string  `json:"mode"`
	Epoch         string  `json:"epoch"`
	Suite         string  `json:"suite"`
	Verifiable    bool    `json:"verifiable"`
	Rows          int     `json:"rows"`
	Invalid       Counts  `json:"invalid"`
	Sent          Counts  `json:"sent"`
	Matched       Counts  `json:"matched"`
	MatchedRows   *int    `json:"matched_rows,omitempty"`
	ServerSetSize int     `json:"server_set_size"`
	SetBytes      int     `json:"set_bytes"` // size of the coded set (downloaded unless from the cache)
	SetFromCache  bool    `json:"set_from_cache"`
	BytesSent     int64   `json:"bytes_sent"`
	BytesReceived int64   `json:"bytes_received"`
	Seconds       float64 `json:"seconds"`

	// RowMatches, in members mode, holds for each data row (0-based) the
	// kinds that matched. Not part of the JSON report.
	RowMatches [][]ident.Kind `json:"-"`
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
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrBadResponse, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	c.received.Add(int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBadResponse, limit)
	}
	return b, nil
}

// Match runs one session for the list and returns the report. Nothing in
// the report is claimed unless every step checked: a set that does not match
// its digest, an evaluation of the wrong size, a malformed element or a
// failed proof ends the match with an error.
func (c *Client) Match(ctx context.Context, list *customers.List, opt MatchOptions) (*Report, error) {
	start := time.Now()
	if opt.Mode == "" {
		opt.Mode = ModeCount
	}
	if opt.MaxSetBytes == 0 {
		opt.MaxSetBytes = 4 << 30
	}
	req := SessionRequest{Mode: opt.Mode, Elements: map[string]int{}}
	for _, k := range ident.Kinds {
		req.Elements[k.String()] = list.Sent(k)
	}
	body, _ := json.Marshal(req)
	resp, err := c.do(ctx, http.MethodPost, PathSessions, body, http.Header{"Content-Type": {contentJSON}})
	if err != nil {
		return nil, err
	}
	raw, err := c.readBody(resp, maxControlBody)
	if err != nil {
		return nil, err
	}
	var sess SessionResponse
	if err := json.Unmarshal(raw, &sess); err != nil || sess.ID == "" || sess.MaxBatch <= 0 {
		return nil, fmt.Errorf("%w: the session answer is not valid", ErrBadResponse)
	}
	if sess.Mode != opt.Mode {
		return nil, fmt.Errorf("%w: asked for a %s session, the server opened %q", ErrBadResponse, opt.Mode, sess.Mode)
	}
	if opt.RequireVerifiable && (!sess.Verifiable || sess.Mode != ModeMembers) {
		return nil, ErrNotVerifiable
	}
	suite, err := psi.SuiteByName(sess.Suite, sess.Verifiable)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if sess.Verifiable && sess.ProofChunk != psi.ProofChunk {
		return nil, fmt.Errorf("%w: proof chunk %d, this client proves chunks of %d", ErrBadResponse, sess.ProofChunk, psi.ProofChunk)
	}
	rep := &Report{Mode: sess.Mode, Epoch: sess.Epoch, Suite: sess.Suite, Verifiable: sess.Verifiable, Rows: list.Rows, ServerSetSize: sess.SetSize, SetBytes: sess.SetBytes}
	for _, k := range ident.Kinds {
		rep.Invalid.add(k, list.Invalid[k])
		rep.Sent.add(k, list.Sent(k))
	}
	set, cached, err := c.fetchSet(ctx, &sess, opt.MaxSetBytes)
	if err != nil {
		return nil, err
	}
	rep.SetFromCache = cached
	found := [3][]bool{}
	for _, k := range ident.Kinds {
		inputs := list.Inputs[k]
		found[k] = make([]bool, 0, len(inputs))
		for lo := 0; lo < len(inputs); lo += sess.MaxBatch {
			hi := min(len(inputs), lo+sess.MaxBatch)
			f, err := c.batch(ctx, &sess, suite, set, k, inputs[lo:hi])
			if err != nil {
				return nil, fmt.Errorf("%s batch of %d: %w", k, hi-lo, err)
			}
			found[k] = append(found[k], f...)
			for _, m := range f {
				if m {
					rep.Matched.add(k, 1)
				}
			}
			c.progress("match "+k.String(), int64(hi), int64(len(inputs)))
		}
	}
	if sess.Mode == ModeMembers {
		rows := 0
		rep.RowMatches = make([][]ident.Kind, list.Rows)
		for r := range list.Rows {
			for _, k := range ident.Kinds {
				if i := list.RowInput(k, r); i >= 0 && found[k][i] {
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

// batch blinds one batch, has it evaluated and looks the outputs up. In
// count mode the answers come back shuffled, so found[i] says only how many
// matched, not which: the caller uses it only to count.
func (c *Client) batch(ctx context.Context, sess *SessionResponse, suite *psi.Suite, set *setcodec.Set, k ident.Kind, inputs []ident.Input) ([]bool, error) {
	var (
		blinded []byte
		err     error
		count   *psi.CountBlinder
		members *psi.MembersBlinder
	)
	c.progress("blind "+k.String(), 0, int64(len(inputs)))
	if sess.Mode == ModeCount {
		count = psi.NewCountBlinder(suite)
		blinded, err = count.Blind(inputs)
	} else {
		pk, herr := hex.DecodeString(sess.PublicKey)
		if herr != nil {
			return nil, fmt.Errorf("%w: public key is not hex", ErrBadResponse)
		}
		if members, err = psi.NewMembersBlinder(suite, pk); err != nil {
			return nil, err
		}
		blinded, err = members.Blind(inputs)
	}
	if err != nil {
		return nil, err
	}
	h := http.Header{"Content-Type": {contentElements}, HeaderElements: {strconv.Itoa(len(inputs))}}
	c.progress("upload "+k.String(), 0, int64(len(blinded)))
	resp, err := c.do(ctx, http.MethodPost, PathSession+sess.ID+"/evaluate?kind="+k.String(), blinded, h)
	if err != nil {
		return nil, err
	}
	size := suite.ElementSize()
	want := len(inputs) * size
	proofs := 0
	if suite.Verifiable() && sess.Mode == ModeMembers {
		proofs = (len(inputs) + psi.ProofChunk - 1) / psi.ProofChunk
	}
	body, err := c.readBody(resp, int64(want+proofs*suite.ProofSize()))
	if err != nil {
		return nil, err
	}
	if len(body) < want {
		return nil, fmt.Errorf("%w (sent %d, received %d bytes of elements)", psi.ErrEvaluationCount, len(inputs), len(body))
	}
	c.progress("finalize "+k.String(), 0, int64(len(inputs)))
	var out []byte
	if count != nil {
		if len(body) != want {
			return nil, fmt.Errorf("%w: %d bytes after the elements", ErrBadResponse, len(body)-want)
		}
		out, err = count.Finalize(body)
	} else {
		out, err = members.Finalize(&psi.Evaluation{Elements: body[:want], Proofs: body[want:]})
	}
	if err != nil {
		return nil, err
	}
	return suite.Lookup(set, out), nil
}

// fetchSet returns the session's set: from the cache if a file named by its
// digest is there and checks, else downloaded, checked against the digest
// and cached.
func (c *Client) fetchSet(ctx context.Context, sess *SessionResponse, limit int64) (*setcodec.Set, bool, error) {
	if len(sess.SetDigest) != 64 {
		return nil, false, fmt.Errorf("%w: set digest", ErrBadResponse)
	}
	maxCount := uint64(max(sess.SetSize, 0))
	var cachePath string
	if c.CacheDir != "" {
		cachePath = filepath.Join(c.CacheDir, sess.SetDigest+".set")
		if b, err := os.ReadFile(cachePath); err == nil {
			if set, err := setcodec.Open(b, maxCount); err == nil && digestHex(set) == sess.SetDigest {
				return set, true, nil
			}
			os.Remove(cachePath) // corrupt or stale: fetch again
		}
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
	if digestHex(set) != sess.SetDigest || int(set.Len()) != sess.SetSize || set.Bits() != sess.SetBits {
		return nil, false, ErrSetDigest
	}
	if cachePath != "" {
		if err := os.MkdirAll(c.CacheDir, 0o700); err == nil {
			_ = store.WriteFileAtomic(cachePath, b, 0o600) // a cache: failing to keep it costs a download
		}
	}
	return set, false, nil
}

func digestHex(s *setcodec.Set) string {
	d := s.Digest()
	return hex.EncodeToString(d[:])
}
