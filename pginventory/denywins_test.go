package pginventory

import (
	"context"
	"encoding/csv"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/psimatch/psimatch/psi/inventory"
)

// TestDenyWinsFromDatabase loads the conflict inventory of issue 14
// (psi/inventory/testdata/conflicts.csv) into a table and checks that
// reading it from PostgreSQL gives the same deny-wins result as the file.
func TestDenyWinsFromDatabase(t *testing.T) {
	conn, db := testDB(t)
	data, err := os.ReadFile("../psi/inventory/testdata/conflicts.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, `CREATE TABLE psimatch_inventory (id serial PRIMARY KEY, user_id text, kind text, value text, purposes text, opted_out text)`)
	for _, r := range rows[1:] {
		exec(t, db, "INSERT INTO psimatch_inventory (user_id, kind, value, purposes, opted_out) VALUES ($1, $2, $3, $4, $5)", r[0], r[1], r[2], r[3], r[4])
	}
	fromDB := scanDB(t, conn, ordered)
	fromFile := scanCSV(t, string(data))
	if fromDB.sum != fromFile.sum {
		t.Errorf("summary from the database\n got %+v\nwant %+v (from the file)", fromDB.sum, fromFile.sum)
	}
	if fromDB.sum.EligibleIdentifiers != (inventory.Identifiers{Email: 2, Phone: 1}) || fromDB.sum.Excluded.ValueSecurityOnly != 4 || fromDB.sum.Excluded.UserOptedOut != 2 {
		t.Errorf("deny wins from the database: %+v", fromDB.sum)
	}
	if len(fromDB.yielded) != 3 {
		t.Errorf("%d identifiers yielded, want 3", len(fromDB.yielded))
	}
	for in := range fromDB.yielded {
		if !fromFile.yielded[in] {
			t.Errorf("the database yielded an identifier the file does not")
		}
	}
}

// TestFailedCastHidesValue reads a view whose cast fails on one row's phone
// number. The error, as the caller prints it and as the server writes it to
// the audit log (its Error string), says what failed and where, and never
// holds the value; the driver's error, which quotes it, is not reachable.
func TestFailedCastHidesValue(t *testing.T) {
	conn, db := testDB(t)
	exec(t, db, `CREATE TABLE raw_inventory (id serial PRIMARY KEY, user_id text, kind text, value text, purposes text, opted_out boolean)`)
	for i, v := range []string{"14155550100", "14155550101", "+1 415 555 0199", "14155550102"} {
		exec(t, db, "INSERT INTO raw_inventory (user_id, kind, value, purposes, opted_out) VALUES ($1, 'phone', $2, 'advertising', false)", "u"+string(rune('0'+i)), v)
	}
	// The view normalizes numbers with a cast that fails on "+1 415 555 0199".
	exec(t, db, `CREATE VIEW psimatch_inventory AS
		SELECT id, user_id, kind, '+' || (value::bigint)::text AS value, purposes, opted_out FROM raw_inventory`)
	_, err := inventory.Run(context.Background(), Opener(conn, ordered), newPolicy(t), func(inventory.Eligible) error { return nil }, nil)
	if err == nil {
		t.Fatal("the failing view was read without an error")
	}
	msg := err.Error()
	t.Log(msg)
	for _, leak := range []string{"415", "0199", "+1 "} {
		if strings.Contains(msg, leak) {
			t.Errorf("the error holds the row's value (%q): %s", leak, msg)
		}
	}
	if !strings.Contains(msg, "SQLSTATE 22P02") || !strings.Contains(msg, "after row 2") && !strings.Contains(msg, "query failed") {
		t.Errorf("the error does not say what failed and where: %s", msg)
	}
	for e := err; e != nil; {
		if strings.Contains(e.Error(), "0199") {
			t.Errorf("a wrapped error holds the value: %T", e)
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
}

// TestPassesReadOneSnapshot commits an opt-out between the passes of one
// read: the read still succeeds, on the snapshot it started with (no
// inventory.ErrChanged), and the next read sees the opt-out.
func TestPassesReadOneSnapshot(t *testing.T) {
	conn, db := testDB(t)
	loadRecords(t, db, false)
	ctx := context.Background()
	opens, rewinds := 0, 0
	open := func(ctx context.Context) (inventory.Source, func() error, error) {
		opens++
		src, closeSrc, err := Opener(conn, ordered)(ctx)
		if err != nil {
			return nil, nil, err
		}
		return &optOutOnRewind{Source: src.(*Source), db: db, rewinds: &rewinds}, closeSrc, nil
	}
	n := 0
	sum, err := inventory.Run(ctx, open, newPolicy(t), func(inventory.Eligible) error { n++; return nil }, nil)
	if err != nil {
		t.Fatalf("a read with an opt-out committed between its passes: %v", err)
	}
	if opens != 1 || rewinds != 2 || n != 3 || sum.EligibleIdentifiers != (inventory.Identifiers{Email: 2, Phone: 1}) {
		t.Errorf("%d opens, %d rewinds, %d yielded, %+v; want 1, 2 and the snapshot's 3 identifiers", opens, rewinds, n, sum.EligibleIdentifiers)
	}
	after := scanDB(t, conn, ordered)
	if after.sum.EligibleIdentifiers != (inventory.Identifiers{Email: 1, Phone: 1}) || after.yielded[eligible(t, "email", "alice@example.com")] {
		t.Errorf("the next read: %+v; want alice opted out", after.sum.EligibleIdentifiers)
	}
}

// optOutOnRewind commits an opt-out of alice (u1) on another connection
// before the first Rewind.
type optOutOnRewind struct {
	*Source
	db interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}
	rewinds *int
}

func (o *optOutOnRewind) Rewind(ctx context.Context) error {
	if *o.rewinds == 0 {
		if _, err := o.db.Exec(ctx, "INSERT INTO psimatch_inventory (user_id, kind, value, purposes, opted_out) VALUES ('u1', 'email', 'alice@example.com', 'advertising', true)"); err != nil {
			return err
		}
	}
	*o.rewinds++
	return o.Source.Rewind(ctx)
}
