package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/psimatch/psimatch/internal/state/pgtest"
)

const testInventory = "user_id,kind,value,purposes,opted_out\n" +
	"u1,email,Alice@Example.com,advertising,false\n" +
	"u2,email,alice@example.com,advertising;account,\n" + // the same value again
	"u1,phone,+14155550132,security,false\n" +
	"u3,phone,(415) 555-0133,advertising,false\n" + // national: needs --default-region
	"u4,phone,+14155550134,account,false\n" +
	"u5,email,bob@example.com,advertising,true\n" +
	"u6,fax,+14155550135,advertising,false\n" +
	"u7,phone,+14155550136,advertising;security,false\n"

func writeInventory(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInventoryCheckJSON(t *testing.T) {
	path := writeInventory(t, "inventory.csv", testInventory)
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", path, "--json"}, strings.NewReader(""), &stdout, &stderr)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, stderr.String())
	}
	const want = `{"records":8,"eligible_records":3,"excluded":{"invalid":2,"security_only":1,"no_advertising_purpose":1,"opted_out":1,"user_opted_out_elsewhere":0,"value_shared_with_security_only":0,"value_shared_with_opted_out":0,"value_shared_with_invalid":0},"eligible_identifiers":{"email":1,"phone":1}}` + "\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	var obj map[string]any
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&obj); err != nil || dec.More() {
		t.Errorf("stdout is not exactly one JSON object: %v", err)
	}
	wantErr := path + ": line 5: phone: no country code and no default region; pass --default-region\n" +
		path + ": line 8: kind: want email or phone\n"
	if stderr.String() != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), wantErr)
	}
	checkNoValues(t, stdout.String()+stderr.String())

	// With the region, the national number is eligible; the same data as
	// JSON Lines gives the same counts.
	jsonl := ""
	for i, line := range strings.Split(strings.TrimSpace(testInventory), "\n")[1:] {
		f := strings.Split(line, ",")
		opted := "false"
		if f[4] == "true" {
			opted = "true"
		}
		jsonl += fmt.Sprintf(`{"user_id":%q,"kind":%q,"value":%q,"purposes":%q,"opted_out":%s,"n":%d}`+"\n", f[0], f[1], f[2], f[3], opted, i)
	}
	for _, p := range []string{path, writeInventory(t, "inventory.jsonl", jsonl)} {
		stdout.Reset()
		stderr.Reset()
		status = run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", p, "--default-region", "US", "--json"}, strings.NewReader(""), &stdout, &stderr)
		const want = `{"records":8,"eligible_records":4,"excluded":{"invalid":1,"security_only":1,"no_advertising_purpose":1,"opted_out":1,"user_opted_out_elsewhere":0,"value_shared_with_security_only":0,"value_shared_with_opted_out":0,"value_shared_with_invalid":0},"eligible_identifiers":{"email":1,"phone":2}}` + "\n"
		if status != 0 || stdout.String() != want {
			t.Errorf("%s: status %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", filepath.Base(p), status, stdout.String(), want, stderr.String())
		}
	}
}

func TestInventoryCheckHuman(t *testing.T) {
	path := writeInventory(t, "inventory.csv", testInventory)
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", path, "--default-region", "us"}, strings.NewReader(""), &stdout, &stderr)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, stderr.String())
	}
	want := path + "\n" +
		"  records                                    8\n" +
		"  eligible records                           4\n" +
		"  excluded, invalid                          1\n" +
		"  excluded, security_only                    1\n" +
		"  excluded, no_advertising_purpose           1\n" +
		"  excluded, opted_out                        1\n" +
		"  excluded, user opted out elsewhere         0\n" +
		"  excluded, value shared with security_only  0\n" +
		"  excluded, value shared with opted_out      0\n" +
		"  excluded, value shared with invalid        0\n" +
		"  eligible identifiers, email                1\n" +
		"  eligible identifiers, phone                2\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	checkNoValues(t, stdout.String()+stderr.String())
}

