package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// tamper is a hostile server: the fixture's real handler behind a function
// that may rewrite each answer. path is the request's path without the
// session id ("sessions", "set", "evaluate").
type tamper func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder)

func hostileServer(t *testing.T, f *fixture, fn tamper) *httptest.Server {
	t.Helper()
	inner := f.srv.Handler()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		path := "sessions"
		switch {
		case strings.HasSuffix(r.URL.Path, "/set"):
			path = "set"
		case strings.HasSuffix(r.URL.Path, "/evaluate"):
			path = "evaluate"
		}
		fn(w, path, rec)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// pass writes rec as it is, with body instead of its own.
func pass(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// editSession rewrites the session answer.
func editSession(edit func(s *protocol.SessionResponse)) tamper {
	return func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
		if path != "sessions" || rec.Code != http.StatusCreated {
			pass(w, rec, rec.Body.Bytes())
			return
		}
		var s protocol.SessionResponse
		json.Unmarshal(rec.Body.Bytes(), &s)
		edit(&s)
		b, _ := json.Marshal(s)
		pass(w, rec, b)
	}
}

// editBody rewrites the body of the answers to one path.
func editBody(on string, edit func(b []byte) []byte) tamper {
	return func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
		b := rec.Body.Bytes()
		if path == on && rec.Code == http.StatusOK {
			b = edit(bytes.Clone(b))
		}
		pass(w, rec, b)
	}
}

