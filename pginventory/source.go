package pginventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/psimatch/psimatch/psi/inventory"
)

// DefaultQuery is the query run when none is given: it reads the table
// psimatch_inventory, whose shape README.md gives.
const DefaultQuery = "SELECT user_id, kind, value, purposes, opted_out FROM psimatch_inventory"

// The columns the query must return, by name.
var columnNames = [...]string{"user_id", "kind", "value", "purposes", "opted_out"}

const (
	colUserID = iota
	colKind
	colValue
	colPurposes
	colOptedOut
	numCols
)

// Source is an inventory.Source reading the rows of one query, once. It
// holds one connection until Close. It is not safe for concurrent use.
type Source struct {
	name     string
	query    string
	ctx      context.Context
	conn     *pgx.Conn
	rows     pgx.Rows
	cols     [numCols]int // index of each column in the result
	purposes columnKind
	optedOut columnKind
	line     int64 // rows read
	done     bool
	err      error // the error that ended the scan, returned again by Next
}

// columnKind is how a column's text form is decoded.
type columnKind uint8

const (
	asText  columnKind = iota // the text form as is
	asArray                   // a one-dimensional array literal, {a,b}
	asBool                    // "t" or "f"
)

// Open connects to the database named by conn (a postgres:// URL or a libpq
// key/value string) and starts query (DefaultQuery if empty). It checks that
// the query returns the columns user_id, kind, value, purposes and
// opted_out, with usable types, before reading any row.
//
// ctx governs the connection and the whole scan, not only Open: cancelling it
// ends Next with an error. The caller must Close the Source.
//
// Every error is an *Error naming the database without its password.
func Open(ctx context.Context, conn string, query string) (*Source, error) {
	if strings.TrimSpace(query) == "" {
		query = DefaultQuery
	}
	cfg, name, err := parseConfig(conn)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, cfg, name)
	if err != nil {
		return nil, err
	}
	s := &Source{name: name, query: query, ctx: ctx, conn: c}
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start opens a read-only REPEATABLE READ transaction, describes the query,
// checks its columns and runs it.
func (s *Source) start() error {
	// One snapshot for every run of the query (Rewind): the passes of
	// inventory.Run then read the same rows, and an opt-out committed
	// meanwhile waits for the next read instead of failing this one.
	if _, err := s.conn.Exec(s.ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return queryError(s.ctx, err, s.name, 0, s.query)
	}
	// Describing first gives a missing table or column, or a query that is
	// not one SELECT, as a clean error before anything runs.
	desc, err := s.conn.PgConn().Prepare(s.ctx, "", s.query, nil)
	if err != nil {
		return queryError(s.ctx, err, s.name, 0, s.query)
	}
	if len(desc.Fields) == 0 {
		return s.badQuery("the query returns no rows; it must be a SELECT")
	}
	for i := range s.cols {
		s.cols[i] = -1
	}
	found := make([]string, len(desc.Fields))
	for i, fd := range desc.Fields {
		found[i] = fd.Name
		for c, name := range columnNames {
			if fd.Name != name {
				continue
			}
			if s.cols[c] >= 0 {
				return s.badQuery("column %s appears twice in the result", name)
			}
			s.cols[c] = i
		}
	}
	var missing []string
	for c, i := range s.cols {
		if i < 0 {
			missing = append(missing, columnNames[c])
		}
	}
	if missing != nil {
		return s.badQuery("the result lacks the column(s) %s (it has: %s); name them with AS, such as SELECT id AS user_id",
			strings.Join(missing, ", "), strings.Join(found, ", "))
	}

	types, err := s.lookupTypes(desc.Fields[s.cols[colPurposes]].DataTypeOID, desc.Fields[s.cols[colOptedOut]].DataTypeOID)
	if err != nil {
		return err
	}
	pt, ot := types[0], types[1]
	switch {
	case pt.category == "A" && (pt.elemCategory == "S" || pt.elemCategory == "E"):
		s.purposes = asArray
	case pt.category == "S" || pt.category == "E":
		s.purposes = asText
	default:
		return s.badQuery("column purposes has type %s; want text (\";\"-separated) or text[] (cast it in the query, such as purposes::text[])", pt.name)
	}
	switch ot.category {
	case "B":
		s.optedOut = asBool
	case "S", "E":
		s.optedOut = asText
	default:
		return s.badQuery("column opted_out has type %s; want boolean", ot.name)
	}

	return s.run()
}

// run runs the query (again), in the source's transaction.
func (s *Source) run() error {
	rows, err := s.conn.Query(s.ctx, s.query)
	if err != nil {
		return queryError(s.ctx, err, s.name, 0, s.query)
	}
	s.rows = rows
	return nil
}

