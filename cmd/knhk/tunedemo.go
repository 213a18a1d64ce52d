package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/knhk/knhk/localstack/tunedemo"
)

func tuneDemoCmd() *cobra.Command {
	var (
		templatePath, hostDir, workDir string
		start                          int32
		instances                      int
		drain, objective               time.Duration
		scale                          float64
		only                           string
	)
	cmd := &cobra.Command{
		Use:   "tune-demo",
		Short: "Play the learning loop's scenario twice on fresh local endpoints, loop off then on, and compare",
		Long: "A dependency slows to two seconds and fails three calls in ten, then the volume triples, then both recover.\n" +
			"The scenario runs once with the loop's kill switch on and once with the loop applying what its guardrails\n" +
			"admit, each on its own fresh local endpoint, and prints side by side what the receipts show: SLA breach\n" +
			"minutes, p99, DLQ messages, faulted cases, cost per case, and every change the loop made with its verdict.\n" +
			"The template must be synthesized with the scenario's context (make tune-demo does it).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scale <= 0 {
				return withExit(2, fmt.Errorf("--scale %v: want a positive factor", scale))
			}
			phases := tunedemo.DefaultPhases()
			for i := range phases {
				phases[i].Duration = max(time.Minute, time.Duration(float64(phases[i].Duration)*scale).Round(time.Minute))
			}
			w := cmd.OutOrStdout()
			obj := tunedemo.Objective{Availability: 0.95, P99: objective}
			c := tunedemo.Config{TemplatePath: templatePath, HostDir: hostDir, WorkDir: workDir, Phases: phases,
				StartConcurrency: start, Instances: instances, Drain: drain, Objective: obj, Progress: cmd.ErrOrStderr()}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var runs [2]tunedemo.Figures
			for i, loop := range []bool{false, true} {
				saved := filepath.Join(workDir, tunedemo.Label(loop), "figures.json")
				if (only == "on" && !loop) || (only == "off" && loop) {
					// The other side from its last run, if there was one.
					runs[i].Loop = loop
					if b, err := os.ReadFile(saved); err == nil {
						if err := json.Unmarshal(b, &runs[i]); err != nil {
							return fmt.Errorf("tune demo: %s: %w", saved, err)
						}
						fmt.Fprintf(cmd.ErrOrStderr(), "%s from its last run (%s)\n", tunedemo.Label(loop), saved)
					}
					continue
				}
				f, err := tunedemo.Run(ctx, c, loop)
				if err != nil {
					return err
				}
				runs[i] = f
				b, err := json.MarshalIndent(f, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(saved, b, 0o644); err != nil {
					return fmt.Errorf("tune demo: keep the figures: %w", err)
				}
			}
			fmt.Fprintln(w)
			tunedemo.Print(w, obj, runs[0], runs[1])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&templatePath, "template", ".local/tune-demo/cdk.out/KnhkStack.template.json", "template synthesized with the scenario's context")
	f.StringVar(&hostDir, "host-builds", "build/host", "folder of host-architecture function builds")
	f.StringVar(&workDir, "work", ".local/tune-demo", "folder for the runs' logs and stack state")
	f.Int32Var(&start, "start-concurrency", 4, "the work queue mapping's maximum concurrency when the scenario starts")
	f.IntVar(&instances, "instances", 12, "instances per function in the local Lambda service (the loop's upper bound is the template's)")
	f.DurationVar(&drain, "drain", 8*time.Minute, "how long to wait for the last cases after the last phase")
	f.DurationVar(&objective, "objective-p99", 5*time.Second, "p99 of the caller's wait (sent to ended) that a minute must meet")
	f.Float64Var(&scale, "scale", 1, "factor on the phases' durations (each at least a minute)")
	f.StringVar(&only, "only", "", "run only one side, on or off, and compare it with the other side's last run")
	return cmd
}
