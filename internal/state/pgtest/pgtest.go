// Package pgtest gives tests a PostgreSQL database of their own, from the
// server named by PSIMATCH_TEST_POSTGRES (which .ci/postgres.sh sets). Tests
// skip when it is unset.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the test server's connection string.
const Env = "PSIMATCH_TEST_POSTGRES"

// Database creates an empty database for the test, dropped at its end, and
// returns a connection string for it. It skips the test when Env is unset.
func Database(t testing.TB) string {
	t.Helper()
	server := os.Getenv(Env)
	if server == "" {
		t.Skipf("%s is unset: run `source .ci/postgres.sh` first (it starts PostgreSQL on 127.0.0.1 and sets it)", Env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "psimatch_state_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatalf("CREATE DATABASE: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("DROP DATABASE %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	if !strings.Contains(server, "://") {
		return server + " dbname=" + name
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s: not a URL: %v", Env, err)
	}
	u.Path = "/" + name
	return u.String()
}
