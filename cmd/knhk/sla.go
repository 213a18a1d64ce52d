package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func init() {
	var workflow, window string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sla",
		Short: "Print the service-level report: availability, latency percentiles, error budget and burn rates per workflow",
		Long: "Without --window, prints the reports the scheduled SLA job stored last. With --window (e.g. 30d, 6h), " +
			"computes them now from the verifier's buckets over that window, with the job's objectives (" +
			slajob.EnvObjectives + ", " + slajob.EnvWindowDivisor + ", " + slajob.EnvMinEvents + " are read here too).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, res, err := deployedStack(cmd.Context(), stack.OutStateTable)
			if err != nil {
				return withExit(2, err)
			}
			slis := store.NewSLIs(dynamodb.NewFromConfig(cfg), res.StateTable)
			var reports []sla.Report
			if window == "" {
				if reports, err = slis.Reports(cmd.Context()); err != nil {
					return err
				}
			} else {
				w, err := parseWindow(window)
				if err != nil {
					return withExit(2, err)
				}
				jc, err := slajob.ConfigFromEnv(os.Getenv)
				if err != nil {
					return withExit(2, err)
				}
				jc.Default.Window = w
				for k, o := range jc.Objectives {
					o.Window = w
					jc.Objectives[k] = o
				}
				job, err := slajob.New(jc, slajob.Deps{Buckets: slis, Reports: slis, Lease: store.NewLeases(nil, "")})
				if err != nil {
					return withExit(2, err)
				}
				end := time.Now().UTC().Truncate(time.Minute)
				span := w
				for _, r := range jc.Rules {
					span = max(span, r.Long)
				}
				bs, err := slis.Buckets(cmd.Context(), end.Add(-span), end)
				if err != nil {
					return err
				}
				if reports, err = job.Compute(bs, end); err != nil {
					return err
				}
			}
			if workflow != "" {
				var mine []sla.Report
				for _, r := range reports {
					if r.Workflow == workflow {
						mine = append(mine, r)
					}
				}
				if len(mine) == 0 {
					return withExit(1, fmt.Errorf("no SLA report for workflow %q", workflow))
				}
				reports = mine
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), reports)
			}
			if len(reports) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no SLA report yet: the SLA job has not run (or no case has ended)")
				return nil
			}
			printReports(cmd.OutOrStdout(), reports)
			return nil
		},
	}
	cmd.Flags().StringVar(&workflow, "workflow", "", "only this workflow's report, as NAMESPACE/NAME ("+slajob.Overall+" for the platform, "+sla.CanaryProbes+" for the canary)")
	cmd.Flags().StringVar(&window, "window", "", "compute now over this window (e.g. 30d, 6h) instead of printing the stored reports")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	root.AddCommand(cmd)
}

// parseWindow reads a duration with an optional day unit (30d, 1d12h).
func parseWindow(s string) (time.Duration, error) {
	var days time.Duration
	if d, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("window %q: want e.g. 30d, 6h or 1d12h", s)
		}
		days, s = time.Duration(n)*24*time.Hour, rest
	}
	var rest time.Duration
	if s != "" {
		var err error
		if rest, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("window %q: want e.g. 30d, 6h or 1d12h", s)
		}
	}
	if w := days + rest; w >= time.Minute {
		return w, nil
	}
	return 0, errors.New("window: want at least a minute")
}

// slaLine is the one-line summary of a report.
func slaLine(r sla.Report) string {
	lat := "no latency data"
	if r.Latency {
		lat = fmt.Sprintf("p50 %v p99 %v p99.9 %v", r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.P999.Round(time.Millisecond))
	}
	return fmt.Sprintf("availability %.3f%% (objective %.3f%%, %d of %d cases good), %s, budget %.1f%% left",
		100*r.Availability, 100*r.Objective.Availability, r.Counts.Good(), r.Counts.Valid(), lat, 100*r.Budget.Remaining)
}

func printReports(w io.Writer, reports []sla.Report) {
	for _, r := range reports {
		fmt.Fprintf(w, "%s  [%s .. %s]\n  %s\n", r.Workflow, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), slaLine(r))
		if r.LatencyBreach {
			fmt.Fprintf(w, "  LATENCY BREACH: objective p50 %v, p99 %v\n", r.Objective.P50, r.Objective.P99)
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  RULE\tSEVERITY\tFACTOR\tLONG\tSHORT\tEVENTS\tSTATE")
		for _, b := range r.Burns {
			state := "ok"
			switch {
			case b.Firing:
				state = "FIRING"
			case b.Guarded:
				state = "guarded (too few events)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.1fx\t%.2fx / %v\t%.2fx / %v\t%d\t%s\n", b.Rule.Name, b.Rule.Severity, b.Rule.Factor,
				b.Long, b.Rule.Long, b.Short, b.Rule.Short, b.LongEvents, state)
		}
		tw.Flush()
	}
}

// printPlatformSLA prints the platform's service level now, computed from
// the verifier's buckets with the default objective (a line of make run's
// summary); a read failure is reported on the line, not as the run's error.
func printPlatformSLA(ctx context.Context, w io.Writer, slis *store.SLIs) {
	job, err := slajob.New(slajob.Config{}, slajob.Deps{Buckets: slis, Reports: slis, Lease: store.NewLeases(nil, "")})
	if err != nil {
		fmt.Fprintln(w, "SLA: ", err)
		return
	}
	end := time.Now().UTC().Truncate(time.Minute).Add(time.Minute) // include the current minute
	obj := sla.DefaultObjective()
	bs, err := slis.Buckets(ctx, end.Add(-obj.Window), end)
	if err != nil {
		fmt.Fprintln(w, "SLA: buckets not read:", err)
		return
	}
	reports, err := job.Compute(bs, end)
	if err != nil || len(reports) == 0 {
		fmt.Fprintln(w, "SLA: not computed:", err)
		return
	}
	fmt.Fprintln(w, "SLA (from verified receipts, 30 days):", slaLine(reports[0]))
}
