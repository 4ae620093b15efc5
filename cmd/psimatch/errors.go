package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Exit statuses, one per class of failure; documented in --help.
const (
	exitOK       = 0
	exitFailure  = 1 // an operation failed, or (normalize) some input lines were invalid
	exitUsage    = 2 // bad flags or arguments
	exitInput    = 3 // an input file is missing, unreadable or malformed
	exitNetwork  = 4 // the server could not be reached or TLS failed
	exitAuth     = 5 // the server refused the token or the mode
	exitQuota    = 6 // a quota was exhausted; retry later
	exitProtocol = 7 // the peer sent something invalid
)

const exitStatusHelp = `
EXIT STATUS:
   0  success
   1  failure (normalize: some input lines were invalid)
   2  usage error: bad flags or arguments
   3  input error: a file is missing, unreadable or malformed
   4  network error: the server could not be reached, or TLS failed
   5  refused: the token or the mode was refused by the server
   6  quota exhausted: retry after the time given
   7  protocol error: the other side sent something invalid
`

// userError is an error with an exit status and hint lines that tell the
// user what to do next.
type userError struct {
	err    error
	status int
	hints  []string
}

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// withHint wraps err with an exit status and hints.
func withHint(err error, status int, hints ...string) error {
	if err == nil {
		return nil
	}
	return &userError{err: err, status: status, hints: hints}
}

// usageError is a usage mistake: exit status 2.
func usageError(format string, a ...any) error {
	return &userError{err: fmt.Errorf(format, a...), status: exitUsage}
}

// silentExit ends the process with a status without printing anything more
// (the command already reported what went wrong).
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// report prints err as "psimatch: error: ..." followed by its hint lines and
// returns the exit status for it.
func report(w io.Writer, err error) int {
	var se silentExit
	if errors.As(err, &se) {
		return int(se)
	}
	status := exitFailure
	var hints []string
	var ue *userError
	if errors.As(err, &ue) {
		status = ue.status
		hints = ue.hints
	} else if isFlagError(err) {
		status = exitUsage
		hints = []string{"run 'psimatch --help' or 'psimatch COMMAND --help' for usage"}
	}
	fmt.Fprintf(w, "psimatch: error: %s\n", err)
	for _, h := range hints {
		fmt.Fprintf(w, "psimatch: hint: %s\n", h)
	}
	return status
}

// isFlagError recognizes urfave/cli's flag parsing errors, which are plain.
func isFlagError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "flag provided but not defined") ||
		strings.HasPrefix(msg, "Required flag") ||
		strings.HasPrefix(msg, "invalid value") ||
		strings.Contains(msg, "flag needs an argument") ||
		strings.HasPrefix(msg, "No help topic for") // an unknown command
}
