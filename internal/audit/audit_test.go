package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psimatch/psimatch/psi/inventory"
)

func fixedClock() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 5e6, time.FixedZone("X", 3600)) }

func TestWriteFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.now = fixedClock
	events := []Named{
		testLoad{Source: "inventory.csv", Epoch: "e1", Seconds: 1.5, Summary: inventory.Summary{
			Records: 8, EligibleRecords: 3,
			Excluded:            inventory.Excluded{Invalid: 2, SecurityOnly: 1, NoAdvertisingPurpose: 1, OptedOut: 1},
			EligibleIdentifiers: inventory.Identifiers{Email: 1, Phone: 1},
		}},
		testSession{ID: "s1", Advertiser: "acme", Mode: "count", Epoch: "e1", Elements: 1000, Outcome: "refused", Reason: "quota"},
		Event{"event": "rotation", "time": "ignored", "from": "e1", "to": "e2"},
		Event{"event": "empty"},
	}
	for _, e := range events {
		if err := l.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := `{"time":"2026-05-01T11:00:00.005Z","event":"inventory_load","source":"inventory.csv","epoch":"e1","seconds":1.5,"records":8,"eligible_records":3,"excluded":{"invalid":2,"security_only":1,"no_advertising_purpose":1,"opted_out":1,"user_opted_out_elsewhere":0,"value_shared_with_security_only":0,"value_shared_with_opted_out":0,"value_shared_with_invalid":0},"eligible_identifiers":{"email":1,"phone":1}}
{"time":"2026-05-01T11:00:00.005Z","event":"session","id":"s1","advertiser":"acme","mode":"count","epoch":"e1","elements":1000,"outcome":"refused","reason":"quota"}
{"time":"2026-05-01T11:00:00.005Z","event":"rotation","from":"e1","to":"e2"}
{"time":"2026-05-01T11:00:00.005Z","event":"empty"}
`
	if string(b) != want {
		t.Errorf("log:\n%s\nwant:\n%s", b, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := l.Write(Event{"event": "late"}); err == nil {
		t.Error("Write after Close succeeded")
	}
	recs, err := ReadAll(path)
	if err != nil || len(recs) != 4 || recs[1]["advertiser"] != "acme" {
		t.Errorf("ReadAll: %v, %v", recs, err)
	}
}

func TestWriteRefused(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, e := range []Named{Event{}, Event{"event": 7}, Event{"event": "x", "bad": func() {}}} {
		if err := l.Write(e); err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
			t.Errorf("Write(%v): %v, want an error", e, err)
		}
	}
}

func TestTornLineRecovery(t *testing.T) {
	good := `{"time":"t","event":"a"}` + "\n" + `{"time":"t","event":"b"}` + "\n"
	tests := []struct {
		name, tail string
		reason     string
	}{
		{"intact", "", ""},
		{"no newline", `{"time":"t","eve`, "no trailing newline"},
		{"zero filled", "\x00\x00\x00\x00", "no trailing newline"},
		{"invalid json", `{"time":"t","eve` + "\n", "invalid JSON"},
		{"empty line", "\n", "invalid JSON"},
		{"not an object", "[1,2]\n", "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			os.WriteFile(path, []byte(good+tt.tail), 0o600)
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Write(testSession{ID: "after"}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			recs, err := ReadAll(path)
			if err != nil {
				t.Fatalf("log not whole after recovery: %v", err)
			}
			var names []string
			for _, r := range recs {
				names = append(names, r["event"].(string))
			}
			want := "a b session"
			if tt.reason != "" {
				want = "a b audit_recovered session"
				r := recs[2]
				if r["dropped_bytes"] != float64(len(tt.tail)) || r["reason"] != tt.reason {
					t.Errorf("recovery event %v, want %d bytes, %q", r, len(tt.tail), tt.reason)
				}
				if l.Recovered() == nil || l.Recovered().DroppedBytes != int64(len(tt.tail)) {
					t.Errorf("Recovered() = %+v", l.Recovered())
				}
			} else if l.Recovered() != nil {
				t.Errorf("Recovered() = %+v on an intact log", l.Recovered())
			}
			if got := strings.Join(names, " "); got != want {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}

func TestTornOnlyLine(t *testing.T) {
	// The whole file is one torn line, longer than the tail reader's block.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(path, []byte(strings.Repeat("x", 200<<10)), 0o600)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs, err := ReadAll(path)
	if err != nil || len(recs) != 1 || recs[0]["dropped_bytes"] != float64(200<<10) {
		t.Errorf("ReadAll: %v, %v", recs, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s := testSession{ID: fmt.Sprintf("%d-%d", w, i), Advertiser: "acme", Reason: strings.Repeat("r", 100*w)}
				if err := l.Write(s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	recs, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r["id"].(string)] = true
	}
	if len(recs) != writers*each || len(seen) != writers*each {
		t.Errorf("%d lines, %d distinct ids; want %d", len(recs), len(seen), writers*each)
	}
}

func TestReadAllErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"torn":    `{"a":1}` + "\n" + `{"b"`,
		"invalid": `{"a":1}` + "\nnope\n",
		"long":    strings.Repeat("x", maxLine+10) + "\n",
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := ReadAll(path); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: %v, want an error naming the line", name, err)
		}
	}
}
