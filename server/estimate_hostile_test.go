package server

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// sparseSet answers estimate sessions with a valid, consistently announced
// set that holds a quarter of the real set's values: fewer decoys than the
// announced d, which would make a hit more telling than the announced ε.
func sparseSet(t *testing.T) tamper {
	var enc []byte
	return func(w http.ResponseWriter, path string, rec *httptest.ResponseRecorder) {
		switch path {
		case "set":
			pass(w, rec, enc)
		case "sessions":
			editSession(func(s *protocol.SessionResponse) {
				set, err := setcodec.Open(realEstimateSet(), uint64(s.SetSize))
				if err != nil {
					t.Fatal(err)
				}
				var keep []setcodec.Value
				for i, v := range set.Values() {
					if i%4 == 0 {
						keep = append(keep, v)
					}
				}
				if enc, err = setcodec.Encode(keep, set.Bits()); err != nil {
					t.Fatal(err)
				}
				sparse, _ := setcodec.Open(enc, uint64(len(keep)))
				s.SetDigest, s.SetSize, s.SetBytes = protocol.DigestHex(sparse), len(keep), len(enc)
			})(w, path, rec)
		default:
			pass(w, rec, rec.Body.Bytes())
		}
	}
}

// hostileFixture is the real server behind the hostile one.
var hostileFixture *fixture

// realEstimateSet is the real server's estimate set.
func realEstimateSet() []byte {
	enc, _ := hostileFixture.srv.current.Load().setFor(psi.ModeEstimate)
	return enc
}

// TestHostileServerEstimate: a server that misstates estimate mode's
// guarantee, or serves a set that does not honour it, or evaluates under
// another key, gets an error and no report.
func TestHostileServerEstimate(t *testing.T) {
	parent := t
	fixtures := map[bool]*fixture{}
	for _, tc := range []struct {
		name       string
		verifiable bool
		mode       psi.Mode
		fn         tamper
		want       error
	}{
		{"no parameters", false, psi.ModeEstimate, editSession(func(s *protocol.SessionResponse) { s.Estimate = nil }), protocol.ErrBadResponse},
		{"ε understated", false, psi.ModeEstimate, editSession(func(s *protocol.SessionResponse) { s.Estimate.Epsilon = 0.5 }), protocol.ErrBadResponse},
		{"p out of range", false, psi.ModeEstimate, editSession(func(s *protocol.SessionResponse) { s.Estimate.P = 1.5 }), protocol.ErrBadResponse},
		{"d out of range", false, psi.ModeEstimate, editSession(func(s *protocol.SessionResponse) { s.Estimate.D = 0 }), protocol.ErrBadResponse},
		{"L is not set_bits", false, psi.ModeEstimate, editSession(func(s *protocol.SessionResponse) { s.Estimate.Bits++ }), protocol.ErrBadResponse},
		{"estimate parameters in a count session", false, psi.ModeCount, editSession(func(s *protocol.SessionResponse) {
			s.Estimate = &protocol.EstimateInfo{P: 0.5, D: 0.25, Bits: s.SetBits}
		}), protocol.ErrBadResponse},
		{"fewer decoys than announced", false, psi.ModeEstimate, nil, protocol.ErrBadResponse},
		{"verifiable: proof flipped", true, psi.ModeEstimate, editBody("evaluate", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }), psi.ErrProof},
		{"verifiable: the epoch key announced", true, psi.ModeEstimate, editSession(func(s *protocol.SessionResponse) {
			s.PublicKey = hex.EncodeToString(hostileFixture.srv.current.Load().key.PublicKey())
		}), psi.ErrProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fixtures[tc.verifiable]
			if f == nil {
				f = newFixture(parent, tc.verifiable)
				f.addHostile("hostile", psi.ModeCount, psi.ModeEstimate)
				fixtures[tc.verifiable] = f
			}
			hostileFixture = f
			fn := tc.fn
			if fn == nil {
				fn = sparseSet(t)
			}
			ts := hostileServer(t, f, fn)
			c := &protocol.Client{Server: ts.URL, Token: f.tokens["hostile"], HTTP: ts.Client()}
			rep, err := c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: tc.mode})
			if err == nil || rep != nil {
				t.Fatalf("got report %+v and error %v; want no report and an error", rep, err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %q does not wrap %q", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}

// TestHostileServerCachedSetSize: a server that announces another set_size
// for a set the client has cached under its digest (to move the density the
// estimator uses) gets the set checked again, and an error.
func TestHostileServerCachedSetSize(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeEstimate)
	cache := t.TempDir()
	honest := &protocol.Client{Server: f.ts.URL, Token: f.tokens["hostile"], HTTP: f.ts.Client(), CacheDir: cache}
	if _, err := honest.Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeEstimate}); err != nil {
		t.Fatal(err)
	}
	ts := hostileServer(t, f, editSession(func(s *protocol.SessionResponse) { s.SetSize += s.SetSize / 2 }))
	c := &protocol.Client{Server: ts.URL, Token: f.tokens["hostile"], HTTP: ts.Client(), CacheDir: cache}
	rep, err := c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeEstimate})
	if err == nil || rep != nil || !errors.Is(err, protocol.ErrSetDigest) {
		t.Fatalf("inflated set_size with a cached set: report %v, error %v", rep, err)
	}
}
