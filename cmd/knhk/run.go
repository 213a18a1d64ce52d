package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/secrets"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func init() { root.AddCommand(runCmd()) }

func runCmd() *cobra.Command {
	var (
		templatePath, statePath, logDir, hostDir, eventsDir, tenant string
		spansPath                                                   string
		cases, concurrency                                          int
		once                                                        bool
		timeout                                                     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "The main job on a local endpoint: serve the stack, publish the samples, run a mixed load and summarise it",
		Long: "Provision the synthesized stack on the local endpoint (AWS_ENDPOINT_URL), serve its Lambda functions with the\n" +
			"local Lambda service and the sample workflows' stand-in services, publish the sample workflows, submit a mixed\n" +
			"load of them, and print a summary: cases by workflow and status, receipts, verified chains, findings, latency.\n" +
			"Then keep serving until interrupted (Ctrl-C), so that you can send your own messages; --once exits after the\n" +
			"summary, with status 0 only when every case completed and every chain verified.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ls, err := startLocal(cmd, "run", "")
			if err != nil {
				return err
			}
			defer ls.stop()
			ctx, cfg := ls.ctx, ls.cfg
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "endpoint  %s\n", ls.endpoint)
			upCfg := localrun.Config{AWS: cfg, TemplatePath: templatePath, StatePath: statePath,
				OutputsPath: outputsFile, LogDir: logDir, HostDir: hostDir, Concurrency: concurrency, SpansPath: spansPath,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
			env, err := localrun.Up(ctx, upCfg)
			if err != nil {
				return err
			}
			defer func() { _ = env.Close() }()
			for _, f := range env.Lambda.Stack().Functions {
				fmt.Fprintf(w, "function  %s (log %s)\n", f.Name, filepath.Join(logDir, f.Name+".log"))
			}
			fmt.Fprintf(w, "services  %s (stand-ins for *.knhk.local)\n", env.Services)
			if env.Traces != nil {
				fmt.Fprintf(w, "traces    %s/v1/traces (OTLP/HTTP receiver; spans in %s; view: knhk trace CASE_ID)\n", env.Traces.Endpoint(), spansPath)
			}

			db, sq := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
			o := env.Outputs
			samples, err := localrun.LoadSamples(eventsDir)
			if err != nil {
				return err
			}
			if err := publishSamples(ctx, w, cfg, o[stack.OutStateTable], samples); err != nil {
				return err
			}
			runID := time.Now().UTC().Format("20060102T150405")
			load, err := localrun.Mix(samples, cases, tenant, runID)
			if err != nil {
				return err
			}
			q := queue.NewSender(sq, o[stack.OutWorkQueueURL])
			chains := store.NewReceipts(db, o[stack.OutReceiptsTable])
			blobs := payloadBlobs(cfg, db, o[stack.OutStateTable], o[stack.OutPayloadBucket])
			chains.Blobs = blobs
			overheads := store.NewOverheads(db, o[stack.OutStateTable])
			period := chargeback.Period(time.Now())
			overBefore, err := overheads.Period(ctx, period)
			if err != nil {
				return err
			}
			started := time.Now()
			if err := localrun.Submit(ctx, q, load); err != nil {
				return err
			}
			fmt.Fprintf(w, "submitted %d cases (tenant %s, run %s)\n", len(load), tenant, runID)
			actx, cancel := context.WithTimeout(ctx, timeout)
			err = localrun.Await(actx, load, chains, store.NewCases(db, o[stack.OutStateTable]), q, progressBar(w))
			cancel()
			fmt.Fprintln(w)
			if err != nil {
				fmt.Fprintln(w, "warning:", err)
			}
			wall := time.Since(started)
			outs, err := localrun.Collect(ctx, load, chains)
			if err != nil {
				return err
			}
			// Give the verifier a moment to catch up with the stream, then
			// read what it found.
			time.Sleep(2 * time.Second)
			found, err := store.NewFindings(db, o[stack.OutStateTable]).Recent(ctx, started.Add(-time.Second), 0)
			if err != nil {
				return err
			}
			var extra []receipt.Finding
			for _, f := range found {
				extra = append(extra, f.Finding)
			}
			sum, err := localrun.Summarize(outs, extra)
			if err != nil {
				return err
			}
			printSummary(w, sum, wall, logDir)
			printPlatformSLA(ctx, w, store.NewSLIs(db, o[stack.OutStateTable]))
			if views, err := listAlarms(ctx, localaws.NewCloudWatch(cfg), "", time.Now()); err != nil {
				fmt.Fprintln(w, "warning: alarms:", err)
			} else {
				fmt.Fprintln(w, alarmStates(views)+" (knhk alarms)")
			}
			overAfter, err := overheads.Period(ctx, period)
			if err != nil {
				fmt.Fprintln(w, "warning: overhead:", err)
			}
			if err := printRunCost(ctx, w, chains, outs, store.Since(overBefore, overAfter)); err != nil {
				fmt.Fprintln(w, "warning: cost:", err)
			}
			if open, err := openCases(ctx, db, o[stack.OutReceiptsTable], o[stack.OutStateTable], blobs, 20); err != nil {
				fmt.Fprintln(w, "warning: open cases:", err)
			} else if len(open) > 0 {
				fmt.Fprintln(w, "\ncases still open, from this run and earlier ones (all: knhk case list --open):")
				printOpenCases(w, open)
			}
			if once {
				fmt.Fprintf(w, "\nthe local endpoint is still up at %s with this run's state (stop it: make local-down)\n", ls.endpoint)
				if !sum.OK() {
					return withExit(1, errors.New("run: not every case completed with a verified chain"))
				}
				return nil
			}
			fmt.Fprintln(w, "\nserving until Ctrl-C; send your own messages (see README, Runbook of the local stack)")
			// A restarted or reset endpoint, or a deploy from another
			// shell, is noticed within the interval and served again.
			env, err = localrun.Keep(ctx, upCfg, env, driftInterval, func(line string) { fmt.Fprintln(w, "stack    ", line) },
				func(e *localrun.Env) error {
					return publishSamples(ctx, io.Discard, cfg, e.Outputs[stack.OutStateTable], samples)
				})
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&templatePath, "template", "infra/cdk.out/KnhkStack.template.json", "synthesized CloudFormation template")
	f.StringVar(&statePath, "state", ".local/stack-state.json", "stack state file")
	f.StringVar(&logDir, "logs", ".local/logs", "folder for the functions' logs")
	f.StringVar(&spansPath, "spans", DefaultSpansFile, "file where the local trace receiver stores spans (empty: no tracing)")
	f.StringVar(&hostDir, "host-builds", "build/host", "folder of host-architecture function builds")
	f.StringVar(&eventsDir, "events", "events", "folder of the sample workflows and inputs")
	f.StringVar(&tenant, "tenant", "demo", "tenant of the submitted cases")
	f.IntVar(&cases, "cases", 60, "how many cases to submit, cycling through the samples")
	f.IntVar(&concurrency, "concurrency", 4, "instances per function")
	f.BoolVar(&once, "once", false, "exit after the summary")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the cases")
	return cmd
}

