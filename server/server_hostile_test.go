package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/state"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
)

// hardened is the fixture's handler behind an http.Server with the same
// timeouts cmd/psimatch/serve.go sets, scaled down so slow senders are cut
// off within a test. httptest servers have no timeouts, so the slow-sender
// and idle-connection cases need this one.
type hardened struct {
	f      *fixture
	srv    *http.Server
	addr   string
	url    string
	client *http.Client
}

// serverTimeouts are the http.Server timeouts a hardened server runs with.
type serverTimeouts struct {
	header, read, write, idle time.Duration
}

// hostileTimeouts are short enough that slow senders are cut off within a
// test, and long enough that an honest request on a loaded two-core machine
// (TLS handshake included: ReadHeaderTimeout bounds it too) is never cut off.
var hostileTimeouts = serverTimeouts{header: time.Second, read: 3 * time.Second, write: 20 * time.Second, idle: time.Second}

// loadTimeouts are for the load test, which checks throughput and memory,
// not timeouts: 32 clients share two cores, so a TLS handshake or an upload
// can wait for seconds, and no timeout may fire.
var loadTimeouts = serverTimeouts{header: 5 * time.Minute, read: 5 * time.Minute, write: 5 * time.Minute, idle: 5 * time.Minute}

func newHardened(t *testing.T, f *fixture) *hardened {
	return newHardenedTimeouts(t, f, hostileTimeouts)
}

// newHardenedTimeouts is newHardened with other timeouts.
func newHardenedTimeouts(t *testing.T, f *fixture, to serverTimeouts) *hardened {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hardened{f: f, addr: ln.Addr().String()}
	h.srv = &http.Server{
		Handler:           f.srv.Handler(),
		ReadHeaderTimeout: to.header,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
		TLSConfig:         &tls.Config{Certificates: f.ts.TLS.Certificates, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
	}
	go h.srv.Serve(tls.NewListener(ln, h.srv.TLSConfig))
	h.url = "https://" + h.addr
	tr := f.ts.Client().Transport.(*http.Transport).Clone()
	h.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		h.srv.Close()
	})
	return h
}

