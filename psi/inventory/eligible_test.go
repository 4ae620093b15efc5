package inventory

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

func TestZeroEligibleIsRejected(t *testing.T) {
	var e Eligible
	if e.Valid() {
		t.Fatal("the zero Eligible is Valid")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Input of the zero Eligible did not panic")
		}
	}()
	_ = e.Input()
}

func TestYieldedEligibleIsValid(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	const data = "user_id,kind,value,purposes,opted_out\n" +
		"u1,email,Alice@Example.com,advertising,false\n" +
		"u1,phone,+14155550132,security,false\n" +
		"u2,phone,+14155550133,advertising,true\n" +
		"u3,phone,not a phone,advertising,false\n"
	var got []Eligible
	if _, err := Scan(context.Background(), strings.NewReader(data), "i.csv", Auto, p, func(e Eligible) error {
		got = append(got, e)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Valid() {
		t.Fatalf("yielded %d identifiers, want one valid", len(got))
	}
	if in, want := got[0].Input(), ident.FromNormalized(ident.Email, "alice@example.com"); in != want {
		t.Errorf("Input = %x, want %x", in, want)
	}
	if reason, err := p.Classify(Raw{Line: 1, UserID: "u1", Kind: "email", Value: "a@example.com", Purposes: []string{"advertising"}}); reason != Included || err != nil {
		t.Errorf("Classify = %v, %v; want Included", reason, err)
	}
}

// TestEligibleCannotBeForged compiles code outside the package that tries to
// make an Eligible holding a chosen identifier without the policy filter,
// and checks that each attempt fails to compile, while legitimate use
// compiles. If someone adds an exported constructor or exports a field, the
// matching attempt compiles and this test fails.
func TestEligibleCannotBeForged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}

	const header = `package forge

import (
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
)

var in = ident.FromNormalized(ident.Phone, "+14155550132")
var _ = in
`
	tests := []struct {
		name    string
		body    string
		compile bool
	}{
		{"legitimate use", `
func use(e inventory.Eligible) ident.Input {
	if !e.Valid() {
		return ident.Input{}
	}
	return e.Input()
}
var zero inventory.Eligible
var _ = use(zero)`, true},
		{"named fields", `var _ = inventory.Eligible{in: in, valid: true}`, false},
		{"positional fields", `var _ = inventory.Eligible{in, true}`, false},
		{"conversion from a look-alike", `
type lookalike struct {
	in    ident.Input
	valid bool
}
var _ = inventory.Eligible(lookalike{in, true})`, false},
		{"assignment to a field", `
func f() { var e inventory.Eligible; e.in = in; e.valid = true; _ = e }`, false},
	}

	// Build each snippet as a package inside this module through an overlay,
	// so that nothing is written into the source tree.
	tmp := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkgDir := filepath.Join(dir, "testdata", "forge"+string(rune('a'+i)))
			src := filepath.Join(tmp, tc.name+".go")
			if err := os.WriteFile(src, []byte(header+tc.body+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			overlay, err := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(pkgDir, "forge.go"): src}})
			if err != nil {
				t.Fatal(err)
			}
			overlayFile := filepath.Join(tmp, tc.name+".json")
			if err := os.WriteFile(overlayFile, overlay, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(gocmd, "build", "-overlay", overlayFile, "-o", os.DevNull, "./"+filepath.Join("testdata", filepath.Base(pkgDir)))
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			switch {
			case tc.compile && err != nil:
				t.Fatalf("legitimate code does not compile: %v\n%s", err, out)
			case !tc.compile && err == nil:
				t.Fatalf("code outside the package made an Eligible without the policy filter:\n%s", tc.body)
			case !tc.compile && !strings.Contains(string(out), "unexported") && !strings.Contains(string(out), "unknown field") && !strings.Contains(string(out), "cannot convert"):
				t.Fatalf("the forgery failed to compile, but not for the expected reason:\n%s", out)
			}
		})
	}
}

// TestNoExportedFuncReturnsEligible reads the package's source and fails if
// any exported function or method returns an Eligible, or if Eligible gains
// an exported field: either would be a way to make one without the deny-wins
// filter. Eligibles reach other packages only through the yield callback of
// Run, Scan and Result.Yield, after every record has been read.
func TestNoExportedFuncReturnsEligible(t *testing.T) {
	for i := range reflect.TypeFor[Eligible]().NumField() {
		if f := reflect.TypeFor[Eligible]().Field(i); f.IsExported() {
			t.Errorf("Eligible has the exported field %s", f.Name)
		}
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() || fn.Type.Results == nil {
				continue
			}
			recv := ""
			if fn.Recv != nil {
				recv = types.ExprString(fn.Recv.List[0].Type)
			}
			for _, res := range fn.Type.Results.List {
				if !strings.Contains(types.ExprString(res.Type), "Eligible") {
					continue
				}
				t.Errorf("%s: %s.%s returns %s: only the deny-wins filter may make an Eligible",
					fset.Position(fn.Pos()), recv, fn.Name.Name, types.ExprString(res.Type))
			}
		}
	}
}