// TestHostileServer: every way a server can lie or break off ends the match
// with a clear error and no report.
func TestHostileServer(t *testing.T) {
	const size = 32
	parent := t
	fixtures := map[bool]*fixture{} // one real server per mode, shared by the cases
	flip := func(i int) func(b []byte) []byte {
		return func(b []byte) []byte {
			if i < 0 {
				i += len(b)
			}
			b[i] ^= 0x01
			return b
		}
	}
	for _, tc := range []struct {
		name       string
		verifiable bool
		mode       psi.Mode
		fn         tamper
		want       error  // errors.Is target, or nil to check text
		text       string // a part of the error's text
	}{
		{"one element missing", false, psi.ModeCount, editBody("evaluate", func(b []byte) []byte { return b[:len(b)-size] }), psi.ErrEvaluationCount, ""},
		{"one element too many", false, psi.ModeCount, editBody("evaluate", func(b []byte) []byte { return append(b, b[:size]...) }), protocol.ErrBadResponse, ""},
		{"half an element", false, psi.ModeCount, editBody("evaluate", func(b []byte) []byte { return b[:len(b)-size/2] }), psi.ErrEvaluationCount, ""},
		{"members: one element missing", false, psi.ModeMembers, editBody("evaluate", func(b []byte) []byte { return b[:len(b)-size] }), psi.ErrEvaluationCount, ""},
		{"identity element", false, psi.ModeCount, editBody("evaluate", func(b []byte) []byte { clear(b[size : 2*size]); return b }), psi.ErrElementIdentity, "element 1"},
		{"non-canonical element", false, psi.ModeMembers, editBody("evaluate", func(b []byte) []byte { b[2*size-1] |= 0x80; return b }), psi.ErrElementEncoding, "element 1"},
		{"empty evaluation", false, psi.ModeCount, editBody("evaluate", func(b []byte) []byte { return nil }), psi.ErrEvaluationCount, ""},
		{"set: one byte flipped", false, psi.ModeCount, editBody("set", flip(30)), protocol.ErrSetDigest, ""},
		{"set: digest flipped", false, psi.ModeCount, editBody("set", flip(-1)), protocol.ErrSetDigest, ""},
		{"set: truncated", false, psi.ModeCount, editBody("set", func(b []byte) []byte { return b[:len(b)/2] }), protocol.ErrBadResponse, ""},
		{"set: not a set", false, psi.ModeCount, editBody("set", func(b []byte) []byte { return []byte("<html>hello</html>") }), protocol.ErrBadResponse, ""},
		{"set: empty", false, psi.ModeCount, editBody("set", func(b []byte) []byte { return nil }), protocol.ErrBadResponse, ""},
		{"set digest does not match the session", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.SetDigest = strings.Repeat("ab", 32) }), protocol.ErrSetDigest, ""},
		{"set size does not match the session", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.SetSize-- }), nil, "set"},
		{"set bits do not match the session", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.SetBits++ }), protocol.ErrSetDigest, ""},
		{"session: no id", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.ID = "" }), protocol.ErrBadResponse, ""},
		{"session: unknown suite", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.Suite = "curve25519-SHA1" }), protocol.ErrBadResponse, ""},
		{"session: other mode", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.Mode = psi.ModeMembers.String() }), protocol.ErrBadResponse, ""},
		{"session: zero batch", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) { s.MaxBatch = 0 }), protocol.ErrBadResponse, ""},
		{"session: not JSON", false, psi.ModeCount, func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
			pass(w, rec, []byte("<html>"))
		}, protocol.ErrBadResponse, ""},
		{"verifiable: proof flipped", true, psi.ModeMembers, editBody("evaluate", flip(-3)), psi.ErrProof, ""},
		{"verifiable: proof missing", true, psi.ModeMembers, editBody("evaluate", stripProofs), psi.ErrProofMissing, ""},
		{"verifiable: elements swapped", true, psi.ModeMembers, editBody("evaluate", func(b []byte) []byte {
			a := bytes.Clone(b[:size])
			copy(b[:size], b[size:2*size])
			copy(b[size:2*size], a)
			return b
		}), psi.ErrProof, ""},
		{"verifiable: other public key", true, psi.ModeMembers, editSession(func(s *protocol.SessionResponse) {
			k, _ := psi.DeriveEpochKey(mustSuite(true), make([]byte, 32), s.Epoch)
			s.PublicKey = hex.EncodeToString(k.PublicKey())
		}), psi.ErrProof, ""},
		{"stops mid-stream", false, psi.ModeCount, func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
			if path != "evaluate" {
				pass(w, rec, rec.Body.Bytes())
				return
			}
			b := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(200)
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, io.ErrUnexpectedEOF, ""},
		{"set stops mid-stream", false, psi.ModeCount, func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
			if path != "set" {
				pass(w, rec, rec.Body.Bytes())
				return
			}
			b := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(200)
			w.Write(b[:len(b)/3])
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		}, io.ErrUnexpectedEOF, ""},
		{"answers 500", false, psi.ModeCount, func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
			if path == "evaluate" {
				http.Error(w, "boom", 500)
				return
			}
			pass(w, rec, rec.Body.Bytes())
		}, nil, "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fixtures[tc.verifiable]
			if f == nil {
				f = newFixture(parent, tc.verifiable)
				f.addHostile("hostile", psi.ModeCount, psi.ModeMembers)
				fixtures[tc.verifiable] = f
			}
			ts := hostileServer(t, f, tc.fn)
			c := &protocol.Client{Server: ts.URL, Token: f.tokens["hostile"], HTTP: ts.Client()}
			rep, err := c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: tc.mode})
			if err == nil || rep != nil {
				t.Fatalf("got report %+v and error %v; want no report and an error", rep, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %q does not wrap %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not say %q", err, tc.text)
			}
			t.Logf("%v", err)
		})
	}
}

func mustSuite(verifiable bool) *psi.Suite {
	s, err := psi.SuiteByName("ristretto255", verifiable)
	if err != nil {
		panic(err)
	}
	return s
}

// stripProofs cuts the DLEQ proofs off a verifiable evaluation body of
// ristretto255 elements: the n elements are followed by ceil(n/ProofChunk)
// proofs of 64 bytes.
func stripProofs(b []byte) []byte {
	for n := len(b) / 32; n > 0; n-- {
		if n*32+(n+psi.ProofChunk-1)/psi.ProofChunk*64 == len(b) {
			return b[:n*32]
		}
	}
	return b
}
