// Command knhk is the KNHK operator CLI: validate and run workflows, verify
// receipt chains and proofs, and operate a deployed stack.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit wraps err so that main exits with code.
func withExit(code int, err error) error { return &exitError{code: code, err: err} }

// root is the top-level command; subcommands register themselves in init
// functions of their own files.
var root = &cobra.Command{
	Use:           "knhk",
	Short:         "KNHK: serverless workflows with verifiable receipts",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	if err := root.Execute(); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "knhk:", err)
		}
		os.Exit(code)
	}
}
