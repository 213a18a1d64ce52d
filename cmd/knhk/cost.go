package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func init() {
	root.AddCommand(costCmd())
	root.AddCommand(capacityCmd())
}

func costCmd() *cobra.Command {
	var by, month, prices string
	var asCSV, asJSON, local bool
	cmd := &cobra.Command{
		Use:   "cost [--by workflow|tenant|department] [--month YYYY-MM] [--csv|--json] [--local]",
		Short: "The month's chargeback per workflow, tenant or department, next to Step Functions: the cost job's export, else priced from the receipts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if month == "" {
				month = chargeback.Period(time.Now())
			}
			if !local {
				done, err := printExport(cmd, month, chargeback.Key(by), asCSV, asJSON)
				if done || err != nil {
					return err
				}
			}
			t, err := cost.Load(prices)
			if err != nil {
				return withExit(2, err)
			}
			cases, overheads, polling, skipped, err := deployedCases(cmd, month)
			if err != nil {
				return err
			}
			shared, idle := store.Split(overheads)
			for _, p := range polling {
				s, i := p.Usage()
				shared, idle = append(shared, s), append(idle, i)
			}
			r, err := chargeback.Build(t, month, chargeback.Key(by), cases, shared, idle)
			if err != nil {
				return withExit(2, err)
			}
			if skipped > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d chains do not verify and are not priced (see knhk findings)\n", skipped)
			}
			switch {
			case asCSV:
				return r.WriteCSV(cmd.OutOrStdout())
			case asJSON:
				return writeJSON(cmd.OutOrStdout(), r)
			}
			printReport(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().StringVar(&by, "by", string(chargeback.ByWorkflow), "group by workflow, tenant or department")
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (default: this month, UTC)")
	cmd.Flags().StringVar(&prices, "prices", cost.DefaultVersion, "price table version")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print the chargeback as CSV")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the chargeback as JSON")
	cmd.Flags().BoolVar(&local, "local", false, "price the receipts here even when the cost job has exported the month (with --prices)")
	return cmd
}

// printExport prints the cost job's export of the month from the chargeback
// bucket: CSV and JSON as exported, the table from the JSON. It reports
// false when the stack has no chargeback bucket or the month has no export
// yet, so the caller prices the receipts itself.
func printExport(cmd *cobra.Command, month string, by chargeback.Key, asCSV, asJSON bool) (bool, error) {
	ctx := cmd.Context()
	res, err := stack.Resolve(outputsFile)
	if err != nil || res.ChargebackBucket == "" {
		return false, err
	}
	cfg, err := awsConfig(ctx, "")
	if err != nil {
		return false, err
	}
	ext := "json"
	if asCSV {
		ext = "csv"
	}
	if by == "" {
		by = chargeback.ByWorkflow
	}
	key := costjob.ExportKey(month, by, ext)
	body, err := objects.New(objects.NewClient(cfg), res.ChargebackBucket).Get(ctx, key, 0)
	if errors.Is(err, objects.ErrNotFound) {
		fmt.Fprintf(cmd.ErrOrStderr(), "no export of %s by %s yet: pricing the receipts\n", month, by)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "the cost job's export s3://%s/%s\n", res.ChargebackBucket, key)
	if asCSV || asJSON {
		_, err := cmd.OutOrStdout().Write(body)
		return true, err
	}
	var r chargeback.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return true, fmt.Errorf("s3://%s/%s: %w", res.ChargebackBucket, key, err)
	}
	printReport(cmd.OutOrStdout(), r)
	return true, nil
}

// deployedCases reads the month's verified cases of the deployed stack, its
// recorded overhead usage and, as the cost job does, the work queue
// mapping's polling from its AWS/SQS metrics.
func deployedCases(cmd *cobra.Command, month string) ([]chargeback.Case, []store.Overhead, []cost.Polling, int, error) {
	ctx := cmd.Context()
	cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutStateTable)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	db := dynamodb.NewFromConfig(cfg)
	chains := store.NewReceipts(db, res.ReceiptsTable)
	cases, skipped, err := chargeback.Collect(ctx, chains, registry.New(db, res.StateTable), month)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	overheads, err := store.NewOverheads(db, res.StateTable).Period(ctx, month)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	var polling []cost.Polling
	if res.WorkQueueURL != "" {
		from, _ := time.Parse("2006-01", month)
		to := from.AddDate(0, 1, 0)
		if now := time.Now(); now.Before(to) {
			to = now
		}
		src := costjob.CloudWatchPolling{CW: localaws.NewCloudWatch(cfg), Queues: []string{path.Base(res.WorkQueueURL)}}
		if polling, err = src.Polling(ctx, from, to); err != nil {
			return nil, nil, nil, 0, err
		}
	}
	return cases, overheads, polling, skipped, nil
}

