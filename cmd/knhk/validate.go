package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/workflow/dsl"
)

func init() {
	root.AddCommand(&cobra.Command{
		Use:   "validate FILE...",
		Short: "Check workflow documents (Serverless Workflow DSL 1.0.x)",
		Long: "Validate parses each workflow document (YAML or JSON) and checks it against the DSL\n" +
			"and KNHK's rules. Each problem is printed on stderr as FILE:line:col: pointer: message.\n" +
			"Exit status: 0 when every file is valid, 2 when any is not.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bad := validateFiles(cmd.OutOrStdout(), cmd.ErrOrStderr(), args); bad > 0 {
				return withExit(2, fmt.Errorf("%d of %d workflow files invalid", bad, len(args)))
			}
			return nil
		},
	})
}

// validateFiles validates each file, reporting issues to stderr and a
// summary line per valid file to stdout. It returns how many were invalid.
func validateFiles(stdout, stderr io.Writer, files []string) int {
	bad := 0
	for _, f := range files {
		data, err := readAtMost(f, dsl.MaxDocumentBytes, "workflow")
		if err != nil {
			fmt.Fprintf(stderr, "%s:0:0: /: %v\n", f, err)
			bad++
			continue
		}
		w, err := dsl.Load(data)
		if err != nil {
			bad++
			var e *dsl.Error
			if !errors.As(err, &e) {
				fmt.Fprintf(stderr, "%s:0:0: /: %v\n", f, err)
				continue
			}
			for _, is := range e.Issues {
				ptr := is.Pointer
				if ptr == "" {
					ptr = "/"
				}
				fmt.Fprintf(stderr, "%s:%d:%d: %s: %s\n", f, is.Line, is.Column, ptr, is.Message)
			}
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s/%s %s, sha256 %s)\n", f, w.Document.Namespace, w.Document.Name, w.Document.Version, dsl.Hash(data))
	}
	return bad
}

// readAtMost reads a file of at most limit bytes, refusing a larger one
// (what names it in the errors) without reading it whole.
func readAtMost(path string, limit int, what string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s is larger than the %d-byte limit", what, limit)
	}
	return data, nil
}
