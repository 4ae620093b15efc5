package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
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
				Description: "Reads a CSV or JSON Lines inventory (columns user_id, kind, value, purposes,\n" +
					"opted_out) and counts the records the purpose policy makes eligible and those\n" +
					"it excludes, by reason. Only advertising-consented, not opted-out identifiers\n" +
					"are eligible. Invalid records are listed by line on standard error.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "inventory", Usage: "the inventory `FILE` (.csv, .jsonl or .ndjson; - for standard input with --format)", Required: true},
					&cli.StringFlag{Name: "default-region", Usage: "ISO 3166 `REGION` of phone numbers written without a country code, such as US"},
					&cli.StringFlag{Name: "format", Usage: "`FORMAT` of the inventory: csv or jsonl (default: from the file extension)"},
					&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object"},
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
	format, err := inventory.ParseFormat(c.String("format"))
	if err != nil {
		return usageError("--format: want csv or jsonl")
	}
	policy, err := inventory.NewPolicy(inventory.Config{DefaultRegion: c.String("default-region")})
	if err != nil {
		return usageError("--default-region: want a two-letter ISO 3166 code such as US")
	}

	path := c.String("inventory")
	var in io.Reader
	name := path
	if path == "-" {
		if format == inventory.Auto {
			return usageError("--inventory -: standard input needs --format csv or --format jsonl")
		}
		in, name = c.App.Reader, "standard input"
	} else {
		if format == inventory.Auto {
			if format, err = inventory.FormatOf(path); err != nil {
				return withHint(err, exitUsage, "pass --format csv or --format jsonl")
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return withHint(err, exitInput, "check the path given to --inventory")
		}
		defer f.Close()
		in = f
	}

	var invalid int64
	onInvalid := func(e *inventory.RecordError) {
		invalid++
		if invalid > maxInvalidShown {
			return
		}
		if errors.Is(e, ident.ErrPhoneNoCountryCode) {
			fmt.Fprintf(c.App.ErrWriter, "%v; pass --default-region\n", e)
		} else {
			fmt.Fprintln(c.App.ErrWriter, e)
		}
	}
	sum, err := inventory.Scan(c.Context, in, name, format, policy,
		func(inventory.Eligible) error { return nil }, onInvalid)
	if invalid > maxInvalidShown {
		fmt.Fprintf(c.App.ErrWriter, "... and %d more invalid records\n", invalid-maxInvalidShown)
	}
	if err != nil {
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
		{"eligible identifiers, email", s.EligibleIdentifiers.Email},
		{"eligible identifiers, phone", s.EligibleIdentifiers.Phone},
	}
	width := len(strconv.FormatInt(s.Records, 10))
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", name)
	for _, l := range lines {
		fmt.Fprintf(&b, "  %-33s %*d\n", l.label, width, l.n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
