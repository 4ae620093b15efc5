package state

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/psimatch/psimatch/psi/ident"
)

// Schema is the SQL that Postgres runs on first use (every statement is
// idempotent). README.md documents it.
const Schema = `
CREATE TABLE IF NOT EXISTS psimatch_sessions (
	id              text PRIMARY KEY,
	advertiser      text NOT NULL,
	mode            text NOT NULL,
	epoch           text NOT NULL,
	generation      text NOT NULL DEFAULT '',
	digest          text NOT NULL,
	declared_email  bigint NOT NULL CHECK (declared_email >= 0),
	declared_phone  bigint NOT NULL CHECK (declared_phone >= 0),
	evaluated_email bigint NOT NULL DEFAULT 0 CHECK (evaluated_email BETWEEN 0 AND declared_email),
	evaluated_phone bigint NOT NULL DEFAULT 0 CHECK (evaluated_phone BETWEEN 0 AND declared_phone),
	opened          timestamptz NOT NULL,
	expires         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS psimatch_sessions_advertiser_opened ON psimatch_sessions (advertiser, opened);
CREATE TABLE IF NOT EXISTS psimatch_advertiser_budgets (
	advertiser text PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS psimatch_element_usage (
	advertiser text NOT NULL,
	epoch      text NOT NULL,
	used       bigint NOT NULL CHECK (used >= 0),
	ends       timestamptz NOT NULL,
	PRIMARY KEY (advertiser, epoch)
);
CREATE TABLE IF NOT EXISTS psimatch_refusals (
	advertiser   text NOT NULL,
	window_start timestamptz NOT NULL,
	refusals     bigint NOT NULL,
	PRIMARY KEY (advertiser, window_start)
);
`

// schemaLock is the advisory lock key that serializes creating the schema
// when several replicas start at once.
const schemaLock = 0x7073696d61746368 // "psimatch"

// Postgres is the Store shared by replicas through a PostgreSQL database.
// Opening a session takes a row lock on the advertiser's budget row, so
// sessions of one advertiser are granted one at a time across replicas;
// reserving a batch is a single conditional UPDATE.
type Postgres struct {
	pool *pgxpool.Pool
	name string
}

// OpenPostgres connects to the database conn (a postgres:// URL or a
// key/value string, as --inventory takes) and creates the schema if it is
// missing. Errors name the database without its password.
func OpenPostgres(ctx context.Context, conn string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		return nil, errors.New("state: --state: not a valid connection string (want postgres://user@host:port/dbname or \"host=... dbname=... user=...\")")
	}
	cc := cfg.ConnConfig
	name := (&url.URL{Scheme: "postgres", User: url.User(cc.User), Host: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), Path: "/" + cc.Database}).String()
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "psimatch-state"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 15 * time.Second
	}
	cfg.MaxConns = max(cfg.MaxConns, 16)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", name, err)
	}
	p := &Postgres{pool: pool, name: name}
	if err := p.createSchema(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) createSchema(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, Schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: %s: creating the schema: %w; check the connection string and that the user may create tables", p.name, err)
	}
	return nil
}

func (p *Postgres) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var q *QuotaError
	if errors.As(err, &q) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("state: %s: %s: %w", p.name, what, err)
}

