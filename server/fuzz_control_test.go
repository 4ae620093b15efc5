package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// fuzzServer is a small real server for the fuzz targets (which have a
// testing.F, not the fixture's testing.T), with a fixed clock and quotas
// that fuzzing cannot exhaust.
func fuzzServer(tb testing.TB) (*Server, string) {
	tb.Helper()
	dir := tb.TempDir()
	var inv bytes.Buffer
	synth.WriteInventory(&inv, synth.Config{Seed: 1, PlatformIDs: 300, AdvertiserRows: 50})
	advPath := filepath.Join(dir, "advertisers.json")
	tok, err := advertisers.Add(advPath, advertisers.Advertiser{Name: "fuzz", Modes: []psi.Mode{psi.ModeCount, psi.ModeMembers}, MinRows: 1, MaxRows: 1000, SessionsPerDay: 1 << 30, ElementsPerEpoch: 1 << 60})
	if err != nil {
		tb.Fatal(err)
	}
	suite, _ := psi.SuiteByName("ristretto255", false)
	policy, _ := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	srv, err := New(context.Background(), Config{
		Suite: suite, Seed: make([]byte, 32), Advertisers: advPath, Policy: policy, MaxBatch: 64,
		OpenInventory: func(ctx context.Context) (inventory.Source, func() error, error) {
			src, err := inventory.NewSource(bytes.NewReader(inv.Bytes()), "inventory.csv", inventory.CSV)
			return src, func() error { return nil }, err
		},
		Now:    func() time.Time { return now },
		Limits: Limits{RefusalsPerWindow: 1 << 30}, // every refusal is checked, none summarized
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, tok
}

// checkAnswer checks that an answer is a success or a 4xx JSON error with a
// reason: never a 5xx, never an unexplained refusal.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, ok int) {
	t.Helper()
	if rec.Code == ok {
		return
	}
	if rec.Code < 400 || rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
	}
	var er protocol.ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || er.Reason == "" || er.Error == "" {
		t.Fatalf("status %d without a JSON reason: %q", rec.Code, rec.Body.Bytes())
	}
}

// FuzzServerSession sends arbitrary session requests through the handler.
func FuzzServerSession(f *testing.F) {
	srv, tok := fuzzServer(f)
	h := srv.Handler()
	for _, s := range []string{
		`{"mode":"count","elements":{"email":10,"phone":5}}`,
		`{"mode":"members","elements":{"email":1}}`,
		`{"mode":"count","elements":{"email":-1}}`,
		`{"mode":"count","elements":{"email":9223372036854775807,"phone":9223372036854775807}}`,
		`{"mode":"count","elements":{"fax":3}}`,
		`{"mode":"count","elements":null}`,
		`{"mode":"count","elements":{"email":1},"mode":"members"}`,
		`{"mode":"count"}{"mode":"members"}`,
		`{"mode":"\u0063ount","elements":{"email":1.0}}`,
		`[]`, `null`, `"count"`, ``, `{`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", protocol.PathSessions, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, rec, http.StatusCreated)
		if rec.Code != http.StatusCreated {
			return
		}
		var s protocol.SessionResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.ID == "" || (s.Mode != "count" && s.Mode != "members") {
			t.Fatalf("a session answer that does not parse: %q", rec.Body.Bytes())
		}
		var req2 protocol.SessionRequest
		json.Unmarshal(body, &req2)
		if req2.Elements.Email < 0 || req2.Elements.Phone < 0 {
			t.Fatalf("a session with a negative count opened: %q", body)
		}
		total := req2.Elements.Email + req2.Elements.Phone
		if total < 1 || total > 1000 {
			t.Fatalf("a session of %d identifiers opened outside 1..1000: %q", total, body)
		}
	})
}

// FuzzServerEvaluate sends arbitrary element bodies and element-count
// headers to an open session.
func FuzzServerEvaluate(f *testing.F) {
	srv, tok := fuzzServer(f)
	h := srv.Handler()
	suite, _ := psi.SuiteByName("ristretto255", false)
	good, _ := psi.NewCountBlinder(suite).Blind(fuzzInputsN(3))
	f.Add("email", "3", good)
	f.Add("phone", "", good)
	f.Add("email", "2", good)
	f.Add("email", "3", good[:95])
	f.Add("email", "1", make([]byte, 32))
	f.Add("email", "0", []byte{})
	f.Add("sms", "1", good[:32])
	f.Add("email", "65", bytes.Repeat(good[:32], 65))
	f.Fuzz(func(t *testing.T, kind, count string, body []byte) {
		open := httptest.NewRequest("POST", protocol.PathSessions, strings.NewReader(`{"mode":"count","elements":{"email":5,"phone":5}}`))
		open.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, open)
		var s protocol.SessionResponse
		if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &s) != nil {
			t.Fatalf("open: %d %s", rec.Code, rec.Body.Bytes())
		}
		req := httptest.NewRequest("POST", protocol.PathSession+s.ID+"/evaluate?kind="+url.QueryEscape(kind), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if count != "" {
			req.Header.Set(protocol.HeaderElements, strings.Map(func(r rune) rune {
				if r < ' ' || r == 0x7f {
					return -1
				}
				return r
			}, count))
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, rec, http.StatusOK)
		if rec.Code != http.StatusOK {
			return
		}
		n := len(body) / 32
		if len(body)%32 != 0 || n < 1 || n > 5 || rec.Body.Len() != len(body) || rec.Header().Get(protocol.HeaderElements) != strconv.Itoa(n) {
			t.Fatalf("evaluated %d bytes (kind %q, count %q) into %d bytes", len(body), kind, count, rec.Body.Len())
		}
	})
}

