package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/psimatch/psimatch/internal/decompress"
	"github.com/psimatch/psimatch/pginventory"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/urfave/cli/v2"
)

// maxInvalidShown caps the invalid records printed by inventory check; the
// rest are counted in the summary.
const maxInvalidShown = 100

func inventoryCommand() *cli.Command {
	return &cli.Command{
		Name:  "inventory",
		Usage: "inspect the platform's identifier inventory",
		Subcommands: []*cli.Command{
			{
				Name:  "check",
				Usage: "read the inventory through the purpose policy and print what would be matchable, never a value",
				Description: "Reads a CSV or JSON Lines inventory, or the rows of a PostgreSQL query (columns\n" +
					"user_id, kind, value, purposes, opted_out), and counts the records the purpose\n" +
					"policy makes eligible and those it excludes, by reason. Deny wins, by value and\n" +
					"by user: a value is eligible only when some record gives it advertising and no\n" +
					"record of it (any user) is security-only, opted out or unreadable, and no\n" +
					"user holding it opted out anywhere. The inventory is read twice. Invalid\n" +
					"records are listed by line (row number for a database) on standard error.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "inventory", Usage: "the inventory `FILE` (.csv, .jsonl or .ndjson; - for standard input with --format), or a PostgreSQL database: postgres://USER@HOST:PORT/DBNAME or \"host=HOST dbname=DBNAME user=USER\" (password from PGPASSWORD or ~/.pgpass)", Required: true},
					&cli.StringFlag{Name: "inventory-query", Usage: "the `SQL` query that reads a database inventory; it must return the columns user_id, kind, value, purposes, opted_out", Value: pginventory.DefaultQuery},
					&cli.StringFlag{Name: "default-region", Usage: "ISO 3166 `REGION` of phone numbers written without a country code, such as US"},
					&cli.StringFlag{Name: "format", Aliases: []string{"inventory-format"}, Usage: "`FORMAT` of the inventory: csv or jsonl (default: from the file extension)"},
					&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object"},
					&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
				},
				Action: inventoryCheck,
			},
		},
	}
}

func inventoryCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("inventory check takes no arguments; give the file with --inventory")
	}
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}, DefaultRegion: c.String("default-region")})
	if err != nil {
		return usageError("--default-region: want a two-letter ISO 3166 code such as US")
	}

	spec := c.String("inventory")
	open, err := openInventory(inventorySpec{spec: spec, format: c.String("format"), formatFlag: "--format",
		query: c.String("inventory-query"), querySet: c.IsSet("inventory-query"), stdin: c.App.Reader})
	if err != nil {
		return err
	}
	bar := newProgress(c.App.ErrWriter, c.Bool("quiet"))
	var name string
	counted := func(ctx context.Context) (inventory.Source, func() error, error) {
		src, closeSrc, err := open(ctx)
		if err != nil {
			return nil, nil, err
		}
		name = src.Name()
		counted := withProgress(src, bar)
		if rw, ok := src.(inventory.Rewinder); ok && counted != src {
			counted = rewindable{counted, rw}
		}
		return counted, closeSrc, nil
	}

	var invalid int64
	onInvalid := func(e *inventory.RecordError) {
		invalid++
		if invalid > maxInvalidShown {
			return
		}
		if errors.Is(e, normalize.ErrPhoneNoCountryCode) {
			fmt.Fprintf(c.App.ErrWriter, "%v; pass --default-region\n", e)
		} else {
			fmt.Fprintln(c.App.ErrWriter, e)
		}
	}
	// Check reads the inventory twice (deny wins needs the opted-out users
	// before it can judge a value) and never makes the set itself.
	var sum inventory.Summary
	res, err := inventory.Check(c.Context, counted, policy, onInvalid)
	if err == nil {
		sum = res.Summary
		err = res.Close()
	}
	bar.done()
	if invalid > maxInvalidShown {
		fmt.Fprintf(c.App.ErrWriter, "... and %d more invalid records\n", invalid-maxInvalidShown)
	}
	if err != nil {
		if pginventory.IsConnString(spec) {
			return databaseError(err)
		}
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return withHint(err, exitInput, "check that --inventory names a readable file")
		}
		return withHint(err, exitInput, "the inventory needs a header line (CSV) or one JSON object per line (JSON Lines) with the fields user_id, kind, value, purposes, opted_out")
	}

	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		return enc.Encode(sum)
	}
	return printSummary(c.App.Writer, name, sum)
}

// rewindable keeps a wrapped Source a Rewinder, so that the passes of
// inventory.Check read one version of the inventory.
type rewindable struct {
	inventory.Source
	rw inventory.Rewinder
}

func (r rewindable) Rewind(ctx context.Context) error { return r.rw.Rewind(ctx) }

// inventorySpec is how serve and inventory check name an inventory: the
// --inventory value (a file, "-" for standard input, or a PostgreSQL
// connection string), its format flag (formatFlag names it in messages:
// both commands take --format and --inventory-format), and the query for a
// database (querySet: given explicitly, so a file with one is a mistake).
type inventorySpec struct {
	spec, format, formatFlag string
	query                    string
	querySet                 bool
	stdin                    io.Reader
}