// OpenSession implements Store.
func (p *Postgres) OpenSession(ctx context.Context, s Session, lim Limits) error {
	if err := s.validate(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Serialize the advertiser's openings on its budget row.
		if _, err := tx.Exec(ctx, `INSERT INTO psimatch_advertiser_budgets (advertiser) VALUES ($1) ON CONFLICT DO NOTHING`, s.Advertiser); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM psimatch_advertiser_budgets WHERE advertiser = $1 FOR UPDATE`, s.Advertiser); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT opened FROM psimatch_sessions WHERE advertiser = $1 AND opened > $2 ORDER BY opened DESC LIMIT $3`,
			s.Advertiser, s.Opened.Add(-Day), max(lim.SessionsPerDay, 0))
		if err != nil {
			return err
		}
		starts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return err
		}
		if len(starts) >= lim.SessionsPerDay {
			return &QuotaError{Err: ErrQuotaSessions, RetryAfter: sessionsRetry(starts, lim.SessionsPerDay, s.Opened)}
		}
		total := s.Declared.Email + s.Declared.Phone
		var used int64
		err = tx.QueryRow(ctx, `SELECT used FROM psimatch_element_usage WHERE advertiser = $1 AND epoch = $2`, s.Advertiser, s.Epoch).Scan(&used)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if total > lim.ElementsPerEpoch-used {
			return &QuotaError{Err: ErrQuotaElements, RetryAfter: max(lim.EpochEnds.Sub(s.Opened), time.Second), Left: max(lim.ElementsPerEpoch-used, 0)}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO psimatch_element_usage (advertiser, epoch, used, ends) VALUES ($1, $2, $3, $4)
			ON CONFLICT (advertiser, epoch) DO UPDATE SET used = psimatch_element_usage.used + EXCLUDED.used, ends = GREATEST(psimatch_element_usage.ends, EXCLUDED.ends)`,
			s.Advertiser, s.Epoch, total, lim.EpochEnds); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO psimatch_sessions (id, advertiser, mode, epoch, generation, digest, declared_email, declared_phone, opened, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			s.ID, s.Advertiser, s.Mode, s.Epoch, s.Generation, s.Digest, s.Declared.Email, s.Declared.Phone, s.Opened, s.Expires)
		return err
	})
	return p.wrap("opening a session", err)
}

// Session implements Store.
func (p *Postgres) Session(ctx context.Context, id string) (Session, error) {
	var s Session
	err := p.pool.QueryRow(ctx, `SELECT id, advertiser, mode, epoch, generation, digest, declared_email, declared_phone, evaluated_email, evaluated_phone, opened, expires
		FROM psimatch_sessions WHERE id = $1`, id).Scan(&s.ID, &s.Advertiser, &s.Mode, &s.Epoch, &s.Generation, &s.Digest,
		&s.Declared.Email, &s.Declared.Phone, &s.Evaluated.Email, &s.Evaluated.Phone, &s.Opened, &s.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	return s, p.wrap("reading a session", err)
}

// evaluatedColumn names the kind's columns; kinds come from a fixed
// vocabulary, never from a caller's string.
func evaluatedColumn(k ident.Kind) (evaluated, declared string, ok bool) {
	switch k {
	case ident.Email:
		return "evaluated_email", "declared_email", true
	case ident.Phone:
		return "evaluated_phone", "declared_phone", true
	}
	return "", "", false
}

// Reserve implements Store.
func (p *Postgres) Reserve(ctx context.Context, id string, k ident.Kind, n int64) error {
	ev, decl, ok := evaluatedColumn(k)
	if !ok || n <= 0 {
		return ErrInvalid
	}
	var left int64
	err := p.pool.QueryRow(ctx, `UPDATE psimatch_sessions SET `+ev+` = `+ev+` + $2 WHERE id = $1 AND `+ev+` + $2 <= `+decl+` RETURNING `+decl+` - `+ev, id, n).Scan(&left)
	if errors.Is(err, pgx.ErrNoRows) {
		s, err := p.Session(ctx, id)
		if err != nil {
			return err
		}
		return &QuotaError{Err: ErrOverDeclared, Left: s.Declared.Get(k) - s.Evaluated.Get(k)}
	}
	return p.wrap("reserving a batch", err)
}

// Release implements Store.
func (p *Postgres) Release(ctx context.Context, id string, k ident.Kind, n int64) error {
	ev, _, ok := evaluatedColumn(k)
	if !ok || n <= 0 {
		return ErrInvalid
	}
	tag, err := p.pool.Exec(ctx, `UPDATE psimatch_sessions SET `+ev+` = `+ev+` - $2 WHERE id = $1 AND `+ev+` >= $2`, id, n)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrInvalid
	}
	return p.wrap("releasing a batch", err)
}

// Refused implements Store.
func (p *Postgres) Refused(ctx context.Context, advertiser string, window time.Time) (int64, error) {
	var n int64
	err := p.pool.QueryRow(ctx, `INSERT INTO psimatch_refusals (advertiser, window_start, refusals) VALUES ($1, $2, 1)
		ON CONFLICT (advertiser, window_start) DO UPDATE SET refusals = psimatch_refusals.refusals + 1 RETURNING refusals`, advertiser, window).Scan(&n)
	return n, p.wrap("counting a refusal", err)
}

// Usage implements Store.
func (p *Postgres) Usage(ctx context.Context, now time.Time) ([]Usage, error) {
	rows, err := p.pool.Query(ctx, `
		WITH s AS (SELECT advertiser, count(*) AS n FROM psimatch_sessions WHERE opened > $1 AND opened <= $2 GROUP BY advertiser),
		     e AS (SELECT DISTINCT ON (advertiser) advertiser, epoch, used FROM psimatch_element_usage ORDER BY advertiser, ends DESC)
		SELECT COALESCE(s.advertiser, e.advertiser), COALESCE(s.n, 0), COALESCE(e.epoch, ''), COALESCE(e.used, 0)
		FROM s FULL OUTER JOIN e ON s.advertiser = e.advertiser ORDER BY 1`, now.Add(-Day), now)
	if err != nil {
		return nil, p.wrap("reading usage", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Usage, error) {
		var u Usage
		var n int64
		err := r.Scan(&u.Advertiser, &n, &u.Epoch, &u.Elements)
		u.Sessions = int(n)
		return u, err
	})
	return out, p.wrap("reading usage", err)
}

// Prune implements Store.
func (p *Postgres) Prune(ctx context.Context, now time.Time) error {
	_, err := p.pool.Exec(ctx, `DELETE FROM psimatch_sessions WHERE expires <= $1 AND opened <= $2`, now, now.Add(-Day))
	if err == nil {
		_, err = p.pool.Exec(ctx, `DELETE FROM psimatch_element_usage WHERE ends < $1`, now.Add(-Day))
	}
	if err == nil {
		_, err = p.pool.Exec(ctx, `DELETE FROM psimatch_refusals WHERE window_start < $1`, now.Add(-Day))
	}
	return p.wrap("pruning", err)
}

// Close implements Store.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}
