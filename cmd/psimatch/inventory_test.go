package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	status := run([]string{"psimatch", "inventory", "check", "--inventory", path, "--json"}, strings.NewReader(""), &stdout, &stderr)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, stderr.String())
	}
	const want = `{"records":8,"eligible_records":3,"excluded":{"invalid":2,"security_only":1,"no_advertising_purpose":1,"opted_out":1},"eligible_identifiers":{"email":1,"phone":1}}` + "\n"
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
		status = run([]string{"psimatch", "inventory", "check", "--inventory", p, "--default-region", "US", "--json"}, strings.NewReader(""), &stdout, &stderr)
		const want = `{"records":8,"eligible_records":4,"excluded":{"invalid":1,"security_only":1,"no_advertising_purpose":1,"opted_out":1},"eligible_identifiers":{"email":1,"phone":2}}` + "\n"
		if status != 0 || stdout.String() != want {
			t.Errorf("%s: status %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", filepath.Base(p), status, stdout.String(), want, stderr.String())
		}
	}
}

func TestInventoryCheckHuman(t *testing.T) {
	path := writeInventory(t, "inventory.csv", testInventory)
	var stdout, stderr bytes.Buffer
	status := run([]string{"psimatch", "inventory", "check", "--inventory", path, "--default-region", "us"}, strings.NewReader(""), &stdout, &stderr)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, stderr.String())
	}
	want := path + "\n" +
		"  records                           8\n" +
		"  eligible records                  4\n" +
		"  excluded, invalid                 1\n" +
		"  excluded, security_only           1\n" +
		"  excluded, no_advertising_purpose  1\n" +
		"  excluded, opted_out               1\n" +
		"  eligible identifiers, email       1\n" +
		"  eligible identifiers, phone       2\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	checkNoValues(t, stdout.String()+stderr.String())
}

func TestInventoryCheckStdin(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run([]string{"psimatch", "inventory", "check", "--inventory", "-", "--format", "csv", "--json"}, strings.NewReader(testInventory), &stdout, &stderr)
	if status != 0 || !strings.HasPrefix(stdout.String(), `{"records":8,`) {
		t.Errorf("status %d, stdout %q, stderr %q", status, stdout.String(), stderr.String())
	}
}

func TestInventoryCheckCapsInvalid(t *testing.T) {
	data := "user_id,kind,value,purposes,opted_out\n" + strings.Repeat("u1,fax,x,advertising,false\n", 150)
	path := writeInventory(t, "inventory.csv", data)
	var stdout, stderr bytes.Buffer
	status := run([]string{"psimatch", "inventory", "check", "--inventory", path, "--json"}, strings.NewReader(""), &stdout, &stderr)
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"psimatch", "inventory", "check"}, tc.args...)
			status := run(args, strings.NewReader(""), &stdout, &stderr)
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
