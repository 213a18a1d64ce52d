package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func archiveRefusedCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "refused",
		Short: "List the ended cases the archiver refused, with the reason, the attempts and the next retry",
		Long: "refused reads the archiver's refusals (one query of the state table's index by next retry time), " +
			"soonest retry first. A refused case is not archived and its receipts keep no time to live; the " +
			"archiver retries it on its own once its retry time has passed (15 minutes after the first refusal, " +
			"twice as long after each next one, at most a day), and `knhk archive retry CASE_ID` makes it due now.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutStateTable)
			if err != nil {
				return withExit(2, err)
			}
			rs, err := store.NewRefusals(dynamodb.NewFromConfig(cfg), res.StateTable).List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				if rs == nil {
					rs = []store.RefusedCase{}
				}
				return writeJSON(cmd.OutOrStdout(), rs)
			}
			printRefused(cmd.OutOrStdout(), rs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printRefused(w io.Writer, rs []store.RefusedCase) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NEXT RETRY\tTENANT\tCASE\tHEAD\tATTEMPTS\tFIRST REFUSED\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.NextAt.Format(time.RFC3339), r.Tenant, r.CaseID, r.HeadSeq, r.Attempts,
			r.FirstAt.Format(time.RFC3339), r.Reason)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d refused\n", len(rs))
}

func archiveRetryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "retry CASE_ID",
		Short: "Make a refused case due now: the archiver's next run retries it (exit 1: the case is not refused)",
		Long: "retry sets the refused case's next retry time to now, keeping its attempts; the next scheduled archiver " +
			"run (or an invocation of the archiver function) archives it if it now verifies, else records one more " +
			"refusal. Fix the cause first (docs/runbooks/archive-refused.md).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutStateTable)
			if err != nil {
				return withExit(2, err)
			}
			now := time.Now().UTC()
			if err := store.NewRefusals(dynamodb.NewFromConfig(cfg), res.StateTable).RetryNow(ctx, args[0], now); err != nil {
				if errors.Is(err, store.ErrNotRefused) {
					return withExit(1, err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "case %s: due for a retry since %s; the archiver's next run retries it\n", args[0], now.Format(time.RFC3339))
			return nil
		},
	}
}
