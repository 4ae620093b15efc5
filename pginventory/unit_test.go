package pginventory

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// These tests need no server.

func TestIsConnString(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"postgres://u@h/db", true},
		{"postgresql://h", true},
		{"POSTGRES://h/db", true},
		{"host=db.example dbname=ads", true},
		{"dbname=ads", true},
		{" host=/var/run/postgresql", true},
		{"user=u host=h", true},
		{"inventory.csv", false},
		{"/data/inventory.jsonl", false},
		{"-", false},
		{"", false},
		{"./host=x.csv", false},
		{"postgres.csv", false},
	}
	for _, tt := range tests {
		if got := IsConnString(tt.in); got != tt.want {
			t.Errorf("IsConnString(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNameHasNoPassword(t *testing.T) {
	const pw = "s3cret-Pw"
	tests := []struct {
		conn string
		want string
	}{
		{"postgres://ads:" + pw + "@db.example:6543/inventory?sslmode=disable", "postgres://ads@db.example:6543/inventory"},
		{"postgresql://ads:" + pw + "@[::1]/inv?sslmode=disable", "postgres://ads@[::1]:5432/inv"},
		{"host=db.example port=5433 dbname=inv user=ads password=" + pw + " sslmode=disable", "postgres://ads@db.example:5433/inv"},
		{"host=/var/run/postgresql dbname=inv user=ads password='" + pw + "'", "postgres://ads@/inv?host=%2Fvar%2Frun%2Fpostgresql&port=5432"},
	}
	for _, tt := range tests {
		_, name, err := parseConfig(tt.conn)
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if name != tt.want {
			t.Errorf("name = %q, want %q", name, tt.want)
		}
		if strings.Contains(name, pw) {
			t.Errorf("name %q shows the password", name)
		}
	}
}

func TestParseErrorHasNoPassword(t *testing.T) {
	const pw = "s3cret-Pw"
	for _, conn := range []string{
		"postgres://ads:" + pw + "@db.example:port/inventory",
		"postgres://ads:" + pw + "@db%zz.example/inventory",
		"host=db.example password=" + pw + " port=abc",
		"host=db.example password='" + pw,
		"host=db.example password=" + pw + " sslmode=sometimes",
	} {
		_, _, err := parseConfig(conn) // as Open does first
		if err == nil {
			t.Errorf("parseConfig(%q) succeeded", conn)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Setting != SettingConn {
			t.Errorf("parseConfig(%q): %v is not an *Error for the connection string", conn, err)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("parseConfig(%q): error shows the password: %v", conn, err)
		}
	}
}

func TestParseArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{`{}`, nil, ""},
		{`{advertising}`, []string{"advertising"}, ""},
		{`{advertising,account}`, []string{"advertising", "account"}, ""},
		{`{"a b",""}`, []string{"a b", ""}, ""},
		{`{"a,b","q\"x","b\\s"}`, []string{"a,b", `q"x`, `b\s`}, ""},
		{`{"advertising;account",security}`, []string{"advertising;account", "security"}, ""},
		{`[0:1]={advertising,account}`, []string{"advertising", "account"}, ""},
		{`{advertising,NULL}`, nil, "item 2 is NULL"},
		{`{"NULL"}`, []string{"NULL"}, ""},
		{`{{a},{b}}`, nil, "one-dimensional"},
		{`[1:1][1:1]={{a}}`, nil, "one-dimensional"},
		{`advertising`, nil, "malformed"},
		{`{"open}`, nil, "unterminated"},
		{`{"a"x}`, nil, "after item 1"},
		{`{`, nil, "malformed"},
	}
	for _, tt := range tests {
		got, err := parseArray([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseArray(%s) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseArray(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseArray(f *testing.F) {
	for _, s := range []string{`{}`, `{a,b}`, `{"a\"b",c}`, `[0:1]={a,b}`, `{NULL}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		items, err := parseArray([]byte(s))
		if err != nil {
			return
		}
		// Re-encoding with every item quoted parses back to the same items.
		var b strings.Builder
		b.WriteByte('{')
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(it))
			b.WriteByte('"')
		}
		b.WriteByte('}')
		again, err := parseArray([]byte(b.String()))
		if err != nil || len(again) != len(items) || (len(items) > 0 && !reflect.DeepEqual(again, items)) {
			t.Fatalf("%q: items %q re-encoded as %s parse to %q, %v", s, items, b.String(), again, err)
		}
	})
}