// openInventory checks an inventory spec and returns the opener that every
// read (each pass of each start, reload and rotation) calls: one function
// for serve and inventory check.
func openInventory(is inventorySpec) (inventory.Opener, error) {
	spec := is.spec
	if pginventory.IsConnString(spec) {
		if is.format != "" {
			return nil, usageError("%s applies to inventory files; --inventory names a PostgreSQL database", is.formatFlag)
		}
		// Each read runs the query again, so an opt-out recorded in the
		// database takes effect at the next read.
		return func(ctx context.Context) (inventory.Source, func() error, error) {
			return openDatabaseInventory(ctx, spec, is.query)
		}, nil
	}
	if is.querySet {
		return nil, withHint(errors.New("--inventory-query needs --inventory to name a PostgreSQL database"), exitUsage,
			"give --inventory as postgres://USER@HOST:PORT/DBNAME or \"host=HOST dbname=DBNAME user=USER\"")
	}
	format, err := inventory.ParseFormat(is.format)
	if err != nil {
		return nil, usageError("%s: want csv or jsonl", is.formatFlag)
	}
	if spec == "-" {
		if format == inventory.Auto {
			return nil, usageError("--inventory -: standard input needs %s csv or %s jsonl", is.formatFlag, is.formatFlag)
		}
		rs, ok := is.stdin.(io.ReadSeeker)
		if ok {
			_, err := rs.Seek(0, io.SeekCurrent)
			ok = err == nil
		}
		if !ok {
			return nil, withHint(errors.New("--inventory -: standard input is not a file"), exitUsage,
				"deny wins reads the inventory more than once: redirect a file (< inventory.csv) or give it with --inventory")
		}
		// Each pass rewinds standard input and decodes it afresh (it may be
		// gzip or zstd).
		return func(context.Context) (inventory.Source, func() error, error) {
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return nil, nil, fmt.Errorf("standard input: %w", err)
			}
			src, err := inventory.NewSource(decompress.Reader(rs, "standard input"), "standard input", format)
			return src, func() error { return nil }, err
		}, nil
	}
	if format == inventory.Auto {
		if format, err = inventory.FormatOf(decompress.TrimExt(spec)); err != nil {
			return nil, withHint(err, exitUsage, "pass "+is.formatFlag+" csv or "+is.formatFlag+" jsonl")
		}
	}
	// Stat, not open: the inventory may be a named pipe, whose reader must
	// not show up before the read. A failure reads as the open would.
	if _, err := os.Stat(spec); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = &os.PathError{Op: "open", Path: pe.Path, Err: pe.Err}
		}
		return nil, withHint(err, exitInput, "check the path given to --inventory")
	}
	return func(context.Context) (inventory.Source, func() error, error) { return openInventoryFile(spec, format) }, nil
}

// openInventoryFile opens an inventory file in a known format; the returned
// function closes it. serve calls it for every read of the inventory.
func openInventoryFile(path string, format inventory.Format) (inventory.Source, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, withHint(err, exitInput, "check the path given to --inventory")
	}
	src, err := inventory.NewSource(decompress.Reader(f, path), path, format)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return src, f.Close, nil
}

// openDatabaseInventory runs query ("" for pginventory.DefaultQuery) on the
// PostgreSQL database conn names. ctx governs the whole scan. Errors come
// with the exit status and hints of databaseError.
func openDatabaseInventory(ctx context.Context, conn, query string) (inventory.Source, func() error, error) {
	src, err := pginventory.Open(ctx, conn, query)
	if err != nil {
		return nil, nil, databaseError(err)
	}
	return src, src.Close, nil
}

// databaseError gives an error from pginventory its exit status and a hint
// naming the flag to check. pginventory never puts the password in an error.
func databaseError(err error) error {
	var e *pginventory.Error
	if !errors.As(err, &e) {
		return withHint(err, exitInput)
	}
	switch e.Setting {
	case pginventory.SettingPassword:
		return withHint(err, exitAuth, "give the password in PGPASSWORD or ~/.pgpass, or in --inventory as postgres://USER:PASSWORD@HOST/DBNAME")
	case pginventory.SettingQuery:
		return withHint(err, exitInput,
			"check --inventory-query (default: "+pginventory.DefaultQuery+")",
			"the query must return the columns user_id, kind, value, purposes (text or text[]) and opted_out (boolean)")
	case pginventory.SettingConn:
		return withHint(err, exitNetwork, "check --inventory: postgres://USER@HOST:PORT/DBNAME or \"host=HOST port=PORT dbname=DBNAME user=USER\"")
	}
	return withHint(err, exitFailure)
}

// printSummary prints the summary as a few aligned lines.
func printSummary(w io.Writer, name string, s inventory.Summary) error {
	lines := []struct {
		label string
		n     int64
	}{
		{"records", s.Records},
		{"eligible records", s.EligibleRecords},
		{"excluded, invalid", s.Excluded.Invalid},
		{"excluded, security_only", s.Excluded.SecurityOnly},
		{"excluded, no_advertising_purpose", s.Excluded.NoAdvertisingPurpose},
		{"excluded, opted_out", s.Excluded.OptedOut},
		{"excluded, user opted out elsewhere", s.Excluded.UserOptedOut},
		{"excluded, value shared with security_only", s.Excluded.ValueSecurityOnly},
		{"excluded, value shared with opted_out", s.Excluded.ValueOptedOut},
		{"excluded, value shared with invalid", s.Excluded.ValueInvalid},
		{"eligible identifiers, email", s.EligibleIdentifiers.Email},
		{"eligible identifiers, phone", s.EligibleIdentifiers.Phone},
	}
	width := len(strconv.FormatInt(s.Records, 10))
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", name)
	for _, l := range lines {
		fmt.Fprintf(&b, "  %-42s %*d\n", l.label, width, l.n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
