package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// TestCompressedInventory: `inventory check` gives the same summary for a
// plain, a gzip and a zstd inventory, from a file (format from the name
// under .gz/.zst) and from standard input; a corrupt stream is an input
// error naming the file.
func TestCompressedInventory(t *testing.T) {
	var gzb bytes.Buffer
	gw := gzip.NewWriter(&gzb)
	gw.Write([]byte(testInventory))
	gw.Close()
	zw, _ := zstd.NewWriter(nil)
	zst := zw.EncodeAll([]byte(testInventory), nil)
	zw.Close()

	check := func(args []string, stdin string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		status := run(t.Context(), append([]string{"psimatch", "inventory", "check", "--json"}, args...), strings.NewReader(stdin), &stdout, &stderr)
		return status, stdout.String(), stderr.String()
	}
	plain := writeInventory(t, "inventory.csv", testInventory)
	status, want, _ := check([]string{"--inventory", plain}, "")
	if status != 0 || !strings.Contains(want, `"records":8`) {
		t.Fatalf("plain: status %d, %s", status, want)
	}
	for name, data := range map[string][]byte{"inventory.csv.gz": gzb.Bytes(), "inventory.csv.zst": zst} {
		path := writeInventory(t, name, string(data))
		if status, got, stderr := check([]string{"--inventory", path}, ""); status != 0 || got != want {
			t.Errorf("%s: status %d, stdout %s, stderr %s; want %s", name, status, got, stderr, want)
		}
		if status, got, stderr := check([]string{"--inventory", "-", "--format", "csv"}, string(data)); status != 0 || got != want {
			t.Errorf("%s on standard input: status %d, stdout %s, stderr %s; want %s", name, status, got, stderr, want)
		}
	}
	bad := bytes.Clone(gzb.Bytes())
	bad[len(bad)-6] ^= 0xff // the CRC
	path := filepath.Join(t.TempDir(), "inventory.csv.gz")
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	status, _, stderr := check([]string{"--inventory", path}, "")
	if status == 0 || !strings.Contains(stderr, path) || !strings.Contains(stderr, "gzip") {
		t.Fatalf("corrupt gzip: status %d, stderr %s", status, stderr)
	}
	t.Logf("%s", stderr)
}
