package server

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/protocol"
)

// TestSessionsOutliveReloads: a session keeps its set and key through
// several reloads of a changed inventory (each a new set in the same
// epoch), served from the state store's record of its epoch and digest.
func TestSessionsOutliveReloads(t *testing.T) {
	f := newFixture(t, false)
	h := f.srv.Handler()
	open := func() protocol.SessionResponse {
		rec := do(h, f.tokens["member"], "POST", protocol.PathSessions, []byte(`{"mode":"count","elements":{"email":20}}`), nil)
		var s protocol.SessionResponse
		if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &s) != nil {
			t.Fatalf("open: %d %s", rec.Code, rec.Body)
		}
		return s
	}
	first := open()
	inv, _ := os.ReadFile(f.invPath)
	lines := strings.SplitAfter(string(inv), "\n")
	digests := map[string]bool{first.SetDigest: true}
	for i := 1; i <= 5; i++ {
		os.WriteFile(f.invPath, []byte(strings.Join(lines[:len(lines)-1-40*i], "")), 0o600)
		if err := f.srv.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		digests[open().SetDigest] = true
	}
	if len(digests) != 6 {
		t.Fatalf("%d distinct sets over 6 inventories", len(digests))
	}
	rec := do(h, f.tokens["member"], "GET", protocol.PathSession+first.ID+"/set", nil, nil)
	if rec.Code != 200 || rec.Header().Get("ETag") != `"`+first.SetDigest+`"` {
		t.Fatalf("the first session's set after 5 reloads: %d, ETag %s", rec.Code, rec.Header().Get("ETag"))
	}
	if rec := do(h, f.tokens["member"], "POST", protocol.PathSession+first.ID+"/evaluate?kind=email", blinded(t, false, 20), elements(20)); rec.Code != 200 {
		t.Fatalf("the first session's batch after 5 reloads: %d %s", rec.Code, rec.Body)
	}
}
