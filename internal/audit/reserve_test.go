package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReserveKeepsMandatoryEvents plays a disk filled by refusals: optional
// events fail, the mandatory ones get the reserve and are written, and
// optional events stay off until the reserve is restored.
func TestReserveKeepsMandatoryEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path + ".reserve")
	if err != nil || fi.Size() != ReserveBytes || !l.Reserved() {
		t.Fatalf("reserve after Open: %v, %v", fi, err)
	}
	if err := l.WriteOptional(Event{"event": "refusal", "n": 1}); err != nil {
		t.Fatal(err)
	}
	// The disk is full while the reserve takes its space.
	full := true
	l.write = func(f *os.File, b []byte) (int, error) {
		if fi, err := os.Stat(path + ".reserve"); full && err == nil && fi.Mode().IsRegular() {
			f.Write(b[:len(b)/2]) // a partial write, as a full disk makes
			return len(b) / 2, syscall.ENOSPC
		}
		return f.Write(b)
	}
	if err := l.WriteOptional(Event{"event": "refusal", "n": 2}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("optional event on a full disk: %v", err)
	}
	if err := l.Write(Event{"event": "session", "outcome": "opened"}); err != nil {
		t.Fatalf("mandatory event on a full disk: %v", err)
	}
	if l.Reserved() {
		t.Fatal("the reserve is still in place after it was needed")
	}
	// The reserve cannot come back (something sits where it goes): optional
	// events are refused without writing, mandatory ones still go in.
	os.Mkdir(path+".reserve", 0o700)
	if err := l.WriteOptional(Event{"event": "refusal", "n": 3}); !errors.Is(err, ErrNoReserve) {
		t.Fatalf("optional event with the reserve used: %v", err)
	}
	if err := l.Write(Event{"event": "evaluate", "outcome": "evaluated"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + ".reserve")
	full = false // the operator made room
	if err := l.WriteOptional(Event{"event": "refusal", "n": 4}); err != nil || !l.Reserved() {
		t.Fatalf("optional event once the reserve is back: %v", err)
	}
	lines, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range lines {
		got = append(got, e["event"].(string))
	}
	if want := "[refusal session evaluate refusal]"; fmt.Sprint(got) != want {
		t.Fatalf("events %v, want %s", got, want)
	}
}
