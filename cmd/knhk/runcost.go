package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// printRunCost prices the run's ended cases from their receipts: cost per
// case and per million cases by workflow, next to Step Functions Standard
// and Express for the same cases, and the shared and idle usage the
// functions recorded during the run (overhead is the difference between
// the month's records before and after it).
func printRunCost(ctx context.Context, w io.Writer, chains *store.Receipts, outs []localrun.Outcome, overhead []store.Overhead) error {
	t, err := cost.Load(cost.DefaultVersion)
	if err != nil {
		return err
	}
	var cases []chargeback.Case
	for _, o := range outs {
		if o.Status == "" {
			continue
		}
		rs, items, _, err := chains.StoredChain(ctx, o.Case.ID)
		if err != nil {
			return err
		}
		if len(receipt.VerifyChain(rs)) > 0 {
			continue
		}
		c, err := chargeback.FromChain(rs, items)
		if err != nil {
			continue
		}
		cases = append(cases, c)
	}
	shared, idle := store.Split(overhead)
	r, err := chargeback.Build(t, "", chargeback.ByWorkflow, cases, shared, idle)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\ncost from the receipts (prices %s; local durations, so Lambda time is high):\n", r.Prices)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKFLOW\tPER CASE\tPER MILLION\tSFN STANDARD / M\tSFN EXPRESS / M\t")
	for _, l := range r.Lines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", l.Key, cost.Dollars(l.PerCase(l.Total()), 9),
			cost.Dollars(cost.PerMillion(l.PerCase(l.Total())), 2), cost.Dollars(cost.PerMillion(l.PerCase(l.Standard)), 2),
			cost.Dollars(cost.PerMillion(l.PerCase(l.Express)), 2))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "overhead recorded during the run: shared %s, idle %s (each function flushes at most every %s, on shutdown at the latest)\n",
		cost.Dollars(r.Shared, 9), cost.Dollars(r.Idle, 9), handler.BusyOverheadEvery)
	return nil
}
