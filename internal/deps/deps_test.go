// Package deps holds the test that keeps the floor plan: which packages may
// link what. It has no code of its own.
package deps

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists every package that pkg links, from `go list -deps`.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestFloorPlan(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		// The crypto core is a leaf: no phone parsing, no protobuf, no network.
		{"github.com/psimatch/psimatch/psi", []string{"github.com/nyaruka/phonenumbers", "google.golang.org/protobuf", "net/http"}},
		{"github.com/psimatch/psimatch/psi/ident", []string{"github.com/nyaruka/phonenumbers", "github.com/cloudflare/circl"}},
		// A third-party client imports protocol: no server side in it.
		{"github.com/psimatch/psimatch/protocol", []string{
			"github.com/prometheus/client_golang/prometheus",
			"github.com/psimatch/psimatch/server",
			"github.com/psimatch/psimatch/internal/store",
			"github.com/psimatch/psimatch/internal/audit",
			"github.com/psimatch/psimatch/internal/advertisers",
			"github.com/jackc/pgx/v5",
		}},
	} {
		got := map[string]bool{}
		for _, d := range deps(t, tc.pkg) {
			got[d] = true
		}
		for _, f := range tc.forbidden {
			if got[f] {
				t.Errorf("%s links %s, which it must not", tc.pkg, f)
			}
		}
	}
}
