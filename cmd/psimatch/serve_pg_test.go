package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
)

// TestServePostgresCastHidesValue starts the server on a PostgreSQL view
// whose cast fails on a phone number: the start fails, and neither the error
// (what serve prints on standard error), nor the log, nor the audit log's
// inventory_load event holds the number.
func TestServePostgresCastHidesValue(t *testing.T) {
	u := castFailingView(t)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := advertisers.Add(filepath.Join(dir, "adv.json"), advertisers.Advertiser{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	rs, err := startServer(ctx, serveOptions{
		inventory: u.String(), query: "SELECT user_id, kind, value, purposes, opted_out FROM psimatch_inventory ORDER BY n",
		dataDir: filepath.Join(dir, "data"), advertisers: filepath.Join(dir, "adv.json"),
		listen: "127.0.0.1:0", rotate: time.Hour, suite: "ristretto255", quiet: true,
	}, &logBuf, &logBuf)
	if err == nil {
		rs.shutdown()
		t.Fatal("the server started on a view that fails")
	}
	auditLog, rerr := os.ReadFile(filepath.Join(dir, "data", "audit.jsonl"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !strings.Contains(string(auditLog), `"event":"inventory_load"`) || !strings.Contains(string(auditLog), "SQLSTATE 22P02") {
		t.Errorf("the audit log lacks the failed load:\n%s", auditLog)
	}
	for what, text := range map[string]string{"error": err.Error(), "log": logBuf.String(), "audit log": string(auditLog)} {
		for _, leak := range []string{"0177", "415 555"} {
			if strings.Contains(text, leak) {
				t.Errorf("the %s holds the row's value (%q):\n%s", what, leak, text)
			}
		}
	}
}
