package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestNormalizeCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantOut    string
		wantErr    string // exact standard error, or a prefix when wantStatus is 2
		wantStatus int
	}{
		{"emails", []string{"--kind", "email"},
			"Alice.Smith+promo@GMAIL.com\r\n Bob.Jones@Example.ORG \nd.o.t@googlemail.com",
			"alicesmith@gmail.com\nbob.jones@example.org\ndot@googlemail.com\n", "", 0},
		{"invalid email lines", []string{"--kind", "email"},
			"+@gmail.com\ncarol+list@example.net\n\nx@y@z.com\n",
			"\ncarol+list@example.net\n\n\n",
			"line 1: email: local part empty after removing dots and +tag\nline 3: email: empty\nline 4: email: more than one @\n", 1},
		{"hashed emails", []string{"--kind", "email", "--hash"},
			"user@example.com\n",
			"b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514\n", "", 0},
		{"phones", []string{"--kind", "phone", "--default-region", "gb"},
			"+1 (415) 555-0132\n020 7946 0018\n07700 900123\n",
			"+14155550132\n+442079460018\n+447700900123\n", "", 0},
		{"phones without region", []string{"--kind", "phone"},
			"+1 (415) 555-0132\n415-555-0132\n1-800-FLOWERS\n",
			"+14155550132\n\n\n",
			"line 2: phone: no country code and no default region\n" +
				"line 3: phone: letters outside an extension (vanity numbers are not converted)\n" +
				"psimatch: hint: pass --default-region (such as --default-region GB) for numbers written without a country code\n", 1},
		{"empty input", []string{"--kind", "phone"}, "", "", "", 0},
		{"bad kind", []string{"--kind", "fax"}, "", "", "psimatch: error: --kind \"fax\": want email or phone\n", 2},
		{"bad region", []string{"--kind", "phone", "--default-region", "UK"}, "", "",
			"psimatch: error: --default-region \"UK\": not a known ISO 3166-1 alpha-2 region (such as GB or US)\n", 2},
		{"argument", []string{"--kind", "email", "file.txt"}, "", "",
			"psimatch: error: normalize takes no arguments; it reads standard input\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"psimatch", "normalize"}, tt.args...)
			status := run(t.Context(), args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d (stderr %q)", status, tt.wantStatus, stderr.String())
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.wantOut)
			}
			if stderr.String() != tt.wantErr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

// TestNormalizeCommandHidesValues checks that nothing of an invalid value
// reaches standard error.
func TestNormalizeCommandHidesValues(t *testing.T) {
	secret := "jane.secret.doe@@example.com\n+1 555 SECRETS\n"
	for _, kind := range []string{"email", "phone"} {
		var stdout, stderr bytes.Buffer
		run(t.Context(), []string{"psimatch", "normalize", "--kind", kind}, strings.NewReader(secret), &stdout, &stderr)
		if strings.Contains(strings.ToLower(stderr.String()), "secret") {
			t.Errorf("--kind %s: stderr shows the value: %q", kind, stderr.String())
		}
	}
}
