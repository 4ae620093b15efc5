package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/urfave/cli/v2"
)

func normalizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "normalize",
		Usage:     "normalize emails or phone numbers from standard input, one a line",
		UsageText: "psimatch normalize --kind email|phone [--default-region XX] [--hash] < values.txt > normalized.txt",
		Description: `Reads standard input one line at a time and writes exactly one line per
input line, in the same order, to standard output: the normalized value, or
with --hash its SHA-256 in lowercase hex (the form ad platforms accept).

An invalid line gives an empty output line and "line N: <reason>" on standard
error; the value itself is never printed there. The exit status is 1 if any
line was invalid, else 0.

Lines end with LF; a CR before the LF is removed, so CRLF files work. The
last line needs no line break. Leading and trailing spaces are part of the
value (the email rules trim them; phone parsing ignores them). Lines longer
than 65536 bytes are invalid. Memory use does not grow with the input.

Rules: protocol/README.md, "Normalization". Emails are trimmed, ASCII letters lowercased, and
for gmail.com and googlemail.com dots and +tags removed. Phones are written
E.164 (+14155550132); a number without a country code needs --default-region.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kind", Usage: "identifier kind: email or phone", Required: true},
			&cli.StringFlag{Name: "default-region", Usage: "ISO 3166-1 alpha-2 region (e.g. GB) for phone numbers written without a country code; none by default", Value: ""},
			&cli.BoolFlag{Name: "hash", Usage: "write the SHA-256 of each normalized value in lowercase hex"},
		},
		Action: runNormalize,
	}
}

func runNormalize(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("normalize takes no arguments; it reads standard input")
	}
	kind, err := ident.ParseKind(c.String("kind"))
	if err != nil {
		return usageError("--kind %q: want email or phone", c.String("kind"))
	}
	region := c.String("default-region")
	if !normalize.ValidRegion(region) {
		return usageError("--default-region %q: not a known ISO 3166-1 alpha-2 region (such as GB or US)", region)
	}

	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	errOut := bufio.NewWriter(c.App.ErrWriter)
	noCountryCode := false
	st, err := normalize.Lines(out, c.App.Reader, normalize.LineOptions{
		Kind:          kind,
		DefaultRegion: region,
		Hash:          c.Bool("hash"),
		Invalid: func(line int64, reason error) {
			// The reason never holds the value: it may be personal data.
			fmt.Fprintf(errOut, "line %d: %s\n", line, strings.TrimPrefix(reason.Error(), "normalize: "))
			noCountryCode = noCountryCode || errors.Is(reason, normalize.ErrPhoneNoCountryCode)
		},
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing standard output: %w", ferr)
	}
	if noCountryCode {
		fmt.Fprintf(errOut, "psimatch: hint: pass --default-region (such as --default-region GB) for numbers written without a country code\n")
	}
	if ferr := errOut.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing standard error: %w", ferr)
	}
	if err != nil {
		return fmt.Errorf("normalize: %w", err)
	}
	if st.Invalid > 0 {
		return silentExit(exitFailure)
	}
	return nil
}
