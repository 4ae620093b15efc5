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
				Name:  "list",
				Usage: "print the registered advertisers, their limits and today's usage, never their token hashes",
				Description: "With --data-dir (the server's embedded state) or --state (the replicas'\n" +
					"PostgreSQL database) it also shows each advertiser's sessions in the last 24\n" +
					"hours and the elements charged in its latest epoch. Reading the data\n" +
					"directory's journal is safe while the server runs.",
				Flags: []cli.Flag{file,
					&cli.StringFlag{Name: "data-dir", Usage: "the server's data `DIR`, to show usage from its embedded state"},
					&cli.StringFlag{Name: "state", Usage: "the replicas' state database (a postgres:// `URL`), to show usage from it"},
				},
				Action: advertiserList,
			},
			{
				Name:  "revoke",
				Usage: "refuse an advertiser's token from now on",
				Description: "Marks the advertiser revoked in the registry file. A running server refuses\n" +
					"its token (401) once it re-reads the file: on SIGHUP, or within its reload\n" +
					"interval (10s). 'advertiser rotate-token' gives it a new token again.",
				Flags:  []cli.Flag{file, nameFlag()},
				Action: advertiserRevoke,
			},
			{
				Name:  "rotate-token",
				Usage: "give an advertiser a new bearer token and print it; the old one stops working",
				Description: "Prints the new token as the only line on standard output, this once; the\n" +
					"file keeps only its SHA-256. A running server refuses the old token once it\n" +
					"re-reads the file (SIGHUP, or within 10s). It also lifts a revocation.",
				Flags:  []cli.Flag{file, nameFlag()},
				Action: advertiserRotate,
			},
			{
				Name:  "set",
				Usage: "change an advertiser's modes and limits (only the flags given)",
				Description: "A running server applies the change to new sessions once it re-reads the\n" +
					"file (SIGHUP, or within 10s). Usage already counted stays counted.",
				Flags: []cli.Flag{file, nameFlag(),
					&cli.StringFlag{Name: "modes", Usage: "the `MODES` it may use, comma separated: estimate, count, members"},
					&cli.Int64Flag{Name: "min-rows", Usage: "a session must send at least `N` identifiers"},
					&cli.Int64Flag{Name: "max-rows", Usage: "a session may send at most `N` identifiers"},
					&cli.IntFlag{Name: "sessions-per-day", Usage: "it may start `N` sessions in any 24 hours"},
					&cli.Int64Flag{Name: "elements-per-epoch", Usage: "the server evaluates at most `N` elements for it per epoch"},
				},
				Action: advertiserSet,
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
	var err error
	if a.Modes, err = parseModes(c.String("modes")); err != nil {
		return err
	}

	path := c.String("advertisers")
	token, err := advertisers.Add(path, a)
	if err != nil {
		return registryError(err, path)
	}
	if _, err := fmt.Fprintln(c.App.Writer, token); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "psimatch: added advertiser %s to %s\n", a.Name, path)
	fmt.Fprintln(c.App.ErrWriter, "psimatch: note: the token above is shown only this once; the file keeps only its SHA-256. Give it to the advertiser over a secure channel.")
	return nil
}

// registryError gives an error of the registry its exit status and hint.
func registryError(err error, path string) error {
	switch {
	case errors.Is(err, advertisers.ErrUnknown):
		return withHint(err, exitUsage, "'psimatch advertiser list --advertisers "+path+"' shows the names")
	case errors.Is(err, advertisers.ErrInvalid):
		return withHint(err, exitUsage, "names use letters, digits, '.', '_' and '-', up to 64 characters; --modes takes estimate, count and members; limits are positive and --min-rows at most --max-rows")
	case errors.Is(err, advertisers.ErrDuplicate):
		return withHint(err, exitFailure, "choose another --name; 'psimatch advertiser list --advertisers "+path+"' shows the names in use")
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return withHint(err, exitInput, "check that the directory of --advertisers exists and is writable")
	}
	return withHint(err, exitInput, "fix "+path+" or restore it from a backup")
}

func nameFlag() cli.Flag {
	return &cli.StringFlag{Name: "name", Usage: "the advertiser's `NAME`", Required: true}
}

