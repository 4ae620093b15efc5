package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsageErrors: unknown commands and flags exit 2 with a hint.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"psimatch", "nope"}, {"psimatch", "match", "--no-such-flag"}, {"psimatch", "normalize"}} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), "psimatch: error:") {
			t.Errorf("%v: no error line:\n%s", args, errb.String())
		}
	}
}