func fuzzInputsN(n int) []ident.Input {
	in := make([]ident.Input, n)
	for i := range in {
		in[i][0] = byte(ident.Email)
		copy(in[i][1:], "fuzz "+strconv.Itoa(i))
	}
	return in
}

// roundTripper answers the client from memory: a fake server without a
// socket, so the client's parsing runs at fuzzing speed.
type roundTripper func(r *http.Request) *http.Response

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	resp := f(r)
	resp.Request = r
	return resp, nil
}

func answer(status int, header http.Header, body []byte) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}

// FuzzClientSession feeds the client arbitrary session answers, sets and
// evaluations from a fake server. The client either returns an error or a
// report whose set matched the digest the session announced.
func FuzzClientSession(f *testing.F) {
	srv, tok := fuzzServer(f)
	h := srv.Handler()
	var list bytes.Buffer
	synth.WriteAdvertiser(&list, synth.Config{Seed: 1, PlatformIDs: 300, AdvertiserRows: 50})
	l, err := customers.Read(&list, customers.Options{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: a real exchange's session answer and set.
	rec := httptest.NewRecorder()
	open := httptest.NewRequest("POST", protocol.PathSessions, strings.NewReader(`{"mode":"count","elements":{"email":1}}`))
	open.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(rec, open)
	sessJSON := rec.Body.Bytes()
	var sess protocol.SessionResponse
	json.Unmarshal(sessJSON, &sess)
	rec = httptest.NewRecorder()
	get := httptest.NewRequest("GET", protocol.PathSession+sess.ID+"/set", nil)
	get.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(rec, get)
	setBytes := rec.Body.Bytes()
	f.Add(sessJSON, setBytes, uint8(0))
	f.Add(sessJSON, setBytes[:len(setBytes)-1], uint8(1))
	f.Add(bytes.Replace(sessJSON, []byte(`"count"`), []byte(`"members"`), 1), setBytes, uint8(2))
	f.Add(bytes.Replace(sessJSON, []byte(`"max_batch":64`), []byte(`"max_batch":1`), 1), setBytes, uint8(3))
	f.Add([]byte(`{"id":"x","mode":"count","suite":"ristretto255-SHA512","max_batch":1,"set_digest":"`+strings.Repeat("0", 64)+`","set_bytes":1000000}`), []byte("PSIS"), uint8(4))
	f.Add([]byte(`{}`), []byte{}, uint8(5))
	f.Fuzz(func(t *testing.T, sessionBody, setBody []byte, evalMode uint8) {
		var announced protocol.SessionResponse
		json.Unmarshal(sessionBody, &announced)
		suite, _ := psi.SuiteByName("ristretto255", false)
		key, _ := psi.DeriveEpochKey(suite, make([]byte, 32), "fuzz")
		c := &protocol.Client{Server: "https://psimatch.invalid", Token: "t", HTTP: &http.Client{Transport: roundTripper(func(r *http.Request) *http.Response {
			switch {
			case r.URL.Path == protocol.PathSessions:
				return answer(201, nil, sessionBody)
			case strings.HasSuffix(r.URL.Path, "/set"):
				return answer(200, nil, setBody)
			}
			// Evaluate: honestly, short, long, or garbage.
			in, _ := io.ReadAll(r.Body)
			ev, err := key.Evaluate(in, psi.ModeCount, 0)
			if err != nil {
				return answer(400, nil, []byte(`{"error":"x","reason":"bad_element"}`))
			}
			switch evalMode % 4 {
			case 1:
				return answer(200, nil, ev.Elements[:len(ev.Elements)-1])
			case 2:
				return answer(200, nil, append(ev.Elements, ev.Elements[:32]...))
			case 3:
				clear(ev.Elements[:32])
			}
			return answer(200, nil, ev.Elements)
		})}}
		rep, err := c.Match(context.Background(), l, protocol.MatchOptions{Mode: psi.ModeCount, MaxSetBytes: 1 << 20})
		if err != nil {
			if rep != nil {
				t.Fatal("a report returned with an error")
			}
			return
		}
		set, oerr := setcodec.Open(setBody, uint64(max(announced.SetSize, 0)))
		if oerr != nil || protocol.DigestHex(set) != announced.SetDigest || announced.Mode != "count" || evalMode%4 != 0 {
			t.Fatalf("a report from an invalid exchange: set %v, mode %q, eval %d", oerr, announced.Mode, evalMode%4)
		}
		if rep.Matched.Email > rep.Sent.Email || rep.Matched.Phone > rep.Sent.Phone {
			t.Fatalf("more matched than sent: %+v", rep)
		}
	})
}
