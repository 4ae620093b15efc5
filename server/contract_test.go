package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// TestContract: the parts of protocol/README.md that apply to every
// request. raw checks that every 4xx answer is JSON with a reason.
func TestContract(t *testing.T) {
	f := newFixture(t, false)
	f.addHostile("hostile", psi.ModeCount, psi.ModeMembers)
	h := newHardened(t, f)
	tok := f.tokens["hostile"]
	jsonCT := map[string]string{"Content-Type": protocol.ContentJSON}
	sess := h.open(t, tok, psi.ModeCount, 10, 0)
	for _, c := range []struct {
		name, method, path string
		body               string
		header             map[string]string
		status             int
		reason             string
	}{
		{"unknown path", "GET", "/v2/sessions", "", nil, 404, "unknown_path"},
		{"unknown path under v1", "POST", protocol.PathSession + sess.ID + "/nothing", "", nil, 404, "unknown_path"},
		{"GET on the session opener", "GET", protocol.PathSessions, "", nil, 405, "method_not_allowed"},
		{"DELETE a set", "DELETE", protocol.PathSession + sess.ID + "/set", "", nil, 405, "method_not_allowed"},
		{"oversized session body", "POST", protocol.PathSessions, `{"mode":"count","pad":"` + strings.Repeat("x", protocol.MaxControlBody) + `"}`, jsonCT, 413, "too_large"},
		{"oversized trailing data", "POST", protocol.PathSessions, `{"mode":"count","elements":{"email":1}}` + strings.Repeat(" ", protocol.MaxControlBody), jsonCT, 413, "too_large"},
		{"unknown fields are ignored", "POST", protocol.PathSessions, `{"mode":"count","elements":{"email":5},"priority":"high","hints":{"a":[1,2]}}`, jsonCT, 201, ""},
		{"JSON with a charset", "POST", protocol.PathSessions, `{"mode":"count","elements":{"email":5}}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}, 201, ""},
		{"session body as text", "POST", protocol.PathSessions, `{"mode":"count","elements":{"email":5}}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"elements as JSON", "POST", protocol.PathSession + sess.ID + "/evaluate?kind=email", "[]", jsonCT, 415, "unsupported_media_type"},
		{"data after the object", "POST", protocol.PathSessions, `{"mode":"count","elements":{"email":5}} {}`, jsonCT, 400, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, er, _ := h.raw(t, tok, c.method, c.path, bytes.NewReader([]byte(c.body)), c.header)
			if status != c.status || er.Reason != c.reason {
				t.Fatalf("%d %q, want %d %q", status, er.Reason, c.status, c.reason)
			}
		})
	}
	h.mustStillServe(t)
}
