package advertisers

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/psimatch/psimatch/psi"
)

// TestLifecycle: revoke refuses the token, rotate-token replaces it (the
// old one refused), Update changes limits and modes but never the token,
// and a bad change leaves the file as it was.
func TestLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "advertisers.json")
	tokA, err := Add(path, Advertiser{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	tokB, _ := Add(path, Advertiser{Name: "globex"})
	auth := func(tok string) string {
		r, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := r.Authenticate(tok); ok {
			return a.Name
		}
		return ""
	}
	if err := Revoke(path, "acme"); err != nil {
		t.Fatal(err)
	}
	if auth(tokA) != "" || auth(tokB) != "globex" {
		t.Fatalf("after revoking acme: acme's token gives %q, globex's %q", auth(tokA), auth(tokB))
	}
	r, _ := Load(path)
	if l := r.List(); l[0].Revoked.IsZero() || !l[1].Revoked.IsZero() {
		t.Fatalf("List after revoke: %+v", l)
	}
	tokA2, err := RotateToken(path, "acme")
	if err != nil || tokA2 == tokA {
		t.Fatal(err)
	}
	if auth(tokA) != "" || auth(tokA2) != "acme" {
		t.Fatalf("after rotating: old %q, new %q", auth(tokA), auth(tokA2))
	}
	if err := Update(path, "globex", func(a *Advertiser) {
		a.Modes = []psi.Mode{psi.ModeCount, psi.ModeMembers}
		a.SessionsPerDay = 2
		a.TokenSHA256 = HashToken("psm_mine") // ignored
	}); err != nil {
		t.Fatal(err)
	}
	r, _ = Load(path)
	g, ok := r.Authenticate(tokB)
	if !ok || g.SessionsPerDay != 2 || !g.Allows(psi.ModeMembers) {
		t.Fatalf("after Update: %+v %v", g, ok)
	}
	if err := Update(path, "globex", func(a *Advertiser) { a.MinRows = -1 }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid update: %v", err)
	}
	if r, _ := Load(path); r.List()[1].MinRows != DefaultMinRows {
		t.Fatal("an invalid update changed the file")
	}
	for _, err := range []error{Revoke(path, "initech"), Update(path, "initech", func(*Advertiser) {})} {
		if !errors.Is(err, ErrUnknown) {
			t.Fatalf("unknown name: %v", err)
		}
	}
	if _, err := RotateToken(path, "initech"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("rotate unknown: %v", err)
	}
}
