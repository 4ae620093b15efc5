package protocol

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
)

// TestMembersNeedsRowIndex: a members match of a list read without its row
// index is refused before anything is sent (its answer is given per row).
func TestMembersNeedsRowIndex(t *testing.T) {
	list, err := customers.Read(strings.NewReader("email\na@example.com\n"), customers.Options{SkipRowIndex: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Server: "https://127.0.0.1:1", Token: strings.Repeat("a", 43)}
	if _, err := c.Match(context.Background(), list, MatchOptions{Mode: psi.ModeMembers}); !errors.Is(err, ErrNoRowIndex) {
		t.Fatalf("got %v, want ErrNoRowIndex", err)
	}
	if c.sent.Load() != 0 {
		t.Fatal("bytes were sent")
	}
}
