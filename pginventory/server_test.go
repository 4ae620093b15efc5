package pginventory

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/psimatch/psimatch/internal/state/pgtest"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
)

// These tests run against a real PostgreSQL server named by the environment
// variable PSIMATCH_TEST_POSTGRES; .ci/postgres.sh starts one and sets it.
// The role must be allowed to create databases: each test makes its own and
// drops it after.

// testDB creates a database for the test (pgtest.Database, which skips the
// test when PSIMATCH_TEST_POSTGRES is unset) and returns a connection string
// for it and a read-write connection to it for setting it up.
func testDB(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	conn := pgtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatalf("connecting to the test database: %v", err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return conn, db
}

func exec(t *testing.T, db *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// A record as in a CSV file: purposes ";"-separated, opted_out "", "true" or
// "false". A field "NULL" is stored as SQL NULL (and as empty in CSV).
type record struct{ userID, kind, value, purposes, optedOut string }

// records is an inventory with one record for each case of the policy.
var records = []record{
	{"u1", "email", "Alice@Example.com", "advertising", "false"},
	{"u2", "email", "alice@example.com", "advertising;account", ""}, // the same identifier again
	{"u1", "phone", "+14155550132", "security", "false"},            // security only
	{"u3", "phone", "(415) 555-0133", "advertising", "false"},       // no country code: invalid
	{"u4", "phone", "+14155550134", "account", "false"},             // no advertising purpose
	{"u5", "email", "bob@example.com", "advertising", "true"},       // opted out
	{"u6", "fax", "+14155550135", "advertising", "false"},           // bad kind: invalid
	{"u7", "phone", "+14155550136", "advertising;security", "false"},
	{"u8", "email", "carol@example.com", "advertising;marketing", "false"}, // unknown purpose: invalid
	{"u9", "email", "dave@example.com", "NULL", "NULL"},                    // no purposes
	{"u10", "email", "erin@example.com", "advertising", "NULL"},            // NULL opted_out: false
	{"u11", "email", "", "advertising", "false"},                           // empty value: invalid
	{"u12", "email", "bob@example.com", "account;advertising", "false"},    // bob again, not opted out here
	{"u13", "phone", "+14155550132", "account", "false"},                   // u1's security phone, account only
}

func (r record) csvField(s string) string {
	if s == "NULL" {
		return ""
	}
	return s
}

func recordsCSV() string {
	var b strings.Builder
	b.WriteString("user_id,kind,value,purposes,opted_out\n")
	for _, r := range records {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", r.userID, r.kind, r.value, r.csvField(r.purposes), r.csvField(r.optedOut))
	}
	return b.String()
}

// nullable returns nil for "NULL" and "" (opted_out) so that it is stored
// as SQL NULL.
func nullable(s string) any {
	if s == "NULL" {
		return nil
	}
	return s
}

// loadRecords creates the table psimatch_inventory holding records, with
// purposes as text or as text[].
func loadRecords(t *testing.T, db *pgx.Conn, array bool) {
	t.Helper()
	purposesType := "text"
	if array {
		purposesType = "text[]"
	}
	exec(t, db, `CREATE TABLE psimatch_inventory (
		id        serial PRIMARY KEY,
		user_id   text,
		kind      text,
		value     text,
		purposes  `+purposesType+`,
		opted_out boolean
	)`)
	for _, r := range records {
		var purposes any = nullable(r.purposes)
		if array && purposes != nil {
			purposes = strings.Split(r.purposes, ";")
		}
		var optedOut any
		if r.optedOut == "true" || r.optedOut == "false" {
			optedOut = r.optedOut == "true"
		}
		exec(t, db, "INSERT INTO psimatch_inventory (user_id, kind, value, purposes, opted_out) VALUES ($1, $2, $3, $4, $5)",
			r.userID, r.kind, r.value, purposes, optedOut)
	}
}

// ordered reads the table in insertion order, so that row numbers match
// the CSV's records.
const ordered = DefaultQuery + " ORDER BY id"

// result is what a scan gave.
type result struct {
	sum      inventory.Summary
	yielded  map[ident.Input]bool
	invalids []string
}

func newPolicy(t *testing.T) *inventory.Policy {
	t.Helper()
	p, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func collect() (*result, func(inventory.Eligible) error, func(*inventory.RecordError)) {
	res := &result{yielded: map[ident.Input]bool{}}
	yield := func(e inventory.Eligible) error {
		res.yielded[e.Input()] = true
		return nil
	}
	onInvalid := func(e *inventory.RecordError) { res.invalids = append(res.invalids, e.Error()) }
	return res, yield, onInvalid
}

// scanDB runs the policy over the rows of query.
func scanDB(t *testing.T, conn, query string) *result {
	t.Helper()
	ctx := context.Background()
	res, yield, onInvalid := collect()
	var err error
	res.sum, err = inventory.Run(ctx, Opener(conn, query), newPolicy(t), yield, onInvalid)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func scanCSV(t *testing.T, data string) *result {
	t.Helper()
	res, yield, onInvalid := collect()
	var err error
	res.sum, err = inventory.Scan(context.Background(), strings.NewReader(data), "inventory.csv", inventory.CSV, newPolicy(t), yield, onInvalid)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return res
}

// eligible returns the PRF input of a value the policy makes eligible.
func eligible(t *testing.T, kind, value string) ident.Input {
	t.Helper()
	k, err := ident.ParseKind(kind)
	if err != nil {
		t.Fatal(err)
	}
	norm, err := normalize.Value(k, value, "")
	if err != nil {
		t.Fatalf("%s is not valid: %v", kind, err)
	}
	return ident.FromNormalized(k, norm)
}

func sameSet(a, b map[ident.Input]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestSameAsCSV checks that the table gives the same counts, the same
// identifiers and the same invalid rows as the equivalent CSV file, with
// purposes as text and as text[].
func TestSameAsCSV(t *testing.T) {
	want := scanCSV(t, recordsCSV())
	for _, array := range []bool{false, true} {
		t.Run(map[bool]string{false: "text", true: "array"}[array], func(t *testing.T) {
			conn, db := testDB(t)
			loadRecords(t, db, array)
			got := scanDB(t, conn, ordered)
			if got.sum != want.sum {
				t.Errorf("summary:\n got %+v\nwant %+v (CSV)", got.sum, want.sum)
			}
			if !sameSet(got.yielded, want.yielded) {
				t.Errorf("yielded %d identifiers, the CSV %d, or not the same ones", len(got.yielded), len(want.yielded))
			}
			// Row n is CSV line n+1 (after the header), with the same message.
			if len(got.invalids) != len(want.invalids) {
				t.Fatalf("invalid rows:\n%s\nCSV:\n%s", strings.Join(got.invalids, "\n"), strings.Join(want.invalids, "\n"))
			}
			for i := range got.invalids {
				gotLine, gotMsg := splitRecordError(t, got.invalids[i])
				wantLine, wantMsg := splitRecordError(t, want.invalids[i])
				if gotLine != wantLine-1 || gotMsg != wantMsg {
					t.Errorf("invalid row: %q, want row %d: %s (from the CSV's %q)", got.invalids[i], wantLine-1, wantMsg, want.invalids[i])
				}
			}
		})
	}
}

// splitRecordError splits "source: line N: message" into N and message.
func splitRecordError(t *testing.T, s string) (int64, string) {
	t.Helper()
	_, rest, ok := strings.Cut(s, ": line ")
	var line int64
	var msg string
	if ok {
		var num string
		num, msg, ok = strings.Cut(rest, ": ")
		_, err := fmt.Sscan(num, &line)
		ok = ok && err == nil
	}
	if !ok {
		t.Fatalf("%q is not source: line N: message", s)
	}
	return line, msg
}

// TestPolicyOnRows checks the purpose policy on database rows: counts by
// reason, and which identifiers come out.
func TestPolicyOnRows(t *testing.T) {
	conn, db := testDB(t)
	loadRecords(t, db, true)
	got := scanDB(t, conn, ordered)
	want := inventory.Summary{
		Records:         14,
		EligibleRecords: 4, // u1, u2 (alice again), u7, u10
		Excluded: inventory.Excluded{
			Invalid:              4, // u3 no country code, u6 fax, u8 marketing, u11 empty value
			SecurityOnly:         1, // u1's phone
			NoAdvertisingPurpose: 3, // u4, u9 (NULL purposes), u13
			OptedOut:             1, // u5
			ValueOptedOut:        1, // u12: bob, whom u5 holds opted out (deny wins)
		},
		EligibleIdentifiers: inventory.Identifiers{Email: 2, Phone: 1}, // alice, erin; u7's phone
	}
	if got.sum != want {
		t.Errorf("summary:\n got %+v\nwant %+v", got.sum, want)
	}
	for _, c := range []struct {
		kind, value string
		in          bool
		why         string
	}{
		{"email", "alice@example.com", true, "advertising"},
		{"phone", "+14155550136", true, "advertising;security"},
		{"email", "erin@example.com", true, "NULL opted_out is false"},
		{"email", "bob@example.com", false, "opted out as u5, eligible as u12: deny wins"},
		{"phone", "+14155550132", false, "security only, and account only"},
		{"phone", "+14155550134", false, "account only"},
		{"email", "dave@example.com", false, "NULL purposes"},
		{"email", "carol@example.com", false, "unknown purpose"},
	} {
		if got.yielded[eligible(t, c.kind, c.value)] != c.in {
			t.Errorf("%s (%s): yielded = %v, want %v", c.kind, c.why, !c.in, c.in)
		}
	}
}

// TestReloadAfterOptOut checks that an opt-out recorded in the table takes
// effect on the next scan.
func TestReloadAfterOptOut(t *testing.T) {
	conn, db := testDB(t)
	loadRecords(t, db, false)
	alice := eligible(t, "email", "alice@example.com")
	first := scanDB(t, conn, "")
	if !first.yielded[alice] {
		t.Fatal("alice is not eligible before the opt-out")
	}
	exec(t, db, "UPDATE psimatch_inventory SET opted_out = true WHERE user_id IN ('u1', 'u2')")
	second := scanDB(t, conn, "")
	if second.yielded[alice] {
		t.Error("alice is still yielded after opting out")
	}
	if d := second.sum.Excluded.OptedOut - first.sum.Excluded.OptedOut; d != 2 {
		t.Errorf("opted-out count went up by %d, want 2", d)
	}
	if d := first.sum.EligibleIdentifiers.Email - second.sum.EligibleIdentifiers.Email; d != 1 {
		t.Errorf("eligible emails went down by %d, want 1", d)
	}
	// u1's phone is security-only: still excluded, but for that reason.
	if second.sum.Excluded.SecurityOnly != 1 {
		t.Errorf("security_only = %d, want 1", second.sum.Excluded.SecurityOnly)
	}
}

// TestBadRows checks that rows that cannot be used count as invalid, are
// named by row number without their values, and that the scan goes on.
func TestBadRows(t *testing.T) {
	conn, db := testDB(t)
	exec(t, db, `CREATE TYPE purpose AS ENUM ('advertising', 'account', 'security', 'marketing')`)
	exec(t, db, `CREATE TABLE psimatch_inventory (id int, user_id bigint, kind text, value text, purposes purpose[], opted_out boolean)`)
	exec(t, db, `INSERT INTO psimatch_inventory VALUES
		(1, 1, 'email', 'ok1@example.com', '{advertising}', false),
		(2, 2, NULL, 'nullkind@example.com', '{advertising}', false),
		(3, 3, 'email', 'marketing@example.com', '{marketing}', false),
		(4, 4, 'email', 'nullitem@example.com', '{advertising,NULL}', false),
		(5, NULL, 'email', 'nouser@example.com', '{advertising}', false),
		(6, 6, 'email', NULL, '{advertising}', false),
		(7, 7, 'email', 'ok2@example.com', '{account,advertising}', NULL)`)
	got := scanDB(t, conn, ordered)
	want := inventory.Summary{
		Records: 7, EligibleRecords: 2,
		Excluded:            inventory.Excluded{Invalid: 5},
		EligibleIdentifiers: inventory.Identifiers{Email: 2},
	}
	if got.sum != want {
		t.Errorf("summary:\n got %+v\nwant %+v", got.sum, want)
	}
	name := "postgres://psimatch@"
	wantInvalid := []string{
		"line 2: kind: want email or phone",
		"line 3: purposes: item 1 is not advertising, account or security",
		"line 4: purposes: item 2 is NULL",
		"line 5: user_id: empty",
		"line 6: value: empty",
	}
	if len(got.invalids) != len(wantInvalid) {
		t.Fatalf("invalid rows:\n%s", strings.Join(got.invalids, "\n"))
	}
	for i, msg := range got.invalids {
		if !strings.HasPrefix(msg, name) || !strings.HasSuffix(msg, ": "+wantInvalid[i]) {
			t.Errorf("invalid row %d: %q, want %s...: %s", i, msg, name, wantInvalid[i])
		}
		if strings.Contains(msg, "@example.com") {
			t.Errorf("invalid row %d shows a value: %q", i, msg)
		}
	}
}

// TestWrongPassword checks the error for a wrong password: it says to check
// the password and does not show it.
func TestWrongPassword(t *testing.T) {
	conn, _ := testDB(t)
	const wrong = "wrong-Pw-7c41e9"
	for _, form := range []string{"url", "keyword/value"} {
		t.Run(form, func(t *testing.T) {
			u, _ := url.Parse(conn)
			bad := *u
			bad.User = url.UserPassword(u.User.Username(), wrong)
			spec := bad.String()
			if form == "keyword/value" {
				spec = fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s", u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"), u.User.Username(), wrong)
			}
			src, err := Open(context.Background(), spec, "")
			if err == nil {
				src.Close()
				t.Fatal("Open succeeded with a wrong password")
			}
			t.Logf("error: %v", err)
			var e *Error
			if !errors.As(err, &e) || e.Setting != SettingPassword {
				t.Errorf("error %v is not an *Error with SettingPassword", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "check the password") {
				t.Errorf("error does not say to check the password: %v", msg)
			}
			if strings.Contains(msg, wrong) {
				t.Errorf("error shows the password: %v", msg)
			}
			if !strings.Contains(msg, "postgres://"+u.User.Username()+"@") {
				t.Errorf("error does not name the database: %v", msg)
			}
		})
	}
}

// TestMissingTable checks the error for a table that does not exist: it
// names the table and says to check the query.
func TestMissingTable(t *testing.T) {
	conn, _ := testDB(t)
	for _, c := range []struct{ query, table string }{
		{"", "psimatch_inventory"},
		{"SELECT * FROM audience_consents", "audience_consents"},
	} {
		src, err := Open(context.Background(), conn, c.query)
		if err == nil {
			src.Close()
			t.Fatalf("Open(%q) succeeded without the table", c.query)
		}
		t.Logf("error: %v", err)
		var e *Error
		if !errors.As(err, &e) || e.Setting != SettingQuery {
			t.Errorf("error %v is not an *Error with SettingQuery", err)
		}
		if msg := err.Error(); !strings.Contains(msg, `"`+c.table+`" does not exist`) || !strings.Contains(msg, "check the inventory query") {
			t.Errorf("error does not name the table and the query: %v", msg)
		}
	}
}

// TestQueryChecks checks the errors for a query whose columns do not fit,
// and that the query cannot write.
func TestQueryChecks(t *testing.T) {
	conn, db := testDB(t)
	exec(t, db, "CREATE TABLE t (id int)")
	for _, c := range []struct{ query, want string }{
		{"SELECT 1 AS user_id, 'email' AS kind", "lacks the column(s) value, purposes, opted_out"},
		{"SELECT 1 AS user_id, 'email' AS kind, 'v' AS value, 7 AS purposes, false AS opted_out", "column purposes has type integer"},
		{"SELECT 1 AS user_id, 'email' AS kind, 'v' AS value, 'advertising' AS purposes, 1 AS opted_out", "column opted_out has type integer"},
		{"SELECT 1 AS user_id, 1 AS user_id, 'email' AS kind, 'v' AS value, 'advertising' AS purposes, false AS opted_out", "user_id appears twice"},
		{"SELECT 1 AS user_id; SELECT 2", "SQLSTATE"},
		{"DELETE FROM t", "no rows"},
		{"SELECT 1/0 AS user_id, 'email' AS kind, 'v' AS value, 'advertising' AS purposes, false AS opted_out", "division by zero"},
		{"WITH d AS (DELETE FROM t RETURNING id) SELECT id AS user_id, 'email' AS kind, 'v' AS value, 'advertising' AS purposes, false AS opted_out FROM d", "read-only"},
	} {
		src, err := Open(context.Background(), conn, c.query)
		if err == nil {
			// Errors in execution may come with the first row.
			err = src.Next(&inventory.Raw{})
			src.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.query, err, c.want)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Setting != SettingQuery {
			t.Errorf("%s: error %v is not an *Error with SettingQuery", c.query, err)
		}
	}
}
