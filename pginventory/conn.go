package pginventory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// IsConnString reports whether s names a PostgreSQL database rather than a
// file: a postgres:// or postgresql:// URL, or a libpq key/value string that
// sets dbname or host (such as "host=db.example dbname=ads user=psimatch").
func IsConnString(s string) bool {
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		return true
	}
	for f := range strings.FieldsSeq(lower) {
		if strings.HasPrefix(f, "dbname=") || strings.HasPrefix(f, "host=") {
			return true
		}
	}
	return false
}

// Setting is the setting an Error says to check. The zero Setting is
// none: the scan was cancelled.
type Setting uint8

// The settings an Error may point to.
const (
	// SettingConn is the connection string: host, port, database, user,
	// TLS mode (psimatch's --inventory).
	SettingConn Setting = iota + 1
	// SettingPassword is the password: in the connection string, PGPASSWORD
	// or ~/.pgpass.
	SettingPassword
	// SettingQuery is the inventory query (psimatch's --inventory-query), or
	// the table or view it reads.
	SettingQuery
)

// String returns what to check, as the end of a sentence starting "check".
func (s Setting) String() string {
	switch s {
	case SettingConn:
		return "the connection string (host, port, database name, user, sslmode)"
	case SettingPassword:
		return "the password (in the connection string, PGPASSWORD or ~/.pgpass)"
	case SettingQuery:
		return "the inventory query and the table or view it reads"
	}
	return fmt.Sprintf("setting(%d)", uint8(s))
}

// Error is a failure to connect, to run the query or to read its rows. Its
// message names the source without its password and says what to check:
//
//	pginventory: postgres://psimatch@127.0.0.1:5432/ads: password authentication failed for user "psimatch" (SQLSTATE 28P01); check the password (in the connection string, PGPASSWORD or ~/.pgpass)
type Error struct {
	// Source is the redacted description of the database, as Source.Name.
	Source string
	// Setting is what the user should check; zero when the caller's
	// context ended the scan.
	Setting Setting
	// Err is what failed. It never holds the password or a row's values.
	Err error
}

func (e *Error) Error() string {
	if e.Setting == 0 {
		return fmt.Sprintf("pginventory: %s: %v", e.Source, e.Err)
	}
	return fmt.Sprintf("pginventory: %s: %v; check %v", e.Source, e.Err, e.Setting)
}

func (e *Error) Unwrap() error { return e.Err }

// parseConfig parses a connection string and returns the configuration and
// a description of it without the password.
func parseConfig(conn string) (*pgx.ConnConfig, string, error) {
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		// pgx redacts the password from its message only on a best-effort
		// basis for a malformed string, so show only the innermost cause,
		// and that only when it cannot be the connection string itself.
		return nil, "", &Error{Source: "connection string", Setting: SettingConn, Err: parseErrorCause(err)}
	}
	return cfg, describe(cfg), nil
}

// parseErrorCause returns a message for a connection string that did not
// parse, without any part of the string.
func parseErrorCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("not a valid URL: %v", ue.Err)
	}
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return errors.New("not a valid connection string: a number (such as the port) is malformed")
	}
	return errors.New("not a valid connection string (want postgres://user@host:port/dbname or \"host=... dbname=... user=...\")")
}

// describe names a configuration as a URL without its password, such as
// postgres://psimatch@127.0.0.1:5432/ads.
func describe(cfg *pgx.ConnConfig) string {
	u := url.URL{Scheme: "postgres", Path: "/" + cfg.Database}
	if cfg.User != "" {
		u.User = url.User(cfg.User)
	}
	port := strconv.Itoa(int(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory
		u.RawQuery = url.Values{"host": {cfg.Host}, "port": {port}}.Encode()
	} else {
		u.Host = net.JoinHostPort(cfg.Host, port)
	}
	return u.String()
}

// defaultConnectTimeout bounds the connection attempt when the connection
// string sets no connect_timeout.
const defaultConnectTimeout = 15 * time.Second

// connect connects with cfg, set up for reading the inventory.
func connect(ctx context.Context, cfg *pgx.ConnConfig, name string) (*pgx.Conn, error) {
	// The query text is sent as is, and every value comes back in text
	// form, so that a column of any type can be read as text.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "psimatch"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(ctx, err, name, cfg)
	}
	return conn, nil
}

// SQLSTATE codes that point at a setting.
const (
	codeInvalidPassword  = "28P01"
	codeInvalidAuthSpec  = "28000" // no pg_hba.conf entry, role cannot log in
	codeInvalidCatalog   = "3D000" // database does not exist
	codeUndefinedTable   = "42P01"
	codeReadOnlySQLTrans = "25006"
)

