package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// TestHostileServerValues: a server that chooses a value the client would
// use in a path, a size or an allocation gets no request built on it: the
// match ends with ErrBadResponse before any set download or evaluation, and
// no file outside the cache directory is touched.
func TestHostileServerValues(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount, psi.ModeMembers)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	victim := filepath.Join(dir, "victim.set")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(s *protocol.SessionResponse)
	}{
		{"id with a slash", func(s *protocol.SessionResponse) { s.ID = "../../healthz" }},
		{"id with a query", func(s *protocol.SessionResponse) { s.ID = s.ID + "?x=1" }},
		{"id with percent", func(s *protocol.SessionResponse) { s.ID = "%2e%2e" }},
		{"id too long", func(s *protocol.SessionResponse) { s.ID = strings.Repeat("a", protocol.MaxIDLength+1) }},
		{"epoch with a terminal escape", func(s *protocol.SessionResponse) { s.Epoch = "\x1b[2J" }},
		{"epoch too long", func(s *protocol.SessionResponse) { s.Epoch = strings.Repeat("9", 1000) }},
		{"digest names a path", func(s *protocol.SessionResponse) { s.SetDigest = "../victim" }},
		{"digest in upper case", func(s *protocol.SessionResponse) { s.SetDigest = strings.ToUpper(s.SetDigest) }},
		{"negative set size", func(s *protocol.SessionResponse) { s.SetSize = -1 }},
		{"huge set size", func(s *protocol.SessionResponse) { s.SetSize = protocol.MaxSetSize + 1 }},
		{"zero set bits", func(s *protocol.SessionResponse) { s.SetBits = 0 }},
		{"huge set bits", func(s *protocol.SessionResponse) { s.SetBits = 1 << 20 }},
		{"negative set bytes", func(s *protocol.SessionResponse) { s.SetBytes = -5 }},
		{"zero set bytes", func(s *protocol.SessionResponse) { s.SetBytes = 0 }},
		{"huge set bytes", func(s *protocol.SessionResponse) { s.SetBytes = protocol.MaxSetBytes + 1 }},
		{"negative batch", func(s *protocol.SessionResponse) { s.MaxBatch = -1 }},
		{"huge batch", func(s *protocol.SessionResponse) { s.MaxBatch = protocol.MaxBatchLimit + 1 }},
		{"short public key", func(s *protocol.SessionResponse) { s.PublicKey = s.PublicKey[:10] }},
		{"long public key", func(s *protocol.SessionResponse) { s.PublicKey += "00" }},
		{"proof chunk on a verifiable claim", func(s *protocol.SessionResponse) { s.Verifiable = true; s.ProofChunk = 0 }},
		{"no expiry", func(s *protocol.SessionResponse) { s.Expires = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var after atomic.Int32 // requests after the session answer
			ts := hostileServer(t, f, func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
				if path != "sessions" {
					after.Add(1)
				}
				editSession(tc.edit)(w, path, rec)
			})
			c := &protocol.Client{Server: ts.URL, Token: f.tokens["hostile"], HTTP: ts.Client(), CacheDir: cache}
			rep, err := c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers})
			if err == nil || rep != nil || !errors.Is(err, protocol.ErrBadResponse) {
				t.Fatalf("report %v, error %v; want ErrBadResponse", rep, err)
			}
			if n := after.Load(); n != 0 {
				t.Fatalf("%d requests sent after the bad answer", n)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
				t.Fatalf("a file outside the cache was touched: %q %v", b, err)
			}
			t.Log(err)
		})
	}
}

// TestClientRefusesBadAddressAndToken: a server address without a scheme
// and a token with a line break are refused before anything is sent.
func TestClientRefusesBadAddressAndToken(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount)
	var sent atomic.Int32
	ts := hostileServer(t, f, func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
		sent.Add(1)
		pass(w, rec, rec.Body.Bytes())
	})
	for _, tc := range []struct {
		server, token string
		want          error
	}{
		{strings.TrimPrefix(ts.URL, "https://"), f.tokens["hostile"], protocol.ErrServerURL},
		{"ftp://" + strings.TrimPrefix(ts.URL, "https://"), f.tokens["hostile"], protocol.ErrServerURL},
		{ts.URL, f.tokens["hostile"] + "\r\n", protocol.ErrToken},
		{ts.URL, "", protocol.ErrToken},
	} {
		c := &protocol.Client{Server: tc.server, Token: tc.token, HTTP: ts.Client()}
		if _, err := c.Match(context.Background(), f.list, protocol.MatchOptions{}); !errors.Is(err, tc.want) {
			t.Errorf("%q %q: %v, want %v", tc.server, tc.token, err, tc.want)
		} else if strings.Contains(err.Error(), f.tokens["hostile"]) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	if n := sent.Load(); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}