// parseModes parses --modes.
func parseModes(s string) ([]psi.Mode, error) {
	var modes []psi.Mode
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			mode, err := psi.ParseMode(m)
			if err != nil {
				return nil, usageError("--modes: %q is not a mode; want estimate, count, members or a list such as estimate,count", m)
			}
			modes = append(modes, mode)
		}
	}
	if len(modes) == 0 {
		return nil, usageError("--modes: want estimate, count, members or a list such as estimate,count")
	}
	return modes, nil
}

func advertiserRevoke(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("advertiser revoke takes no arguments; give the name with --name")
	}
	path, name := c.String("advertisers"), c.String("name")
	if err := advertisers.Revoke(path, name); err != nil {
		return registryError(err, path)
	}
	fmt.Fprintf(c.App.ErrWriter, "psimatch: revoked advertiser %s in %s; a running server refuses its token after SIGHUP or within its reload interval (10s)\n", name, path)
	return nil
}

func advertiserRotate(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("advertiser rotate-token takes no arguments; give the name with --name")
	}
	path, name := c.String("advertisers"), c.String("name")
	token, err := advertisers.RotateToken(path, name)
	if err != nil {
		return registryError(err, path)
	}
	if _, err := fmt.Fprintln(c.App.Writer, token); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "psimatch: new token for advertiser %s in %s; the old one is refused after SIGHUP or within the server's reload interval (10s)\n", name, path)
	fmt.Fprintln(c.App.ErrWriter, "psimatch: note: the token above is shown only this once; the file keeps only its SHA-256. Give it to the advertiser over a secure channel.")
	return nil
}

func advertiserSet(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("advertiser set takes no arguments; give the name with --name")
	}
	var modes []psi.Mode
	if c.IsSet("modes") {
		var err error
		if modes, err = parseModes(c.String("modes")); err != nil {
			return err
		}
	}
	changed := false
	for _, f := range []string{"modes", "min-rows", "max-rows", "sessions-per-day", "elements-per-epoch"} {
		if c.IsSet(f) {
			changed = true
			if f != "modes" && c.Int64(f) <= 0 {
				return usageError("--%s must be positive, got %d", f, c.Int64(f))
			}
		}
	}
	if !changed {
		return usageError("advertiser set: give at least one of --modes, --min-rows, --max-rows, --sessions-per-day, --elements-per-epoch")
	}
	path, name := c.String("advertisers"), c.String("name")
	err := advertisers.Update(path, name, func(a *advertisers.Advertiser) {
		if c.IsSet("modes") {
			a.Modes = modes
		}
		if c.IsSet("min-rows") {
			a.MinRows = c.Int64("min-rows")
		}
		if c.IsSet("max-rows") {
			a.MaxRows = c.Int64("max-rows")
		}
		if c.IsSet("sessions-per-day") {
			a.SessionsPerDay = c.Int("sessions-per-day")
		}
		if c.IsSet("elements-per-epoch") {
			a.ElementsPerEpoch = c.Int64("elements-per-epoch")
		}
	})
	if err != nil {
		return registryError(err, path)
	}
	fmt.Fprintf(c.App.ErrWriter, "psimatch: updated advertiser %s in %s; a running server applies it to new sessions after SIGHUP or within its reload interval (10s)\n", name, path)
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
	usage, withUsage, err := readUsage(c.Context, c.String("state"), c.String("data-dir"))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	head := "NAME\tMODES\tMIN ROWS\tMAX ROWS\tSESSIONS/DAY\tELEMENTS/EPOCH\tCREATED\tSTATUS"
	if withUsage {
		head += "\tSESSIONS (24H)\tEPOCH\tELEMENTS (EPOCH)"
	}
	fmt.Fprintln(tw, head)
	for _, a := range r.List() {
		status := "active"
		if !a.Revoked.IsZero() {
			status = "revoked " + a.Revoked.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s", a.Name, psi.JoinModes(a.Modes, ","), a.MinRows, a.MaxRows, a.SessionsPerDay, a.ElementsPerEpoch, a.Created.UTC().Format("2006-01-02"), status)
		if withUsage {
			u := usage[a.Name]
			epoch := u.Epoch
			if epoch == "" {
				epoch = "-"
			}
			fmt.Fprintf(tw, "\t%d/%d\t%s\t%d/%d", u.Sessions, a.SessionsPerDay, epoch, u.Elements, a.ElementsPerEpoch)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