func TestInventoryCheckStdin(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", "-", "--format", "csv", "--json"}, strings.NewReader(testInventory), &stdout, &stderr)
	if status != 0 || !strings.HasPrefix(stdout.String(), `{"records":8,`) {
		t.Errorf("status %d, stdout %q, stderr %q", status, stdout.String(), stderr.String())
	}
}

// TestInventoryCheckDenyWins runs inventory check on the conflict inventory
// of issue 14: only what deny wins allows is eligible, and every new reason
// is counted.
func TestInventoryCheckDenyWins(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", "../../psi/inventory/testdata/conflicts.csv", "--default-region", "US", "--json"},
		strings.NewReader(""), &stdout, &stderr)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, stderr.String())
	}
	const want = `{"records":21,"eligible_records":4,"excluded":{"invalid":2,"security_only":4,"no_advertising_purpose":1,"opted_out":2,` +
		`"user_opted_out_elsewhere":2,"value_shared_with_security_only":4,"value_shared_with_opted_out":1,"value_shared_with_invalid":1},` +
		`"eligible_identifiers":{"email":2,"phone":1}}` + "\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	for _, v := range []string{"carol", "eve", "415", "judy", "oscar", "555-0100"} {
		if strings.Contains(strings.ToLower(stdout.String()+stderr.String()), v) {
			t.Errorf("output holds a value (%q):\n%s%s", v, stdout.String(), stderr.String())
		}
	}
}

// TestInventoryCheckPipe: deny wins reads the inventory more than once, so
// standard input must be a file; a pipe is refused with a hint.
func TestInventoryCheckPipe(t *testing.T) {
	var stdout, stderr bytes.Buffer
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(testInventory)); pw.Close() }()
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", "-", "--format", "csv"}, pr, &stdout, &stderr)
	if status != exitUsage || !strings.Contains(stderr.String(), "standard input is not a file") {
		t.Errorf("status %d, stderr %q", status, stderr.String())
	}
}

func TestInventoryCheckCapsInvalid(t *testing.T) {
	data := "user_id,kind,value,purposes,opted_out\n" + strings.Repeat("u1,fax,x,advertising,false\n", 150)
	path := writeInventory(t, "inventory.csv", data)
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", path, "--json"}, strings.NewReader(""), &stdout, &stderr)
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if status != 0 || len(lines) != 101 || lines[100] != "... and 50 more invalid records" || !strings.HasPrefix(lines[99], path+": line 101: ") {
		t.Errorf("status %d, %d lines, last %q", status, len(lines), lines[len(lines)-1])
	}
}

func TestInventoryCheckErrors(t *testing.T) {
	missingHeader := writeInventory(t, "inventory.csv", "u1,email,secret@example.com,advertising,false\n")
	noExt := writeInventory(t, "inventory.txt", testInventory)
	tests := []struct {
		name   string
		args   []string
		status int
		stderr []string
	}{
		{"missing file", []string{"--inventory", filepath.Join(t.TempDir(), "nope.csv")}, exitInput,
			[]string{"psimatch: error: open ", "no such file", "psimatch: hint: check the path given to --inventory"}},
		{"no header", []string{"--inventory", missingHeader}, exitInput,
			[]string{"the header lacks the column(s)", "psimatch: hint: the inventory needs a header line"}},
		{"unknown extension", []string{"--inventory", noExt}, exitUsage, []string{"cannot tell the format", "psimatch: hint: pass --format"}},
		{"unknown extension, explicit format", []string{"--inventory", noExt, "--format", "csv"}, exitOK, nil},
		{"bad format", []string{"--inventory", noExt, "--format", "xml"}, exitUsage, []string{"--format: want csv or jsonl"}},
		{"bad region", []string{"--inventory", noExt, "--default-region", "ZZZ"}, exitUsage, []string{"--default-region"}},
		{"stdin without format", []string{"--inventory", "-"}, exitUsage, []string{"needs --format"}},
		{"no inventory", nil, exitUsage, []string{"inventory"}},
		{"query with a file", []string{"--inventory", noExt, "--inventory-query", "SELECT 1"}, exitUsage,
			[]string{"--inventory-query needs --inventory to name a PostgreSQL database", "psimatch: hint: give --inventory as postgres://"}},
		{"format with a database", []string{"--inventory", "postgres://u@127.0.0.1:1/db", "--format", "csv"}, exitUsage,
			[]string{"--format applies to inventory files"}},
		{"malformed database URL", []string{"--inventory", "postgres://u:s3cret@127.0.0.1:port/db"}, exitNetwork,
			[]string{"not a valid connection string", "psimatch: hint: check --inventory: postgres://"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"psimatch", "inventory", "check"}, tc.args...)
			status := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
			if status != tc.status {
				t.Fatalf("status %d, want %d; stderr:\n%s", status, tc.status, stderr.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			checkNoValues(t, stdout.String()+stderr.String())
		})
	}
}

