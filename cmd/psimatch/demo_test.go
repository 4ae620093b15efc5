package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDemoMatchesPlantedOverlap(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"psimatch", "demo", "--platform", "3000", "--advertiser", "800"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "matched: 80 ") || !strings.Contains(out.String(), "planted: 80 ") {
		t.Fatalf("output:\n%s", out.String())
	}
}
