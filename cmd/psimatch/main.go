// Command psimatch matches an advertiser's customer list against an ad
// platform's advertising-consented identifiers under an RFC 9497 OPRF, so that
// neither side sees the other's raw emails or phone numbers.
//
// This package is the user experience only: flags, terminals, hints and exit
// statuses. The cryptography lives in psi/, the wire protocol in protocol/.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set by the linker for releases.
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit status. Every
// error is formatted in one place (report) with its hints.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	if err := app.Run(args); err != nil {
		return report(stderr, err)
	}
	return 0
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