// testPostgresDB creates a database for the test (pgtest.Database: skipped
// when PSIMATCH_TEST_POSTGRES is unset, dropped after the test) and returns
// a URL for it and a connection to it.
func testPostgresDB(t *testing.T) (*url.URL, *pgx.Conn) {
	t.Helper()
	conn := pgtest.Database(t)
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return u, db
}

// TestInventoryCheckPostgres reads testInventory from a table and gets the
// same output as from the CSV file; a wrong password and a missing table
// give an error and a hint, never the password.
func TestInventoryCheckPostgres(t *testing.T) {
	u, db := testPostgresDB(t)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `CREATE TABLE accounts (n serial, uid text, kind text, value text, purposes text[], opted_out boolean)`); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(testInventory), "\n")[1:] {
		f := strings.Split(line, ",")
		if _, err := db.Exec(ctx, `INSERT INTO accounts (uid, kind, value, purposes, opted_out) VALUES ($1, $2, $3, $4, $5)`,
			f[0], f[1], f[2], strings.Split(f[3], ";"), f[4] == "true"); err != nil {
			t.Fatal(err)
		}
	}
	query := "SELECT uid AS user_id, kind, value, purposes, opted_out FROM accounts ORDER BY n"
	path := writeInventory(t, "inventory.csv", testInventory)
	for _, region := range []string{"", "US"} {
		var outs [2]string
		for i, spec := range []string{path, u.String()} {
			args := []string{"psimatch", "inventory", "check", "--inventory", spec, "--default-region", region, "--json"}
			if i == 1 {
				args = append(args, "--inventory-query", query)
			}
			var stdout, stderr bytes.Buffer
			if status := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr); status != 0 {
				t.Fatalf("%s: status %d, stderr:\n%s", spec, status, stderr.String())
			}
			outs[i] = stdout.String()
			checkNoValues(t, stdout.String()+stderr.String())
			// The test role's password may equal its name: look for it in
			// place.
			if pw, _ := u.User.Password(); pw != "" && strings.Contains(stdout.String()+stderr.String(), ":"+pw+"@") {
				t.Errorf("output shows the password:\n%s%s", stdout.String(), stderr.String())
			}
		}
		if outs[0] != outs[1] {
			t.Errorf("region %q: database output\n%s\ndiffers from the CSV's\n%s", region, outs[1], outs[0])
		}
	}

	// The human summary names the database without the password.
	var stdout, stderr bytes.Buffer
	run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", u.String(), "--inventory-query", query}, strings.NewReader(""), &stdout, &stderr)
	if first, _, _ := strings.Cut(stdout.String(), "\n"); first != "postgres://"+u.User.Username()+"@"+u.Host+u.Path {
		t.Errorf("summary starts %q", first)
	}

	const wrong = "wrong-Pw-51f0"
	bad := *u
	bad.User = url.UserPassword(u.User.Username(), wrong)
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		stderr []string
	}{
		{"wrong password", []string{"--inventory", bad.String()}, exitAuth,
			[]string{"password authentication failed", "psimatch: hint: give the password in PGPASSWORD"}},
		{"missing table", []string{"--inventory", u.String()}, exitInput,
			[]string{`relation "psimatch_inventory" does not exist`, "psimatch: hint: check --inventory-query"}},
		{"missing column", []string{"--inventory", u.String(), "--inventory-query", "SELECT uid, kind FROM accounts"}, exitInput,
			[]string{"lacks the column(s) user_id, value, purposes, opted_out", "psimatch: hint: check --inventory-query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"psimatch", "inventory", "check"}, tc.args...)
			if status := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr); status != tc.status {
				t.Fatalf("status %d, want %d; stderr:\n%s", status, tc.status, stderr.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), wrong) {
				t.Errorf("stderr shows the password:\n%s", stderr.String())
			}
		})
	}
}

