package main

import (
	"bytes"
	"strings"
	"testing"
)

// A local number without its area code is invalid: normalize prints an
// empty line for it and says why on standard error, never echoing it.
func TestNormalizeLocalOnlyPhone(t *testing.T) {
	for _, tc := range []struct{ region, input string }{
		{"US", "555-0100"},
		{"US", "+1 555 0100"},
		{"GB", "7946 0018"},
	} {
		var stdout, stderr bytes.Buffer
		args := []string{"psimatch", "normalize", "--kind", "phone", "--default-region", tc.region}
		status := run(t.Context(), args, strings.NewReader(tc.input+"\n+1 415 555 0100\n"), &stdout, &stderr)
		if status != 1 {
			t.Errorf("%s %q: status %d, want 1", tc.region, tc.input, status)
		}
		if got := stdout.String(); got != "\n+14155550100\n" {
			t.Errorf("%s %q: stdout %q, want an empty line then +14155550100", tc.region, tc.input, got)
		}
		if want := "line 1: phone: a local number without its area code (possible only for local dialling)\n"; stderr.String() != want {
			t.Errorf("%s %q: stderr %q, want %q", tc.region, tc.input, stderr.String(), want)
		}
	}
}
