// Command psimatch matches an advertiser's customer list against an ad
// platform's advertising-consented identifiers under an RFC 9497 OPRF, so that
// neither side sees the other's raw emails or phone numbers.
//
// This package is the user experience only: flags, terminals, hints and exit
// statuses. The cryptography lives in psi/, the wire protocol in protocol/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/urfave/cli/v2"
)

// version is set by the linker for releases.
var version = "0.1.0-dev"

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args (args[0] is the program name) with the
// given streams and returns the process exit status. Every error is
// formatted in one place (report) with its hints. Cancelling ctx stops a
// running command (serve shuts down gracefully). Tests call run in-process,
// several at once.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := runApp(ctx, args, stdin, stdout, stderr); err != nil {
		return report(stderr, err)
	}
	return 0
}

// parseMu serializes the parsing part of runs in one process. urfave/cli v2
// keeps its help command and help flag in package variables and writes to
// them while it sets up and parses a command line, so two runs must not
// parse at once (tests run several; demo runs match while its server
// runs). A command's action runs without it.
var parseMu sync.Mutex

// runApp runs the command line and returns its error unformatted.
func runApp(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var once sync.Once
	unlock := func() { once.Do(parseMu.Unlock) }
	parseMu.Lock()
	defer unlock()
	app := newApp(stdin, stdout, stderr)
	unlockInActions(app.Commands, unlock)
	return app.RunContext(ctx, args)
}

// unlockInActions makes each command's action call unlock first.
func unlockInActions(cmds []*cli.Command, unlock func()) {
	for _, c := range cmds {
		if action := c.Action; action != nil {
			c.Action = func(c *cli.Context) error {
				unlock()
				return action(c)
			}
		}
		unlockInActions(c.Subcommands, unlock)
	}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "psimatch",
		Usage:     "privacy-preserving audience matching between an advertiser and an ad platform",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are formatted by report; urfave/cli must not exit on its own.
		ExitErrHandler:        func(*cli.Context, error) {},
		Commands:              commands(),
		CustomAppHelpTemplate: cli.AppHelpTemplate + exitStatusHelp,
	}
}

// commands lists the subcommands; each lives in a file of its own.
func commands() []*cli.Command {
	return []*cli.Command{
		demoCommand(),
		serveCommand(),
		matchCommand(),
		versionCommand(),
		normalizeCommand(),
		inventoryCommand(),
		advertiserCommand(),
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintf(c.App.Writer, "psimatch %s\n", version)
			return err
		},
	}
}