func printReport(w io.Writer, r chargeback.Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tCASES\tTOTAL\tPER MILLION CASES\tSFN STANDARD / M\tSFN EXPRESS / M\n", r.By)
	for _, l := range r.Lines {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", l.Key, l.Cases, cost.Dollars(l.Total(), 6),
			cost.Dollars(cost.PerMillion(l.PerCase(l.Total())), 2), cost.Dollars(cost.PerMillion(l.PerCase(l.Standard)), 2),
			cost.Dollars(cost.PerMillion(l.PerCase(l.Express)), 2))
	}
	tw.Flush()
	fmt.Fprintf(w, "month %s, prices %s: total %s (shared %s, idle %s)\n", r.Period, r.Prices, cost.Dollars(r.Total(), 6),
		cost.Dollars(r.Shared, 6), cost.Dollars(r.Idle, 6))
}

// mixEntry is one workflow of a capacity mix file; without perCase the
// workflow's measured usage per case in the deployed stack is used.
type mixEntry struct {
	Workflow string      `json:"workflow"` // namespace/name
	Weight   float64     `json:"weight"`
	MemoryMB int64       `json:"memoryMB"`
	PerCase  *cost.Usage `json:"perCase,omitempty"`
}

func capacityCmd() *cobra.Command {
	var rate float64
	var mixFile, month, prices string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "capacity --rate N --mix FILE [--month YYYY-MM]",
		Short: "Plan a steady load of N cases/s: Lambda and mapping concurrency, DynamoDB units, stream shards, monthly cost, binding quotas",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := cost.Load(prices)
			if err != nil {
				return withExit(2, err)
			}
			raw, err := os.ReadFile(mixFile)
			if err != nil {
				return withExit(2, err)
			}
			var entries []mixEntry
			if err := json.Unmarshal(raw, &entries); err != nil {
				return withExit(2, fmt.Errorf("mix %s: %w", mixFile, err))
			}
			var measured map[string]cost.Usage
			mix := make([]cost.Share, 0, len(entries))
			for _, e := range entries {
				s := cost.Share{Workflow: e.Workflow, Weight: e.Weight, MemoryMB: e.MemoryMB}
				if e.PerCase != nil {
					s.PerCase = *e.PerCase
				} else {
					if measured == nil {
						if month == "" {
							month = chargeback.Period(time.Now())
						}
						cases, _, _, _, err := deployedCases(cmd, month)
						if err != nil {
							return err
						}
						measured = chargeback.PerCase(cases)
					}
					u, ok := measured[e.Workflow]
					if !ok {
						return withExit(2, fmt.Errorf("mix: no measured case of %s in %s: give its perCase usage", e.Workflow, month))
					}
					s.PerCase = u
				}
				mix = append(mix, s)
			}
			p, err := t.Capacity(rate, mix, cost.DefaultQuotas)
			if err != nil {
				return withExit(2, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					cost.Plan
					PerCase string `json:"costPerCase"`
					Monthly string `json:"monthlyCost"`
				}{p, p.PerCase.FloatString(12), p.Monthly.FloatString(2)})
			}
			printPlan(cmd.OutOrStdout(), p)
			return nil
		},
	}
	cmd.Flags().Float64Var(&rate, "rate", 0, "cases per second")
	cmd.Flags().StringVar(&mixFile, "mix", "", "JSON file: [{workflow, weight, memoryMB, perCase?}]")
	cmd.Flags().StringVar(&month, "month", "", "month whose measured cases give the usage per case (default: this month)")
	cmd.Flags().StringVar(&prices, "prices", cost.DefaultVersion, "price table version")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	_ = cmd.MarkFlagRequired("rate")
	_ = cmd.MarkFlagRequired("mix")
	return cmd
}

func printPlan(w io.Writer, p cost.Plan) {
	fmt.Fprintf(w, "%.0f cases/s: Lambda concurrency %.1f (mapping maximum concurrency %d), DynamoDB %.0f write and %.0f read units/s, %.0f SQS requests/s, %d stream shards\n",
		p.Rate, p.LambdaConcurrency, p.MappingConcurrency, p.WriteUnits, p.ReadUnits, p.SQSRequests, p.StreamShards)
	fmt.Fprintf(w, "cost %s per case, %s a month (30 days)\n", cost.Dollars(p.PerCase, 9), cost.Dollars(p.Monthly, 2))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUOTA\tNEED\tLIMIT\tUSED\tSOURCE")
	for _, n := range p.Needs {
		fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%.1f%%\t%s\n", n.Quota.Name, n.Need, n.Quota.Limit, 100*n.Ratio, n.Quota.Source)
	}
	tw.Flush()
	if len(p.Needs) > 0 && p.Needs[0].Ratio > 1 {
		fmt.Fprintf(w, "binding first: %s (raise it before deploying)\n", p.Needs[0].Quota.Name)
	} else if len(p.Needs) > 0 {
		fmt.Fprintf(w, "binding first: %s\n", p.Needs[0].Quota.Name)
	}
}
