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
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/hostmap"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// execHTTPClient performs the calls of `knhk exec`.
var execHTTPClient = &http.Client{Timeout: 30 * time.Second}

func newExecCmd() *cobra.Command {
	var inputPath string
	var out execOptions
	cmd := &cobra.Command{
		Use:   "exec FILE",
		Short: "Run a workflow in-process and print its output",
		Long: "exec loads and validates a workflow, runs it in-process with real HTTP calls, " +
			"and prints the output JSON (exit 0) or the error JSON (exit 1 on fault).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExec(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), args[0], inputPath, out)
		},
	}
	cmd.Flags().StringVar(&inputPath, "input", "", "workflow input (JSON or YAML) file, or - for standard input")
	cmd.Flags().StringVar(&out.receipts, "receipts", "", "write the case's hash-chained receipts as JSON lines to this file (what `knhk verify --file` reads)")
	cmd.Flags().StringVar(&out.history, "history", "", "write the engine's event history (unchained events) as JSON lines to this file")
	cmd.Flags().StringVar(&out.key, "idempotency-key", "", "the case's idempotency key, from which its case id and emitted event ids derive (default: a fresh key per run)")
	return cmd
}

func init() { root.AddCommand(newExecCmd()) }

// execOptions are exec's flags besides its input: the files it writes
// besides its output, and the case's idempotency key.
type execOptions struct {
	receipts string // chained receipts
	history  string // the raw event history
	key      string // the case's idempotency key; empty: a fresh one per run
}

// execKey is the idempotency key of a run of `knhk exec`: the case id is
// derived from it like a deployed case's, from the default tenant and the
// workflow, and the ids of the events the case emits from the case id. A
// fresh key per run keeps runs' events apart; a given key replays a run.
func execKey(given string) string {
	if given != "" {
		return given
	}
	return "exec-" + uuid.NewString()
}

func runExec(ctx context.Context, stdin io.Reader, stdout io.Writer, file, inputPath string, out execOptions) error {
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
	client := execHTTPClient
	// Like the executor, route hosts to local services when told to (the
	// stand-ins of a local stack).
	hosts, err := hostmap.Parse(os.Getenv("KNHK_HTTP_HOST_MAP"))
	if err != nil {
		return withExit(2, fmt.Errorf("KNHK_HTTP_HOST_MAP: %w", err))
	}
	if len(hosts) > 0 {
		client = &http.Client{Timeout: client.Timeout, Transport: hosts.Transport(http.DefaultTransport.(*http.Transport))}
	}
	caseID := message.CaseID(message.DefaultTenant, wf.Document.Namespace, wf.Document.Name, execKey(out.key))
	res, err := engine.Run(ctx, wf, input, engine.RunOptions{
		CaseID:     caseID,
		HTTPClient: client,
		// file: proto URIs are read inside the workflow's folder.
		GRPC:       &grpccall.Client{FileRoot: filepath.Dir(file)},
		RealTimers: true,
		Genesis: history.Genesis{
			Tenant:         message.DefaultTenant,
			Namespace:      wf.Document.Namespace,
			Workflow:       wf.Document.Name,
			Version:        wf.Document.Version,
			DescriptorHash: dsl.Hash(data),
		},
	})
	if res != nil && out.history != "" {
		if werr := writeLines(out.history, res.History); werr != nil {
			return fmt.Errorf("write history: %w", werr)
		}
	}
	if res != nil && out.receipts != "" {
		rs, cerr := chainOf(message.DefaultTenant, caseID, res.History)
		if cerr == nil {
			cerr = writeLines(out.receipts, rs)
		}
		if cerr != nil {
			return fmt.Errorf("write receipts: %w", cerr)
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

// chainOf seals a history into its receipt chain, as the executor appends it.
func chainOf(tenant, caseID string, events []history.Event) ([]*receipt.Receipt, error) {
	rs := make([]*receipt.Receipt, 0, len(events))
	var prev *receipt.Receipt
	for _, ev := range events {
		r, err := receipt.New(prev, tenant, caseID, ev)
		if err != nil {
			return nil, fmt.Errorf("receipt %d: %w", len(rs), err)
		}
		rs, prev = append(rs, r), r
	}
	return rs, nil
}

// writeLines writes each value as one JSON line.
func writeLines[T any](path string, items []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range items {
		if err := enc.Encode(items[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
