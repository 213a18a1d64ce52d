package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/stack"
)

// init runs after local.go's init (files are initialised in name order), so
// the local command exists.
func init() {
	for _, c := range root.Commands() {
		if c.Name() == "local" {
			c.AddCommand(localServeCmd())
			return
		}
	}
	local := &cobra.Command{Use: "local", Short: "Work with the stack on a local AWS endpoint"}
	local.AddCommand(localServeCmd())
	root.AddCommand(local)
}

func localServeCmd() *cobra.Command {
	var (
		templatePath, statePath, logDir, endpoint, rie, hostDir string
		spansPath                                               string
		concurrency, maxConcurrency                             int
		speedup                                                 float64
		fireAtStart, verbose                                    bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the stack's Lambda functions locally and play their event source mappings",
		Long: "Run every Lambda function of the synthesized template (its bootstrap binary, or the host build under\n" +
			"build/host) under the Lambda Runtime Interface Emulator, and play the event source mappings (SQS queues,\n" +
			"DynamoDB streams) and scheduled rules against the local endpoint until interrupted. Deploy the stack first\n" +
			"with `knhk local deploy`; its state file resolves the functions' environment. See docs/local-lambda.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ls, err := startLocal(cmd, "local serve", endpoint)
			if err != nil {
				return err
			}
			defer ls.stop()
			ctx, cfg := ls.ctx, ls.cfg
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			var env map[string]string
			if spansPath != "" {
				sink, err := otlpsink.Start("127.0.0.1:0", spansPath)
				if err != nil {
					return fmt.Errorf("local serve: trace receiver: %w", err)
				}
				defer func() { _ = sink.Close() }()
				env = localrun.TracingEnv(sink.Endpoint())
				fmt.Fprintf(cmd.OutOrStdout(), "traces %s/v1/traces (spans in %s; view: knhk trace CASE_ID)\n", sink.Endpoint(), spansPath)
			}
			svcCfg := lambdasvc.Config{
				TemplatePath: templatePath, StatePath: statePath, LogDir: logDir, AWS: cfg, RIE: rie,
				StackOptions:       lambdasvc.StackOptions{AssetDir: filepath.Dir(templatePath), HostDir: hostDir},
				DefaultConcurrency: concurrency, MaxConcurrency: maxConcurrency,
				ScheduleSpeedup: speedup, FireAtStart: fireAtStart, Logger: log, Override: env,
			}
			svc, err := lambdasvc.New(svcCfg)
			if err != nil {
				return withExit(2, fmt.Errorf("local serve: %w", err))
			}
			printServePlan(cmd.OutOrStdout(), svc.Stack(), logDir)
			w := cmd.OutOrStdout()
			db := dynamodb.NewFromConfig(cfg)
			for {
				// Serve until interrupted; a restarted or reset endpoint, or
				// a deploy from another shell, makes the stack drift: deploy
				// it again from the same template and state, and serve that.
				runCtx, stopRun := context.WithCancel(ctx)
				ran := make(chan error, 1)
				go func() { ran <- svc.Run(runCtx) }()
				why := localrun.AwaitDrift(runCtx, db, svc.Stack(), driftInterval, func(l string) { fmt.Fprintln(w, l) })
				stopRun()
				if err := <-ran; err != nil {
					return fmt.Errorf("local serve: %w", err)
				}
				for _, st := range svc.Status() {
					fmt.Fprintf(w, "%s: %d invocations, %d restarts\n", st.Name, st.Invocations, st.Restarts)
				}
				if why == "" {
					return nil
				}
				d, err := provision.DeployFile(ctx, cfg, templatePath, provision.Options{StateFile: statePath,
					OutputsFile: filepath.Join(filepath.Dir(statePath), filepath.Base(stack.DefaultOutputsFile))})
				if err == nil {
					err = localrun.GrantDeployer(ctx, cfg, d.Outputs[stack.OutStateTable])
				}
				if err == nil {
					svc, err = lambdasvc.New(svcCfg)
				}
				if err != nil {
					return fmt.Errorf("local serve: redeploy after %s: %w", why, err)
				}
				fmt.Fprintf(w, "%s: deployed the stack again; its stream mappings now read the new streams\n", why)
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&templatePath, "template", "infra/cdk.out/KnhkStack.template.json", "synthesized CloudFormation template")
	f.StringVar(&statePath, "state", ".local/stack-state.json", "stack state file written by `knhk local deploy`")
	f.StringVar(&logDir, "logs", ".local/logs", "folder for the functions' logs (<function>.log)")
	f.StringVar(&spansPath, "spans", DefaultSpansFile, "file where the local trace receiver stores spans (empty: no tracing)")
	f.StringVar(&endpoint, "endpoint", "", "local AWS endpoint URL (default: $AWS_ENDPOINT_URL)")
	f.StringVar(&rie, "rie", "", "Lambda Runtime Interface Emulator binary (default: $"+lambdasvc.RIEEnv+" or "+lambdasvc.DefaultRIE+")")
	f.StringVar(&hostDir, "host-builds", "", "folder of host-architecture function builds (default: build/host under the repository)")
	f.IntVar(&concurrency, "concurrency", 2, "instances per SQS mapping without ScalingConfig.MaximumConcurrency")
	f.IntVar(&maxConcurrency, "max-concurrency", 10, "cap on the instances of any SQS mapping")
	f.Float64Var(&speedup, "schedule-speedup", 1, "run schedules this many times faster than the clock")
	f.BoolVar(&fireAtStart, "fire-schedules-at-start", false, "fire every scheduled rule once at start")
	f.BoolVarP(&verbose, "verbose", "v", false, "log debug detail")
	return cmd
}

func printServePlan(w io.Writer, s *lambdasvc.Stack, logDir string) {
	fmt.Fprintf(w, "stack %s (%s, account %s)\n", s.Name, s.Region, s.Account)
	for _, f := range sortedFunctions(s) {
		fmt.Fprintf(w, "  function %s: %s (memory %d MB, timeout %d s) -> %s\n", f.Name, f.Binary, f.MemorySize, f.Timeout, filepath.Join(logDir, f.Name+".log"))
	}
	for _, m := range s.Queues {
		fmt.Fprintf(w, "  sqs %s -> %s (batch %d, window %d s, max concurrency %d, report failures %t)\n",
			m.QueueARN, m.Function, m.BatchSize, m.WindowSeconds, m.MaxConcurrency, m.ReportFailures)
	}
	for _, m := range s.Streams {
		fmt.Fprintf(w, "  stream %s -> %s (%s, batch %d, bisect %t, retries %d, on failure %s)\n",
			m.StreamARN, m.Function, m.StartingPosition, m.BatchSize, m.Bisect, m.MaxRetryAttempts, m.OnFailureARN)
	}
	for _, sc := range s.Schedules {
		fmt.Fprintf(w, "  schedule %s %s -> %v\n", sc.RuleName, sc.Expression, sc.Targets)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func sortedFunctions(s *lambdasvc.Stack) []*lambdasvc.Function {
	out := make([]*lambdasvc.Function, 0, len(s.Functions))
	for _, f := range s.Functions {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *lambdasvc.Function) int { return strings.Compare(a.Name, b.Name) })
	return out
}
