// Command tuner is the scheduled Lambda of the learning loop: it reads
// configuration, builds its dependencies once per execution environment and
// hands each scheduled invocation to the tuner package.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/tuner"
)

func main() {
	fn, j, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "tuner init:", err)
		os.Exit(1)
	}
	handler.Start(fn, j.Handler)
}

// settings are the tuner's environment.
type settings struct {
	state, receipts, queueURL, queueARN, executor string
	limit                                         int64
	guard                                         tuner.Parsed
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{
		state:    getenv(stack.EnvName(stack.OutStateTable)),
		receipts: getenv(stack.EnvName(stack.OutReceiptsTable)),
		queueURL: getenv(stack.EnvName(stack.OutWorkQueueURL)),
		queueARN: getenv(tuner.EnvWorkQueueArn),
		executor: getenv(tuner.EnvExecutor),
	}
	for name, v := range map[string]string{stack.EnvName(stack.OutStateTable): s.state, stack.EnvName(stack.OutReceiptsTable): s.receipts,
		stack.EnvName(stack.OutWorkQueueURL): s.queueURL, tuner.EnvWorkQueueArn: s.queueARN, tuner.EnvExecutor: s.executor} {
		if v == "" {
			return s, fmt.Errorf("%s is not set", name)
		}
	}
	n, err := strconv.ParseInt(getenv(tuner.EnvMaxConcurrency), 10, 64)
	if err != nil || n < 2 {
		return s, fmt.Errorf("%s=%q: want an integer of at least 2", tuner.EnvMaxConcurrency, getenv(tuner.EnvMaxConcurrency))
	}
	s.limit = n
	if s.guard, err = tuner.ParseConfig(getenv(tuner.EnvGuard), n); err != nil {
		return s, err
	}
	return s, nil
}

// build returns the wrapper's view of the function (log, tracing, its own
// usage recorded as idle overhead) and the job.
func build(ctx context.Context) (handler.Function, *tuner.Job, error) {
	var fn handler.Function
	s, err := readSettings(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	level, err := telemetry.ParseLevel(os.Getenv("LOG_LEVEL"))
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, tuner.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	ddb := dynamodb.NewFromConfig(awsCfg)
	log := telemetry.NewLogger(os.Stdout, level)
	j, err := tuner.New(s.guard, tuner.Deps{
		Buckets:  store.NewSLIs(ddb, s.state),
		Lease:    store.NewLeases(ddb, s.state),
		Mapping:  &tuner.LambdaMapping{Client: lambda.NewFromConfig(awsCfg), Function: s.executor, QueueARN: s.queueARN},
		Queue:    tuner.SQSDepth{Client: sqs.NewFromConfig(awsCfg), URL: s.queueURL},
		Items:    tuner.Items{DB: ddb, Table: s.state},
		Chain:    &tuner.Chain{Store: store.NewReceipts(ddb, s.receipts)},
		Reserved: s.limit,
		Log:      log,
	})
	return handler.Function{Name: tuner.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, s.state), Class: cost.Idle},
	}, j, err
}
