package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Paths of the version 1 API.
const (
	PathHealth   = "/healthz"
	PathMetrics  = "/metrics"
	PathSessions = "/v1/sessions" // POST: open a session
	// PathSession + id + "/set" (GET) and + "/evaluate" (POST).
	PathSession = "/v1/sessions/"
)

// Content types.
const (
	ContentJSON     = "application/json"
	ContentElements = "application/vnd.psimatch.elements"
	ContentSet      = "application/vnd.psimatch.set"
)

// Header names.
const (
	// HeaderProofs gives the number of DLEQ proofs appended to an evaluation
	// response (verifiable members mode).
	HeaderProofs = "Psimatch-Proofs"
	// HeaderElements gives the number of elements in an element body.
	HeaderElements = "Psimatch-Elements"
)

// SessionRequest opens a session: the mode, and how many distinct
// identifiers of each kind the client will send.
type SessionRequest struct {
	Mode     string `json:"mode"` // a psi.Mode's name
	Elements Counts `json:"elements"`
}

// SessionResponse describes an open session. The session is pinned to its
// epoch: its key and its set do not change while it lasts.
type SessionResponse struct {
	ID         string    `json:"id"`
	Mode       string    `json:"mode"`
	Epoch      string    `json:"epoch"`
	Suite      string    `json:"suite"`
	Verifiable bool      `json:"verifiable"`
	PublicKey  string    `json:"public_key"` // hex of the encoded epoch public key
	SetSize    int       `json:"set_size"`
	SetBits    uint      `json:"set_bits"`
	SetDigest  string    `json:"set_digest"` // hex SHA-256 closing the coded set: its ETag
	SetBytes   int       `json:"set_bytes"`
	MaxBatch   int       `json:"max_batch"`   // elements per evaluate request
	ProofChunk int       `json:"proof_chunk"` // elements per DLEQ proof
	Expires    time.Time `json:"expires"`
	// Estimate, in estimate mode only, announces the deniable set's
	// parameters (see EstimateInfo). There public_key is the estimate key's,
	// set_size the number of one bits of the coded bitmap and set_bits L.
	Estimate *EstimateInfo `json:"estimate,omitempty"`
}

// EstimateInfo announces an estimate-mode session's guarantee and the
// parameters the client's estimator needs.
type EstimateInfo struct {
	P       float64 `json:"p"`       // probability that an eligible value is kept
	D       float64 `json:"d"`       // fraction of the 2^L positions the decoys fill
	Epsilon float64 `json:"epsilon"` // max(ln((p+(1-p)d)/d), ln(1/(1-p)))
	Bits    uint    `json:"bits"`    // L, equal to set_bits
	Key     string  `json:"key"`     // the estimate key's label (changes at a re-key)
}

// ErrorResponse is the JSON body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error  string `json:"error"`  // what is wrong, for people
	Reason string `json:"reason"` // a stable word for programs, such as "quota_sessions"
	// RetryAfterSeconds accompanies 429 (also in the Retry-After header).
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}

// StatusError is an error answer from the server, as the client sees it.
type StatusError struct {
	Status     int
	Reason     string
	Message    string
	RetryAfter time.Duration
	URL        string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// readStatusError turns an error response into a *StatusError.
func readStatusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{Status: resp.StatusCode, URL: resp.Request.URL.Redacted()}
	var er ErrorResponse
	if json.Unmarshal(body, &er) == nil {
		// Server-chosen text reaches the user's terminal: printable and short.
		se.Reason, se.Message = printable(er.Reason, 64), printable(er.Error, 300)
		if er.RetryAfterSeconds > 0 {
			se.RetryAfter = time.Duration(er.RetryAfterSeconds) * time.Second
		}
	}
	if se.RetryAfter == 0 {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			se.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return se
}

// Errors of the client that are not the server's answers.
var (
	ErrSetDigest   = errors.New("protocol: the downloaded set does not match its digest")
	ErrBadResponse = errors.New("protocol: malformed response from the server")
)

const MaxControlBody = 16 << 10

// printable returns s without control characters (terminal escapes, line
// breaks) and cut to at most max bytes.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}
