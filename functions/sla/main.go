// Command sla is the scheduled Lambda of the SLA job: it reads
// configuration, builds its dependencies once per execution environment and
// hands each scheduled invocation to the slajob package.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

func main() {
	fn, j, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "sla init:", err)
		os.Exit(1)
	}
	handler.Start(fn, j.Handler)
}

// build returns the wrapper's view of the function (log, tracing, its own
// usage recorded as idle overhead) and the job.
func build(ctx context.Context) (handler.Function, *slajob.Job, error) {
	var fn handler.Function
	table := os.Getenv(stack.EnvName(stack.OutStateTable))
	if table == "" {
		return fn, nil, fmt.Errorf("%s is not set", stack.EnvName(stack.OutStateTable))
	}
	level, err := telemetry.ParseLevel(os.Getenv("LOG_LEVEL"))
	if err != nil {
		return fn, nil, err
	}
	cfg, err := slajob.ConfigFromEnv(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, slajob.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	ddb := dynamodb.NewFromConfig(awsCfg)
	slis := store.NewSLIs(ddb, table)
	log := telemetry.NewLogger(os.Stdout, level)
	j, err := slajob.New(cfg, slajob.Deps{
		Buckets: slis,
		Reports: slis,
		Lease:   store.NewLeases(ddb, table),
		Log:     log,
		Out:     os.Stdout,
	})
	return handler.Function{Name: slajob.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, table), Class: cost.Idle},
	}, j, err
}