// addHostile registers an advertiser with room for many sessions and
// reloads the registry: modes count only, so members is refused with 403.
func (f *fixture) addHostile(name string, modes ...psi.Mode) {
	f.t.Helper()
	tok, err := advertisers.Add(f.cfg.Advertisers, advertisers.Advertiser{
		Name: name, Modes: modes, MinRows: 1, MaxRows: 100000, SessionsPerDay: 100000, ElementsPerEpoch: 1 << 40,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.tokens[name] = tok
	if err := f.srv.ReloadAdvertisers(); err != nil {
		f.t.Fatal(err)
	}
}

// raw sends one request and returns the status and the decoded error body
// (zero for a 2xx answer), checking that every 4xx is JSON with a reason.
// elements is the header of an evaluate request of n elements.
func elements(n int) map[string]string {
	return map[string]string{"Content-Type": protocol.ContentElements, protocol.HeaderElements: strconv.Itoa(n)}
}

func (h *hardened) raw(t *testing.T, token, method, path string, body io.Reader, header map[string]string) (int, protocol.ErrorResponse, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var er protocol.ErrorResponse
	if resp.StatusCode >= 400 {
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s: server error %d: %s", method, path, resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != protocol.ContentJSON {
			t.Fatalf("%s %s: %d with Content-Type %q: %s", method, path, resp.StatusCode, ct, b)
		}
		if err := json.Unmarshal(b, &er); err != nil || er.Reason == "" || er.Error == "" {
			t.Fatalf("%s %s: %d without a JSON reason: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, er, b
}

// open opens a session by hand and returns it.
func (h *hardened) open(t *testing.T, token string, mode psi.Mode, email, phone int) protocol.SessionResponse {
	t.Helper()
	body, _ := json.Marshal(protocol.SessionRequest{Mode: mode.String(), Elements: protocol.Counts{Email: email, Phone: phone}})
	status, er, b := h.raw(t, token, "POST", protocol.PathSessions, bytes.NewReader(body), map[string]string{"Content-Type": protocol.ContentJSON})
	if status != http.StatusCreated {
		t.Fatalf("open session: %d %s", status, er.Reason)
	}
	var s protocol.SessionResponse
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// blinded returns n honest blinded elements of the fixture's suite.
func blinded(t *testing.T, verifiable bool, n int) []byte {
	t.Helper()
	suite, _ := psi.SuiteByName("ristretto255", verifiable)
	inputs := make([]ident.Input, n)
	for i := range inputs {
		inputs[i][0] = byte(ident.Email)
		copy(inputs[i][1:], fmt.Sprintf("hostile %d", i))
	}
	b, err := psi.NewCountBlinder(suite).Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustStillServe runs a correct match through the hardened server and
// checks the exact planted count.
func (h *hardened) mustStillServe(t *testing.T) {
	t.Helper()
	c := &protocol.Client{Server: h.url, Token: h.f.tokens["hostile"], HTTP: h.client}
	rep, err := c.Match(context.Background(), h.f.list, protocol.MatchOptions{Mode: psi.ModeCount})
	if err != nil {
		t.Fatalf("a correct match after the hostile requests: %v", err)
	}
	if rep.Matched.Email != h.f.truth.OverlapKinds["email"] || rep.Matched.Phone != h.f.truth.OverlapKinds["phone"] {
		t.Fatalf("a correct match after the hostile requests found %+v, planted %v", rep.Matched, h.f.truth.OverlapKinds)
	}
}

// TestHostileElements: malformed element bodies each get a 400 or 413 with
// a JSON reason, nothing is evaluated for them, and the server keeps serving.
func TestHostileElements(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount)
	h := newHardened(t, f)
	tok := f.tokens["hostile"]
	good := blinded(t, false, 4)
	const size = 32
	identity := make([]byte, size)
	highBit := bytes.Clone(good[:size])
	highBit[size-1] |= 0x80
	aboveP := bytes.Repeat([]byte{0xff}, size)
	aboveP[size-1] = 0x7f
	negative := make([]byte, size) // s = 1 is odd, "negative": not canonical
	negative[0] = 1
	notOnCurve := make([]byte, size) // s = 2 is canonical but not a ristretto point
	notOnCurve[0] = 2
	withBad := func(i int, bad []byte) []byte {
		b := bytes.Clone(good)
		copy(b[i*size:], bad)
		return b
	}
	sess := h.open(t, tok, psi.ModeCount, 200, 0)
	path := protocol.PathSession + sess.ID + "/evaluate?kind=email"
	for _, tc := range []struct {
		name   string
		body   []byte
		header string // Psimatch-Elements, "" for none
		status int
		reason string
	}{
		{"identity", withBad(2, identity), "4", 400, "bad_element"},
		{"high bit set", withBad(0, highBit), "4", 400, "bad_element"},
		{"above the field prime", withBad(3, aboveP), "4", 400, "bad_element"},
		{"negative field element", withBad(1, negative), "4", 400, "bad_element"},
		{"not on the curve", withBad(1, notOnCurve), "4", 400, "bad_element"},
		{"header says more", good, "5", 400, "count_mismatch"},
		{"header says fewer", good, "3", 400, "count_mismatch"},
		{"header not a number", good, "four", 400, "count_mismatch"},
		{"header with a sign", good, "+4", 400, "count_mismatch"},
		{"header negative", good, "-1", 400, "count_mismatch"},
		{"body one byte short", good[:len(good)-1], "4", 400, "count_mismatch"},
		{"body one byte long", append(bytes.Clone(good), 0), "4", 400, "count_mismatch"},
		{"body not a multiple, no header", append(bytes.Clone(good), 0), "", 400, "count_missing"},
		{"no header", good, "", 400, "count_missing"},
		{"empty body", nil, "", 400, "count_missing"},
		{"empty body, header 0", nil, "0", 400, "count_mismatch"},
		{"duplicate element", append(bytes.Clone(good[:3*size]), good[size:2*size]...), "4", 400, "duplicate_element"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": protocol.ContentElements}
			if tc.header != "" {
				hdr[protocol.HeaderElements] = tc.header
			}
			status, er, _ := h.raw(t, tok, "POST", path, bytes.NewReader(tc.body), hdr)
			if status != tc.status || er.Reason != tc.reason {
				t.Fatalf("got %d %q (%s), want %d %q", status, er.Reason, er.Error, tc.status, tc.reason)
			}
			if tc.reason == "bad_element" && tc.header == "4" && len(tc.body) == len(good) && !strings.Contains(er.Error, "element ") {
				t.Fatalf("the error does not name the element: %q", er.Error)
			}
		})
	}
	// None of the refused batches used up the session: all 200 still go.
	body := blinded(t, false, 200)
	status, er, b := h.raw(t, tok, "POST", path, bytes.NewReader(body), map[string]string{protocol.HeaderElements: "200"})
	if status != 200 || len(b) != len(body) {
		t.Fatalf("the declared 200 after refusals: %d %q, %d bytes", status, er.Reason, len(b))
	}
	t.Run("beyond the limit", func(t *testing.T) {
		// MaxBatch is 500 elements: 501 announced by Content-Length, and 501
		// sent chunked with no length.
		sess := h.open(t, tok, psi.ModeCount, 600, 0)
		path := protocol.PathSession + sess.ID + "/evaluate?kind=email"
		big := blinded(t, false, 501)
		status, er, _ := h.raw(t, tok, "POST", path, bytes.NewReader(big), elements(501))
		if status != 413 || er.Reason != "too_large" {
			t.Fatalf("Content-Length beyond the limit: %d %q", status, er.Reason)
		}
		status, er, _ = h.raw(t, tok, "POST", path, io.MultiReader(bytes.NewReader(big)), elements(501)) // no length: chunked
		if status != 413 || er.Reason != "too_large" {
			t.Fatalf("chunked beyond the limit: %d %q", status, er.Reason)
		}
		// A 16 MiB control message is cut at 16 KiB: 413, as for any body.
		huge := `{"mode":"count","elements":{"email":10},"x":"` + strings.Repeat("a", 16<<20) + `"}`
		status, er, _ = h.raw(t, tok, "POST", protocol.PathSessions, strings.NewReader(huge), nil)
		if status != 413 || er.Reason != "too_large" {
			t.Fatalf("huge session request: %d %q", status, er.Reason)
		}
	})
	h.mustStillServe(t)
}

// TestHostileMalformedDoesNotRefund is the regression test of a budget
// bypass: a body that is not a whole number of elements was refused without
// reserving its elements, yet the refusal handed them back, so each such
// request let the session evaluate more than it declared.
func TestHostileMalformedDoesNotRefund(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount)
	h := newHardened(t, f)
	tok := f.tokens["hostile"]
	sess := h.open(t, tok, psi.ModeCount, 10, 0)
	path := protocol.PathSession + sess.ID + "/evaluate?kind=email"
	ragged := append(blinded(t, false, 10), 0) // 10 elements and a byte
	for range 5 {
		if status, er, _ := h.raw(t, tok, "POST", path, bytes.NewReader(ragged), elements(10)); status != 400 {
			t.Fatalf("ragged body: %d %q", status, er.Reason)
		}
	}
	if status, er, _ := h.raw(t, tok, "POST", path, bytes.NewReader(blinded(t, false, 10)), elements(10)); status != 200 {
		t.Fatalf("the declared 10: %d %q", status, er.Reason)
	}
	status, er, _ := h.raw(t, tok, "POST", path, bytes.NewReader(blinded(t, false, 10)), elements(10))
	if status != 400 || er.Reason != "over_declared" {
		t.Fatalf("10 more than declared after ragged bodies: %d %q, want 400 over_declared", status, er.Reason)
	}
}

// TestHostileSessions: unknown, foreign, replayed and expired sessions, bad
// kinds and modes, bad tokens at speed.
func TestHostileSessions(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount)
	f.addHostile("other", psi.ModeCount)
	h := newHardened(t, f)
	tok := f.tokens["hostile"]
	el := map[string]string{"Content-Type": protocol.ContentElements}

	t.Run("unknown ids", func(t *testing.T) {
		for _, id := range []string{"0123", strings.Repeat("0", 32), hex.EncodeToString(make([]byte, 16)), "..%2F..%2Fetc%2Fpasswd", strings.Repeat("a", 8000)} {
			for _, p := range []string{"/set", "/evaluate?kind=email"} {
				method := "GET"
				if strings.HasPrefix(p, "/evaluate") {
					method = "POST"
				}
				status, er, _ := h.raw(t, tok, method, protocol.PathSession+id+p, bytes.NewReader(blinded(t, false, 1)), el)
				if status != 404 || er.Reason != "unknown_session" {
					t.Fatalf("%s %.20s%s: %d %q", method, id, p, status, er.Reason)
				}
			}
		}
	})
	t.Run("another advertiser's session", func(t *testing.T) {
		sess := h.open(t, f.tokens["other"], psi.ModeCount, 5, 0)
		status, er, _ := h.raw(t, tok, "POST", protocol.PathSession+sess.ID+"/evaluate?kind=email", bytes.NewReader(blinded(t, false, 1)), el)
		if status != 404 || er.Reason != "unknown_session" {
			t.Fatalf("foreign session: %d %q", status, er.Reason)
		}
		status, er, _ = h.raw(t, tok, "GET", protocol.PathSession+sess.ID+"/set", nil, nil)
		if status != 404 || er.Reason != "unknown_session" {
			t.Fatalf("foreign set: %d %q", status, er.Reason)
		}
	})
	t.Run("replay beyond the declared elements", func(t *testing.T) {
		sess := h.open(t, tok, psi.ModeCount, 3, 2)
		path := protocol.PathSession + sess.ID + "/evaluate?kind="
		three := blinded(t, false, 3)
		if status, er, _ := h.raw(t, tok, "POST", path+"email", bytes.NewReader(three), elements(3)); status != 200 {
			t.Fatalf("first batch: %d %q", status, er.Reason)
		}
		for _, kind := range []string{"email", "email", "phone"} {
			n := 1
			if kind == "phone" {
				n = 3
			}
			status, er, _ := h.raw(t, tok, "POST", path+kind, bytes.NewReader(blinded(t, false, n)), elements(n))
			if status != 400 || er.Reason != "over_declared" {
				t.Fatalf("replayed %s: %d %q", kind, status, er.Reason)
			}
		}
		for _, kind := range []string{"", "sms", "EMAIL", "email&kind=phone"} {
			status, er, _ := h.raw(t, tok, "POST", path+kind, bytes.NewReader(blinded(t, false, 1)), elements(1))
			if kind == "email&kind=phone" {
				// the first value counts: email, which is used up
				if status != 400 || er.Reason != "over_declared" {
					t.Fatalf("kind %q: %d %q", kind, status, er.Reason)
				}
				continue
			}
			if status != 400 || er.Reason != "bad_kind" {
				t.Fatalf("kind %q: %d %q", kind, status, er.Reason)
			}
		}
	})
	t.Run("bad session requests", func(t *testing.T) {
		for _, tc := range []struct{ body, status, reason string }{
			{`{"mode":"members","elements":{"email":10}}`, "403", "mode_not_allowed"},
			{`{"mode":"psi","elements":{"email":10}}`, "400", "bad_mode"},
			{`{"mode":"","elements":{"email":10}}`, "400", "bad_mode"},
			{`{"mode":"count","elements":{"sms":10}}`, "400", "bad_elements"},
			{`{"mode":"count","elements":{"email":-10,"phone":20}}`, "400", "bad_elements"},
			{`{"mode":"count","elements":{"email":9223372036854775807,"phone":9223372036854775807}}`, "400", "below_min_rows"},
			{`{"mode":"count","elements":{"email":100001}}`, "400", "above_max_rows"},
			{`{"mode":"count","elements":{}}`, "400", "below_min_rows"},
			{`{"mode":"count","elements":{"email":1e400}}`, "400", "malformed"},
			{`{"mode":"count","elements":{"email":10},"extra":1}`, "201", ""}, // unknown fields are ignored in v1
			{`{"mode":"count","elements":{"email":10}} {"mode":"members"}`, "400", "malformed"},
			{`{"mode":"count","elements":{"email":10}}0`, "400", "malformed"},
			{`[]`, "400", "malformed"},
			{``, "400", "malformed"},
		} {
			status, er, _ := h.raw(t, tok, "POST", protocol.PathSessions, strings.NewReader(tc.body), nil)
			if strconv.Itoa(status) != tc.status || er.Reason != tc.reason {
				t.Fatalf("%s: %d %q, want %s %s", tc.body, status, er.Reason, tc.status, tc.reason)
			}
		}
		// The counter advertiser of the fixture may not use members mode.
		status, er, _ := h.raw(t, f.tokens["counter"], "POST", protocol.PathSessions, strings.NewReader(`{"mode":"members","elements":{"email":100}}`), nil)
		if status != 403 || er.Reason != "mode_not_allowed" {
			t.Fatalf("members for counter: %d %q", status, er.Reason)
		}
	})
	t.Run("expired session", func(t *testing.T) {
		sess := h.open(t, tok, psi.ModeCount, 5, 0)
		f.advance(time.Hour + time.Minute) // past SessionTTL and the epoch's end
		for _, p := range []string{"/set", "/evaluate?kind=email"} {
			method := map[bool]string{true: "GET", false: "POST"}[p == "/set"]
			status, er, _ := h.raw(t, tok, method, protocol.PathSession+sess.ID+p, bytes.NewReader(blinded(t, false, 1)), el)
			if status != 410 || er.Reason != "session_expired" {
				t.Fatalf("%s after expiry: %d %q", p, status, er.Reason)
			}
		}
		// The record is kept while it counts against the sessions per day,
		// then swept.
		f.advance(state.Day)
		f.srv.expireSessions()
		status, er, _ := h.raw(t, tok, "GET", protocol.PathSession+sess.ID+"/set", nil, nil)
		if status != 404 || er.Reason != "unknown_session" {
			t.Fatalf("after the sweep: %d %q", status, er.Reason)
		}
	})
	h.mustStillServe(t)

	t.Run("bad tokens at speed", func(t *testing.T) {
		for i := range 40 {
			token := []string{"psm_wrong", "", "psm_" + strings.Repeat("A", 43), tok + "x", strings.ToUpper(tok)}[i%5]
			status, er, _ := h.raw(t, token, "POST", protocol.PathSessions, strings.NewReader(`{}`), nil)
			switch {
			case i < 20 && (status != 401 || er.Reason != "unauthorized"):
				t.Fatalf("attempt %d: %d %q, want 401", i+1, status, er.Reason)
			case i >= 20 && (status != 429 || er.Reason != "auth_rate_limited" || er.RetryAfterSeconds <= 0 || er.RetryAfterSeconds > 60):
				t.Fatalf("attempt %d: %d %q retry %d, want 429 within a minute", i+1, status, er.Reason, er.RetryAfterSeconds)
			}
		}
		// The address stays blocked for refused tokens until the minute has
		// passed, but a good token from it is served meanwhile: everyone
		// behind one proxy or NAT is not locked out by one guesser.
		status, er, _ := h.raw(t, tok, "POST", protocol.PathSessions, strings.NewReader(`{}`), nil)
		if status != 400 || er.Reason != "bad_mode" {
			t.Fatalf("good token while the address is blocked: %d %q, want it served (400 bad_mode for {})", status, er.Reason)
		}
		h.mustStillServe(t)
		if status, er, _ := h.raw(t, "psm_wrong", "POST", protocol.PathSessions, strings.NewReader(`{}`), nil); status != 429 || er.Reason != "auth_rate_limited" {
			t.Fatalf("bad token after a good one: %d %q, want still 429", status, er.Reason)
		}
		f.advance(61 * time.Second)
		h.mustStillServe(t)
	})
}

// TestHostileSlowAndIdle: slow headers, slow bodies and many idle
// connections are cut off by the server's timeouts, and a correct match
// still goes through while they are held.
func TestHostileSlowAndIdle(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount)
	h := newHardened(t, f)
	tok := f.tokens["hostile"]
	dial := func(t *testing.T) *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", h.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // a test server's own certificate
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reads until the server closes c, and returns what it
	// sent and how long that took.
	closedWithin := func(t *testing.T, c net.Conn, limit time.Duration) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(limit))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server kept the connection open for %s", limit)
		}
		return string(b), time.Since(start)
	}
	t.Run("slow headers", func(t *testing.T) {
		c := dial(t)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n", protocol.PathSessions, tok)
		for range 3 { // one header byte at a time, never finishing
			time.Sleep(hostileTimeouts.header / 3)
			c.Write([]byte("X"))
		}
		got, d := closedWithin(t, c, time.Minute)
		if strings.Contains(got, "201") {
			t.Fatalf("a session opened for an unfinished request: %q", got)
		}
		t.Logf("slow header sender cut off after %s more", d.Round(time.Millisecond))
	})
	t.Run("slow body", func(t *testing.T) {
		sess := h.open(t, tok, psi.ModeCount, 100, 0)
		c := dial(t)
		fmt.Fprintf(c, "POST %sevaluate?kind=email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nPsimatch-Elements: 100\r\nContent-Length: 3200\r\n\r\n", protocol.PathSession+sess.ID+"/", tok)
		c.Write(blinded(t, false, 1)[:10])
		got, d := closedWithin(t, c, time.Minute)
		if !strings.Contains(got, " 400 ") || !strings.Contains(got, `"reason":"read_error"`) {
			t.Fatalf("slow body: want a 400 read_error answer, got %q", got)
		}
		t.Logf("slow body cut off with 400 read_error after %s", d.Round(time.Millisecond))
		// Nothing was reserved: the session still takes all 100.
		if status, er, _ := h.raw(t, tok, "POST", protocol.PathSession+sess.ID+"/evaluate?kind=email", bytes.NewReader(blinded(t, false, 100)), elements(100)); status != 200 {
			t.Fatalf("after the slow body: %d %q", status, er.Reason)
		}
	})
	t.Run("many idle connections", func(t *testing.T) {
		n := 300
		if testing.Short() {
			n = 100
		}
		base := countGoroutines()
		conns := make([]net.Conn, 0, 2*n)
		for i := range n {
			// Half stop after TCP connect (no TLS handshake), half after the
			// handshake (no request).
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
			conns = append(conns, dial(t))
		}
		h.mustStillServe(t)
		for i, c := range conns {
			closedWithin(t, c, time.Minute)
			if i == 0 {
				t.Logf("%d idle connections held; the server closed them within its timeouts", len(conns))
			}
			c.Close()
		}
		h.client.Transport.(*http.Transport).CloseIdleConnections()
		waitGoroutines(t, base+4)
	})
	h.mustStillServe(t)
}

func countGoroutines() int { return runtime.NumGoroutine() }

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// waitGoroutines waits until at most max goroutines run, for up to a
// minute (a bound for a failure, not a margin an honest run depends on).
func waitGoroutines(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n := countGoroutines()
		if n <= max {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still running, want at most %d:\n%s", n, max, goroutineDump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
