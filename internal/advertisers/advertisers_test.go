package advertisers

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/psimatch/psimatch/psi"
)

func TestAddAndAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "advertisers.json")
	tokA, err := Add(path, Advertiser{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := Add(path, Advertiser{Name: "globex", Modes: []psi.Mode{psi.ModeCount, psi.ModeMembers}, MinRows: 10, MaxRows: 100, SessionsPerDay: 2, ElementsPerEpoch: 500})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tokA, TokenPrefix) || len(tokA) != len(TokenPrefix)+43 || tokA == tokB {
		t.Fatalf("tokens %q %q", tokA, tokB)
	}

	// The file holds the hashes, never the tokens, and is 0600.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tokA, tokB, strings.TrimPrefix(tokA, TokenPrefix), strings.TrimPrefix(tokB, TokenPrefix)} {
		if strings.Contains(string(b), tok) {
			t.Fatal("the registry file contains a token")
		}
	}
	if !strings.Contains(string(b), HashToken(tokA)) {
		t.Error("the registry file lacks the token's hash")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}

	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := r.Authenticate(tokA)
	if !ok || a.Name != "acme" {
		t.Fatalf("Authenticate(acme's token) = %v, %v", a, ok)
	}
	want := Advertiser{Name: "acme", TokenSHA256: HashToken(tokA), Modes: []psi.Mode{psi.ModeEstimate}, MinRows: 1000, MaxRows: 10_000_000, SessionsPerDay: 10, ElementsPerEpoch: 50_000_000, Created: a.Created}
	if ja, jw := mustJSON(a), mustJSON(want); ja != jw || a.Created.IsZero() {
		t.Errorf("defaults: %s\nwant %s", ja, jw)
	}
	// Estimate by default; count and members are opt-in.
	if a.Allows(psi.ModeMembers) || a.Allows(psi.ModeCount) || !a.Allows(psi.ModeEstimate) {
		t.Errorf("acme's modes: %v", a.Modes)
	}
	if g, ok := r.Authenticate(tokB); !ok || g.Name != "globex" || !g.Allows(psi.ModeMembers) {
		t.Errorf("Authenticate(globex's token) = %v, %v", g, ok)
	}
	for _, bad := range []string{"", tokA + "x", tokA[:len(tokA)-1], HashToken(tokA), strings.TrimPrefix(tokA, TokenPrefix)} {
		if a, ok := r.Authenticate(bad); ok || a != nil {
			t.Errorf("Authenticate(%q) accepted as %v", bad, a.Name)
		}
	}
	// The result is a copy.
	a.Modes[0] = psi.ModeMembers
	if again, _ := r.Authenticate(tokA); again.Modes[0] != psi.ModeEstimate {
		t.Error("Authenticate returned the registry's own slice")
	}
	if r.Len() != 2 || r.List()[1].Name != "globex" {
		t.Errorf("List: %v", r.List())
	}

	// Duplicate names are refused and the file is unchanged.
	if _, err := Add(path, Advertiser{Name: "acme"}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate Add: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Error("a refused Add changed the file")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAddValidation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "advertisers.json")
	tests := []struct {
		name string
		a    Advertiser
		want string
	}{
		{"empty name", Advertiser{}, "name must be 1 to 64"},
		{"long name", Advertiser{Name: strings.Repeat("a", 65)}, "name must be 1 to 64"},
		{"slash", Advertiser{Name: "a/b"}, "character 2"},
		{"space", Advertiser{Name: "a b"}, "character 2"},
		{"mode", Advertiser{Name: "a", Modes: []psi.Mode{9}}, `mode "mode(9)"`},
		{"mode twice", Advertiser{Name: "a", Modes: []psi.Mode{psi.ModeCount, psi.ModeCount}}, "listed twice"},
		{"min > max", Advertiser{Name: "a", MinRows: 5000, MaxRows: 100}, "min rows 5000 exceed max rows 100"},
		{"negative min", Advertiser{Name: "a", MinRows: -1}, "min rows must be positive"},
		{"negative sessions", Advertiser{Name: "a", SessionsPerDay: -1}, "sessions per day must be positive"},
		{"negative elements", Advertiser{Name: "a", ElementsPerEpoch: -1}, "elements per epoch must be positive"},
		{"elements < min", Advertiser{Name: "a", ElementsPerEpoch: 10}, "no session could ever run"},
	}
	for _, tt := range tests {
		_, err := Add(path, tt.a)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "advertisers: ") {
			t.Errorf("%s: %v, want ErrInvalid containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("refused Adds created the file")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	h := HashToken("psm_x")
	good := `{"name":"a","token_sha256":"` + h + `","modes":["count"],"min_rows":1,"max_rows":2,"sessions_per_day":1,"elements_per_epoch":5,"created":"2026-01-01T00:00:00Z"}`
	tests := map[string]string{
		"not json":      "nope",
		"version":       `{"version":2,"advertisers":[]}`,
		"unknown field": `{"version":1,"advertisers":[],"extra":1}`,
		"typo in entry": `{"version":1,"advertisers":[` + strings.Replace(good, "max_rows", "max_row", 1) + `]}`,
		"bad hash":      `{"version":1,"advertisers":[` + strings.Replace(good, h, "abc", 1) + `]}`,
		"upper hash":    `{"version":1,"advertisers":[` + strings.Replace(good, h, strings.ToUpper(h), 1) + `]}`,
		"duplicate":     `{"version":1,"advertisers":[` + good + "," + good + `]}`,
		"trailing":      `{"version":1,"advertisers":[]} {}`,
	}
	for name, content := range tests {
		path := filepath.Join(dir, name+".json")
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	path := filepath.Join(dir, "good.json")
	os.WriteFile(path, []byte(`{"version":1,"advertisers":[`+good+`]}`), 0o600)
	if r, err := Load(path); err != nil || r.Len() != 1 {
		t.Errorf("good file: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestConcurrentAdd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "advertisers.json")
	// A crashed Add left a temporary file; the next Add removes it.
	stale := filepath.Join(filepath.Dir(path), ".advertisers.json.tmp-123")
	os.WriteFile(stale, []byte("{"), 0o600)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Add(path, Advertiser{Name: "adv" + string(rune('a'+i))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r, err := Load(path)
	if err != nil || r.Len() != n {
		t.Fatalf("after %d concurrent Adds: %v advertisers, %v", n, r.Len(), err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale temporary file survived Add")
	}
}

// TestAuthenticateConstantTime checks the source of Authenticate: it must
// compare with subtle.ConstantTimeCompare and never leave its loop early,
// so its time does not reveal which advertiser matched or how much of a
// hash did.
func TestAuthenticateConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "advertisers.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "Authenticate" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("Authenticate not found")
	}
	calls := map[string]bool{}
	var loops int
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok {
					calls[x.Name+"."+sel.Sel.Name] = true
				}
			}
		case *ast.RangeStmt, *ast.ForStmt:
			loops++
			ast.Inspect(n, func(m ast.Node) bool {
				switch m := m.(type) {
				case *ast.ReturnStmt:
					t.Errorf("%s: return inside the comparison loop", fset.Position(m.Pos()))
				case *ast.BranchStmt:
					t.Errorf("%s: %s inside the comparison loop", fset.Position(m.Pos()), m.Tok)
				case *ast.IfStmt:
					t.Errorf("%s: branch inside the comparison loop", fset.Position(m.Pos()))
				}
				return true
			})
		}
		return true
	})
	if !calls["subtle.ConstantTimeCompare"] {
		t.Error("Authenticate does not call subtle.ConstantTimeCompare")
	}
	for _, bad := range []string{"bytes.Equal", "hmac.Equal", "strings.EqualFold"} {
		if calls[bad] {
			t.Errorf("Authenticate calls %s", bad)
		}
	}
	if loops != 1 {
		t.Errorf("%d loops in Authenticate, want 1", loops)
	}
}
