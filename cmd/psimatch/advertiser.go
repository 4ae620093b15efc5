package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/psi"
	"github.com/urfave/cli/v2"
)

func advertiserCommand() *cli.Command {
	file := &cli.StringFlag{Name: "advertisers", Usage: "the advertiser registry `FILE` (JSON; holds token hashes, never tokens)", Required: true}
	return &cli.Command{
		Name:  "advertiser",
		Usage: "manage the advertisers a platform's server accepts",
		Subcommands: []*cli.Command{
			{
				Name:  "add",
				Usage: "register an advertiser and print its new bearer token",
				Description: "Adds an advertiser to the registry file, creating the file if needed, and\n" +
					"prints its new bearer token as the only line on standard output. The token\n" +
					"is shown this once: the file keeps only its SHA-256. Give the token to the\n" +
					"advertiser over a secure channel; it passes it to 'psimatch match --token'.",
				Flags: []cli.Flag{
					file,
					&cli.StringFlag{Name: "name", Usage: "the advertiser's `NAME` (letters, digits, . _ -; up to 64)", Required: true},
					&cli.StringFlag{Name: "modes", Value: psi.ModeEstimate.String(), Usage: "the `MODES` it may use, comma separated: estimate (an ε-deniable estimate of the overlap), count, members. count and members are for trusted advertisers: a client that deviates learns which of its identifiers are eligible"},
					&cli.Int64Flag{Name: "min-rows", Value: advertisers.DefaultMinRows, Usage: "a session must send at least `N` identifiers"},
					&cli.Int64Flag{Name: "max-rows", Value: advertisers.DefaultMaxRows, Usage: "a session may send at most `N` identifiers"},
					&cli.IntFlag{Name: "sessions-per-day", Value: advertisers.DefaultSessionsPerDay, Usage: "it may start `N` sessions in any 24 hours"},
					&cli.Int64Flag{Name: "elements-per-epoch", Value: advertisers.DefaultElementsPerEpoch, Usage: "the server evaluates at most `N` elements for it per epoch"},
				},
				Action: advertiserAdd,
			},
			{
				Name:   "list",
				Usage:  "print the registered advertisers and their limits, never their token hashes",
				Flags:  []cli.Flag{file},
				Action: advertiserList,
			},
		},
	}
}

func advertiserAdd(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("advertiser add takes no arguments; give the name with --name")
	}
	a := advertisers.Advertiser{
		Name:             c.String("name"),
		MinRows:          c.Int64("min-rows"),
		MaxRows:          c.Int64("max-rows"),
		SessionsPerDay:   c.Int("sessions-per-day"),
		ElementsPerEpoch: c.Int64("elements-per-epoch"),
	}
	// Zero would mean "the default" to advertisers.Add; here it is a mistake.
	for _, f := range []struct {
		name string
		v    int64
	}{{"min-rows", a.MinRows}, {"max-rows", a.MaxRows}, {"sessions-per-day", int64(a.SessionsPerDay)}, {"elements-per-epoch", a.ElementsPerEpoch}} {
		if f.v <= 0 {
			return usageError("--%s must be positive, got %d", f.name, f.v)
		}
	}
	for _, m := range strings.Split(c.String("modes"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			mode, err := psi.ParseMode(m)
			if err != nil {
				return usageError("--modes: %q is not a mode; want estimate, count, members or a list such as estimate,count", m)
			}
			a.Modes = append(a.Modes, mode)
		}
	}
	if len(a.Modes) == 0 {
		return usageError("--modes: want estimate, count, members or a list such as estimate,count")
	}

	path := c.String("advertisers")
	token, err := advertisers.Add(path, a)
	switch {
	case errors.Is(err, advertisers.ErrInvalid):
		return withHint(err, exitUsage, "names use letters, digits, '.', '_' and '-', up to 64 characters; --modes takes estimate, count and members; limits are positive and --min-rows at most --max-rows")
	case errors.Is(err, advertisers.ErrDuplicate):
		return withHint(err, exitFailure, "choose another --name; 'psimatch advertiser list --advertisers "+path+"' shows the names in use")
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return withHint(err, exitInput, "check that the directory of --advertisers exists and is writable")
	case err != nil:
		return withHint(err, exitInput, "fix "+path+" or restore it from a backup")
	}
	if _, err := fmt.Fprintln(c.App.Writer, token); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "psimatch: added advertiser %s to %s\n", a.Name, path)
	fmt.Fprintln(c.App.ErrWriter, "psimatch: note: the token above is shown only this once; the file keeps only its SHA-256. Give it to the advertiser over a secure channel.")
	return nil
}

func advertiserList(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("advertiser list takes no arguments")
	}
	path := c.String("advertisers")
	r, err := advertisers.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return withHint(err, exitInput, "create it with 'psimatch advertiser add --advertisers "+path+" --name NAME'")
	}
	if err != nil {
		return withHint(err, exitInput, "fix "+path+" or restore it from a backup")
	}
	if r.Len() == 0 {
		fmt.Fprintf(c.App.ErrWriter, "psimatch: no advertisers in %s\n", path)
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODES\tMIN ROWS\tMAX ROWS\tSESSIONS/DAY\tELEMENTS/EPOCH\tCREATED")
	for _, a := range r.List() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", a.Name, modeNames(a.Modes), a.MinRows, a.MaxRows, a.SessionsPerDay, a.ElementsPerEpoch, a.Created.UTC().Format("2006-01-02"))
	}
	return tw.Flush()
}

// modeNames lists modes as the --modes flag takes them: "count,members".
func modeNames(ms []psi.Mode) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.String()
	}
	return strings.Join(names, ",")
}
