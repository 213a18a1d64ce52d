// Command canary is the scheduled health canary Lambda: it builds its
// dependencies once per execution environment and hands each scheduled
// invocation to the canary package.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

func main() {
	fn, c, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "canary init:", err)
		os.Exit(1)
	}
	handler.Start(fn, c.Handler)
}

// build returns the wrapper's view of the function (its log and tracing:
// each probe's start message carries the canary invocation's trace) and
// the canary.
func build(ctx context.Context) (handler.Function, *canary.Canary, error) {
	var fn handler.Function
	env := map[string]string{}
	for _, k := range []string{stack.OutStateTable, stack.OutReceiptsTable, stack.OutWorkQueueURL} {
		if env[k] = os.Getenv(stack.EnvName(k)); env[k] == "" {
			return fn, nil, fmt.Errorf("%s is not set", stack.EnvName(k))
		}
	}
	level, err := telemetry.ParseLevel(os.Getenv("LOG_LEVEL"))
	if err != nil {
		return fn, nil, err
	}
	freshness, err := canary.ParseFreshness(os.Getenv(canary.EnvFreshness))
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, canary.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	ddb := dynamodb.NewFromConfig(awsCfg)
	state := env[stack.OutStateTable]
	log := telemetry.NewLogger(os.Stdout, level)
	c, err := canary.New(freshness, canary.Deps{
		Registry: registry.New(ddb, state),
		Sender:   queue.NewSender(sqs.NewFromConfig(awsCfg), env[stack.OutWorkQueueURL]),
		Chains: canary.StoreChains{
			Cases:    store.NewCases(ddb, state),
			Receipts: store.NewReceipts(ddb, env[stack.OutReceiptsTable]),
			Found:    store.NewFindings(ddb, state),
		},
		Probes: canary.StateProbes{DB: ddb, Table: state},
		SLIs:   store.NewSLIs(ddb, state),
		Log:    log,
	})
	return handler.Function{Name: canary.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, state), Class: cost.Idle},
	}, c, err
}
