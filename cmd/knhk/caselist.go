package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/workflow/engine"
)

// openCase is one case that has not ended, and where it waits.
type openCase struct {
	caseView
	// Last is the time of the case's newest receipt.
	Last time.Time `json:"last,omitzero"`
}

func caseListCmd() *cobra.Command {
	var open, asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list --open",
		Short: "List the cases still open (from any run), with where each waits",
		Long: "list --open reads the verifier's watermarks (one index query) and, for each case whose verified " +
			"chain has not ended, its chain: status, where it waits and when it last moved. A case is listed " +
			"once the verifier has seen it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !open {
				return withExit(2, errors.New("only --open is supported: cases still open"))
			}
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutStateTable)
			if err != nil {
				return withExit(2, err)
			}
			db := dynamodb.NewFromConfig(cfg)
			cs, err := openCases(ctx, db, res.ReceiptsTable, res.StateTable, payloadBlobs(cfg, db, res.StateTable, res.PayloadBucket), limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), cs)
			}
			printOpenCases(cmd.OutOrStdout(), cs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "cases that have not ended")
	cmd.Flags().IntVar(&limit, "max", 100, "list at most this many (the oldest-moved first)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// openCases lists up to limit cases whose verified chain has not ended,
// oldest watermark first, each folded to its status and waits. Cases whose
// terminal receipt the verifier has not reached yet are read and left out.
func openCases(ctx context.Context, db *dynamodb.Client, receiptsTable, stateTable string, blobs store.BlobStore, limit int) ([]openCase, error) {
	ws, err := store.NewCases(db, stateTable).ChangedWatermarks(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	chains := store.NewReceipts(db, receiptsTable)
	chains.Blobs = blobs
	reg := registry.New(db, stateTable)
	var out []openCase
	for _, w := range ws {
		if w.Watermark.Ended != 0 || len(out) >= limit {
			continue
		}
		rs, bad, err := chains.Chain(ctx, w.CaseID)
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 || rs[0].Genesis == nil {
			continue
		}
		g := rs[0].Genesis
		c := openCase{caseView: caseView{CaseID: w.CaseID, Tenant: rs[0].Tenant, Receipts: len(rs) + len(bad),
			Workflow: fmt.Sprintf("%s/%s:%s", g.Namespace, g.Workflow, g.Version)}}
		if err := foldCase(ctx, &c.caseView, chains, reg, rs); err != nil {
			return nil, err
		}
		if c.Status != engine.StatusRunning && c.Status != engine.StatusNew {
			continue
		}
		c.Last = receiptTime(rs[len(rs)-1])
		out = append(out, c)
	}
	return out, nil
}

// printOpenCases writes one line per open case.
func printOpenCases(w io.Writer, cs []openCase) {
	if len(cs) == 0 {
		fmt.Fprintln(w, "no open cases")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tTENANT\tWORKFLOW\tSTATUS\tLAST MOVED\tWAITING")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.CaseID, c.Tenant, c.Workflow, c.Status,
			c.Last.Format(time.RFC3339), strings.Join(c.Waiting, "; "))
	}
	_ = tw.Flush()
}
