package inventory

import (
	"errors"
	"strings"
	"testing"
)

func mustPolicy(t testing.TB, c Config) *Policy {
	t.Helper()
	p, err := NewPolicy(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func isChanged(err error) bool { return errors.Is(err, ErrChanged) }
