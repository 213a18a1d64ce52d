package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// execHTTPClient performs the calls of `knhk exec`.
var execHTTPClient = &http.Client{Timeout: 30 * time.Second}

func newExecCmd() *cobra.Command {
	var inputPath, receiptsPath string
	cmd := &cobra.Command{
		Use:   "exec FILE",
		Short: "Run a workflow in-process and print its output",
		Long: "exec loads and validates a workflow, runs it in-process with real HTTP calls, " +
			"and prints the output JSON (exit 0) or the error JSON (exit 1 on fault).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExec(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), args[0], inputPath, receiptsPath)
		},
	}
	cmd.Flags().StringVar(&inputPath, "input", "", "workflow input (JSON or YAML) file, or - for standard input")
	cmd.Flags().StringVar(&receiptsPath, "receipts", "", "write the case history as JSON lines to this file")
	return cmd
}

func init() { root.AddCommand(newExecCmd()) }

func runExec(ctx context.Context, stdin io.Reader, stdout io.Writer, file, inputPath, receiptsPath string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return withExit(2, fmt.Errorf("read workflow: %w", err))
	}
	wf, err := dsl.Load(data)
	if err != nil {
		return withExit(2, fmt.Errorf("load %s: %w", file, err))
	}
	input, err := readInput(stdin, inputPath)
	if err != nil {
		return withExit(2, err)
	}
	res, err := engine.Run(ctx, wf, input, engine.RunOptions{
		CaseID:     "exec",
		HTTPClient: execHTTPClient,
		RealTimers: true,
		Genesis: history.Genesis{
			Namespace:      wf.Document.Namespace,
			Workflow:       wf.Document.Name,
			Version:        wf.Document.Version,
			DescriptorHash: dsl.Hash(data),
		},
	})
	if res != nil && receiptsPath != "" {
		if werr := writeHistory(receiptsPath, res.History); werr != nil {
			return werr
		}
	}
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	switch res.Status {
	case engine.StatusCompleted:
		return enc.Encode(res.Output)
	case engine.StatusFaulted, engine.StatusCancelled:
		if err := enc.Encode(res.Error); err != nil {
			return err
		}
		return withExit(1, errors.New(""))
	default:
		return withExit(1, fmt.Errorf("the case is waiting (%s) and cannot advance in-process", res.Status))
	}
}

func readInput(stdin io.Reader, path string) (any, error) {
	var data []byte
	var err error
	switch path {
	case "":
		return map[string]any{}, nil
	case "-":
		data, err = io.ReadAll(stdin)
	default:
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		if yerr := yaml.Unmarshal(data, &v); yerr != nil {
			return nil, fmt.Errorf("decode input: %w", err)
		}
	}
	return expr.Normalize(v), nil
}

func writeHistory(path string, events []history.Event) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write receipts: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			f.Close()
			return fmt.Errorf("write receipts: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write receipts: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write receipts: %w", err)
	}
	return nil
}