// progressBar redraws one line: [#####.....] done/total.
// driftInterval is how often a serving `knhk run` checks that its stack
// still matches the endpoint.
const driftInterval = 5 * time.Second

// publishSamples pushes the sample workflows to the registry, shared with
// every tenant of the demo load, and seeds their demo secrets.
func publishSamples(ctx context.Context, w io.Writer, cfg aws.Config, stateTable string, samples []localrun.Sample) error {
	reg := registry.New(dynamodb.NewFromConfig(cfg), stateTable)
	for _, s := range samples {
		e, res, err := reg.Push(ctx, s.Body)
		if err != nil {
			return err
		}
		if err := reg.Share(ctx, e.Namespace, true); err != nil {
			return err
		}
		fmt.Fprintf(w, "workflow  %s %s\n", e.Ref(), res)
	}
	seeded, err := localrun.SeedSecrets(ctx, secretsmanager.NewFromConfig(cfg), secrets.DefaultPrefix, samples)
	if err != nil {
		return err
	}
	for _, id := range seeded {
		fmt.Fprintf(w, "secret    %s (demo value for the samples)\n", id)
	}
	return nil
}

func progressBar(w io.Writer) func(done, total int) {
	const width = 40
	return func(done, total int) {
		n := 0
		if total > 0 {
			n = done * width / total
		}
		fmt.Fprintf(w, "\r[%s%s] %d/%d cases", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
	}
}

func printSummary(w io.Writer, s localrun.Summary, wall time.Duration, logDir string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKFLOW\tCOMPLETED\tFAULTED\tCANCELLED\tOPEN\tRECEIPTS\t")
	for _, r := range s.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", r.Workflow, r.Completed, r.Faulted, r.Cancelled, r.Open, r.Receipts)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ncases %d in %s (%.1f cases/s) · receipts written %d · chains verified %d/%d · findings %d\n",
		s.Cases, wall.Round(time.Millisecond), float64(s.Cases)/wall.Seconds(), s.Receipts, s.Verified, s.Cases, len(s.Findings))
	fmt.Fprintf(w, "case latency p50 %s · p99 %s · max %s\n", s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond), s.Max.Round(time.Millisecond))
	for _, f := range s.Findings {
		fmt.Fprintln(w, "finding:", f)
	}
	fmt.Fprintf(w, "\nwhere to look:\n  function logs   %s/<function>.log\n  endpoint log    .local/moto.log\n"+
		"  a case          build/host/knhk case show CASE_ID   ·   build/host/knhk receipts CASE_ID\n"+
		"  verify          build/host/knhk verify --case CASE_ID   ·   build/host/knhk findings\n"+
		"  a case's trace  build/host/knhk trace CASE_ID (spans from the local OTLP receiver)\n", logDir)
}
