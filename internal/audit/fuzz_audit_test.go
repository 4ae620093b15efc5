package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen: Open on arbitrary log contents never panics and never loses a
// complete line: it keeps a prefix of the file that ends at a newline (all
// of it when the last line is a whole JSON object), and a log whose lines
// were all JSON objects, torn at any byte, reads back whole after Open.
func FuzzOpen(f *testing.F) {
	full := []byte(`{"time":"2026-05-01T11:00:00.005Z","event":"session","id":"a"}` + "\n" +
		`{"time":"2026-05-01T11:00:00.006Z","event":"evaluate","elements":3}` + "\n")
	for _, n := range []int{0, 1, 10, len(full) / 2, len(full) - 1, len(full)} {
		f.Add(full[:n])
	}
	f.Add([]byte("\n"))
	f.Add([]byte("null\n"))
	f.Add([]byte("[1]\n"))
	f.Add([]byte("{}\n{\"a\":1}\nnot json\n"))
	f.Add([]byte("{}\n\xff\xfe"))
	f.Add(bytes.Repeat([]byte("x"), 70000))
	dir := f.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rec := l.Recovered()
		if rec == nil {
			if !bytes.Equal(got, content) {
				t.Fatal("an intact log was changed")
			}
			return
		}
		kept := int64(len(content)) - rec.DroppedBytes
		if kept < 0 || !bytes.Equal(got[:kept], content[:kept]) || (kept > 0 && content[kept-1] != '\n') {
			t.Fatalf("kept %d bytes that are not a prefix ending at a newline", kept)
		}
		// The recovery note is the last line, whole.
		last := got[kept:]
		var obj map[string]any
		if len(last) == 0 || last[len(last)-1] != '\n' || json.Unmarshal(last, &obj) != nil || obj["event"] != "audit_recovered" {
			t.Fatalf("the recovery line is not a whole JSON object: %q", last)
		}
		// Every line that was a JSON object before the tear reads back.
		if validLines(content[:kept]) {
			if _, err := ReadAll(path); err != nil {
				t.Fatalf("a log torn at byte %d does not read back: %v", len(content), err)
			}
		}
	})
}

// validLines reports whether b is a sequence of JSON-object lines.
func validLines(b []byte) bool {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var obj map[string]any
		if line[len(line)-1] != '\n' || json.Unmarshal(line, &obj) != nil || obj == nil {
			return false
		}
	}
	return true
}