// Rewind runs the query again, in the same REPEATABLE READ transaction: it
// returns the same rows as the first run, whatever was committed since, so
// that the passes of inventory.Run read one snapshot of the inventory. ctx
// replaces the context given to Open.
func (s *Source) Rewind(ctx context.Context) error {
	if s.conn == nil {
		return &Error{Source: s.name, Setting: SettingConn, Err: errors.New("reading the inventory again: the source is closed")}
	}
	if s.rows != nil && !s.done {
		// The previous read did not reach its end (it failed): a new query
		// cannot start on this connection.
		return &Error{Source: s.name, Setting: SettingQuery, Err: errors.New("reading the inventory again: the previous read did not finish")}
	}
	s.ctx, s.line, s.done, s.err = ctx, 0, false, nil
	return s.run()
}

func (s *Source) badQuery(format string, a ...any) error {
	return &Error{Source: s.name, Setting: SettingQuery, Err: fmt.Errorf(format, a...)}
}

// pgType is what the catalog says of a column type.
type pgType struct {
	name         string // such as "text[]"
	category     string // pg_type.typcategory: "S" string, "A" array, "B" boolean, "E" enum
	elemCategory string // an array's element's category
}

// lookupTypes reads the catalog entries of the given type OIDs.
func (s *Source) lookupTypes(oids ...uint32) ([]pgType, error) {
	out := make([]pgType, len(oids))
	for i, oid := range oids {
		err := s.conn.QueryRow(s.ctx, `SELECT format_type(t.oid, NULL), t.typcategory::text, coalesce(e.typcategory::text, '')
			FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
			WHERE t.oid = $1`, oid).Scan(&out[i].name, &out[i].category, &out[i].elemCategory)
		if err != nil {
			return nil, queryError(s.ctx, fmt.Errorf("looking up the type of a column: %w", err), s.name, 0, s.query)
		}
	}
	return out, nil
}

// Name returns the database's description without its password, such as
// postgres://psimatch@127.0.0.1:5432/ads. It names the source in the
// inventory's errors.
func (s *Source) Name() string { return s.name }

// Next reads the next row into r, with r.Line its 1-based row number. It
// returns io.EOF after the last row, and an *Error if the query or the
// connection fails. A row that cannot be decoded is returned with r.Err set.
func (s *Source) Next(r *inventory.Raw) error {
	if s.err != nil {
		return s.err
	}
	if s.done || s.rows == nil {
		return io.EOF
	}
	if !s.rows.Next() {
		s.done = true
		s.rows.Close()
		if err := s.rows.Err(); err != nil {
			s.err = queryError(s.ctx, err, s.name, s.line, s.query)
			return s.err
		}
		return io.EOF
	}
	s.line++
	*r = inventory.Raw{Line: s.line}
	vals := s.rows.RawValues()
	if len(vals) <= s.maxCol() {
		r.Err = errors.New("row has fewer columns than the query described")
		return nil
	}
	// The bytes of vals are valid only until the next call of rows.Next,
	// so each is copied into a string.
	r.UserID = string(vals[s.cols[colUserID]])
	r.Kind = string(vals[s.cols[colKind]])
	r.Value = string(vals[s.cols[colValue]])
	if v := vals[s.cols[colPurposes]]; v != nil { // NULL: no purposes
		if s.purposes == asArray {
			items, err := parseArray(v)
			if err != nil {
				r.Err = fmt.Errorf("purposes: %w", err)
				return nil
			}
			r.Purposes = items
		} else {
			r.Purposes = []string{string(v)}
		}
	}
	if v := vals[s.cols[colOptedOut]]; v != nil { // NULL: false
		if s.optedOut == asBool {
			switch string(v) {
			case "t":
				r.OptedOut = "true"
			case "f":
				r.OptedOut = "false"
			default:
				r.Err = errors.New("opted_out: not a boolean")
				return nil
			}
		} else {
			r.OptedOut = string(v)
		}
	}
	return nil
}

func (s *Source) maxCol() int {
	m := 0
	for _, c := range s.cols {
		m = max(m, c)
	}
	return m
}

// closeTimeout bounds the goodbye to the server in Close.
const closeTimeout = 5 * time.Second

// Close ends the connection, and with it the query if it is still running.
// It does not read the rows left: closing a scan of a large table early is
// quick.
func (s *Source) Close() error {
	// Closing pgx's rows would read the rest of the result; closing the
	// connection makes the server abandon the query instead.
	s.done = true
	if s.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := s.conn.Close(ctx)
	s.conn = nil
	if err != nil {
		return &Error{Source: s.name, Setting: SettingConn, Err: fmt.Errorf("closing the connection: %w", err)}
	}
	return nil
}

var (
	_ inventory.Source   = (*Source)(nil)
	_ inventory.Rewinder = (*Source)(nil)
)

// Opener returns an inventory.Opener for query on the database conn names.
// inventory.Run reads the inventory two or three times (deny wins needs the
// opted-out users before it judges a value): it opens one Source and rewinds
// it, so every pass runs the query in the same REPEATABLE READ snapshot.
func Opener(conn, query string) inventory.Opener {
	return func(ctx context.Context) (inventory.Source, func() error, error) {
		src, err := Open(ctx, conn, query)
		if err != nil {
			return nil, nil, err
		}
		return src, src.Close, nil
	}
}