// checkNoValues fails if output holds any identifier from the test
// inventories.
func checkNoValues(t *testing.T, out string) {
	t.Helper()
	for _, v := range []string{"alice@", "bob@", "secret@", "4155550"} {
		if strings.Contains(strings.ToLower(out), v) {
			t.Errorf("output holds a value (%q):\n%s", v, out)
		}
	}
}

// castFailingView makes a test database whose psimatch_inventory view fails
// its cast on the phone number '+1 415 555 0177', and returns its URL.
func castFailingView(t *testing.T) *url.URL {
	t.Helper()
	u, db := testPostgresDB(t)
	for _, sql := range []string{
		`CREATE TABLE phones (n serial, uid text, digits text)`,
		`INSERT INTO phones (uid, digits) VALUES ('u1', '14155550100'), ('u2', '+1 415 555 0177')`,
		`CREATE VIEW psimatch_inventory AS SELECT n, uid AS user_id, 'phone' AS kind, '+' || (digits::bigint)::text AS value,
			'advertising' AS purposes, false AS opted_out FROM phones`,
	} {
		if _, err := db.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// TestInventoryCheckPostgresCastHidesValue reads a view whose cast fails on
// a phone number: the error on standard error says what failed and what to
// check, and never shows the number.
func TestInventoryCheckPostgresCastHidesValue(t *testing.T) {
	u := castFailingView(t)
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", u.String(), "--inventory-query", "SELECT user_id, kind, value, purposes, opted_out FROM psimatch_inventory ORDER BY n"},
		strings.NewReader(""), &stdout, &stderr)
	if status != exitInput {
		t.Fatalf("status %d, want %d; stderr:\n%s", status, exitInput, stderr.String())
	}
	out := stdout.String() + stderr.String()
	for _, leak := range []string{"0177", "415", "+1 "} {
		if strings.Contains(out, leak) {
			t.Errorf("output holds the row's value (%q):\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "SQLSTATE 22P02") || !strings.Contains(out, "psimatch: hint: check --inventory-query") {
		t.Errorf("the error does not say what failed and what to check:\n%s", out)
	}
}

// TestOneInventoryFlagName: serve's --inventory-format and inventory check's
// --format are one flag: each command takes both names.
func TestOneInventoryFlagName(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run(t.Context(), []string{"psimatch", "inventory", "check", "--inventory", "-", "--inventory-format", "csv", "--json"}, strings.NewReader(testInventory), &stdout, &stderr)
	if status != 0 || !strings.Contains(stdout.String(), `"records":8`) {
		t.Fatalf("inventory check --inventory-format: %d\n%s%s", status, stdout.String(), stderr.String())
	}
	code, _, errOut := runIn(t, "", "serve", "--inventory", "x.bin", "--format", "xml", "--advertisers", "a.json", "--data-dir", t.TempDir())
	if code != exitUsage || !strings.Contains(errOut, "want csv or jsonl") {
		t.Fatalf("serve --format xml: %d\n%s", code, errOut)
	}
}