// connectError explains a failed connection attempt.
func connectError(ctx context.Context, err error, name string, cfg *pgx.ConnConfig) error {
	if ctx.Err() != nil {
		return &Error{Source: name, Err: fmt.Errorf("connecting: %w", ctx.Err())}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		setting := SettingConn
		switch pgErr.Code {
		case codeInvalidPassword:
			setting = SettingPassword
			if cfg.Password == "" {
				return &Error{Source: name, Setting: setting, Err: fmt.Errorf("the server wants a password for user %q and none was given (SQLSTATE %s)", cfg.User, pgErr.Code)}
			}
		case codeInvalidCatalog:
			return &Error{Source: name, Setting: setting, Err: fmt.Errorf("database %q does not exist (SQLSTATE %s)", cfg.Database, pgErr.Code)}
		}
		return &Error{Source: name, Setting: setting, Err: fmt.Errorf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)}
	}
	// A network or TLS failure. pgconn's message names the user, database
	// and address, never the password.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		err = ce.Unwrap()
	}
	// With sslmode=prefer there is one line per attempt, usually alike:
	// keep the first.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return &Error{Source: name, Setting: SettingConn, Err: fmt.Errorf("cannot connect (is the server running and reachable?): %s", msg)}
}

// queryError explains a failure to run the query or to read its rows. row is
// the number of rows read before the failure; query is the query run.
func queryError(ctx context.Context, err error, name string, row int64, query string) error {
	where := "the query failed"
	if row > 0 {
		where = fmt.Sprintf("after row %d", row)
	}
	if ctx.Err() != nil {
		return &Error{Source: name, Err: fmt.Errorf("%s: %w", where, ctx.Err())}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Only the messages of the classes that name objects (a table, a
		// column, a role) are shown. Any other message, such as a failed
		// cast's `invalid input syntax for type bigint: "+1 415 555 0100"`,
		// may quote a row's value: it is replaced by its SQLSTATE, its
		// class and the names of the objects involved, and the driver's
		// error is not wrapped, so the value is not reachable either.
		msg := fmt.Sprintf("%s: %s", where, pgErrorText(pgErr))
		switch pgErr.Code {
		case codeUndefinedTable:
			if query == DefaultQuery {
				msg += "; the default query reads the table psimatch_inventory"
			}
		case codeReadOnlySQLTrans:
			msg += "; the query runs read-only and may only read"
		}
		return &Error{Source: name, Setting: SettingQuery, Err: errors.New(msg)}
	}
	return &Error{Source: name, Setting: SettingConn, Err: fmt.Errorf("%s: %w", where, err)}
}

// objectClasses are the SQLSTATE classes whose messages name objects
// (tables, columns, types, roles, databases) or the query's own text, never
// a row's value.
var objectClasses = map[string]bool{
	"08": true, // connection exception
	"0A": true, // feature not supported
	"25": true, // invalid transaction state (read-only)
	"28": true, // invalid authorization
	"3D": true, // invalid catalog name
	"3F": true, // invalid schema name
	"40": true, // transaction rollback
	"42": true, // syntax error or access rule violation
	"53": true, // insufficient resources
	"54": true, // program limit exceeded
	"55": true, // object not in prerequisite state
	"57": true, // operator intervention (cancelled, shutting down)
	"58": true, // system error
}

// valueFreeCodes are codes of the other classes whose messages are fixed
// text.
var valueFreeCodes = map[string]bool{
	"22012": true, // division by zero
}

// valueClasses describe the SQLSTATE classes whose messages may quote a
// value.
var valueClasses = map[string]string{
	"22": "a value in a row is invalid for its type or for an expression of the query (data exception), such as a failed cast in a view",
	"23": "a row violates an integrity constraint",
	"P0": "a PL/pgSQL function raised an error",
	"XX": "internal error",
}

// pgErrorText returns what may be said of a server error: its message when
// its class names only objects, else its class's description, its SQLSTATE
// and the names (never the values) of the column, table, type and constraint
// involved.
func pgErrorText(e *pgconn.PgError) string {
	class := e.Code
	if len(class) > 2 {
		class = class[:2]
	}
	if objectClasses[class] || valueFreeCodes[e.Code] {
		return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
	}
	desc, ok := valueClasses[class]
	if !ok {
		desc = "the server reported an error whose message may hold a row's value, so it is not shown"
	}
	var objs []string
	for _, o := range []struct{ what, name string }{
		{"schema", e.SchemaName}, {"table", e.TableName}, {"column", e.ColumnName},
		{"type", e.DataTypeName}, {"constraint", e.ConstraintName},
	} {
		if o.name != "" {
			objs = append(objs, fmt.Sprintf("%s %q", o.what, o.name))
		}
	}
	text := fmt.Sprintf("%s (SQLSTATE %s; the server's message is not shown, as it may quote the value)", desc, e.Code)
	if objs != nil {
		text += "; involving " + strings.Join(objs, ", ")
	}
	return text
}
