// Command checkpointer is the scheduled Lambda that signs checkpoints: it
// reads configuration, builds its dependencies once per execution
// environment and hands each scheduled invocation to the checkpointer
// package.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/checkpointer"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

func main() {
	fn, c, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "checkpointer init:", err)
		os.Exit(1)
	}
	handler.Start(fn, c.Handler)
}

// settings are the checkpointer's environment.
type settings struct {
	receipts, state, checkpoints, topic, key string
	level                                    slog.Level
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{
		receipts:    getenv(stack.EnvName(stack.OutReceiptsTable)),
		state:       getenv(stack.EnvName(stack.OutStateTable)),
		checkpoints: getenv(stack.EnvName(stack.OutCheckpointsTable)),
		topic:       getenv(stack.EnvName(stack.OutAlertsTopicArn)),
		key:         getenv(stack.EnvName(stack.OutCheckpointKeyID)),
	}
	for _, k := range []string{stack.OutReceiptsTable, stack.OutStateTable, stack.OutCheckpointsTable, stack.OutAlertsTopicArn, stack.OutCheckpointKeyID} {
		if getenv(stack.EnvName(k)) == "" {
			return s, fmt.Errorf("%s is not set", stack.EnvName(k))
		}
	}
	var err error
	s.level, err = telemetry.ParseLevel(getenv("LOG_LEVEL"))
	return s, err
}

// build returns the wrapper's view of the function (log, tracing, its own
// usage recorded as idle overhead) and the checkpointer.
func build(ctx context.Context) (handler.Function, *checkpointer.Checkpointer, error) {
	var fn handler.Function
	s, err := readSettings(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, checkpointer.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	ddb := dynamodb.NewFromConfig(awsCfg)
	log := telemetry.NewLogger(os.Stdout, s.level)
	c, err := checkpointer.New(checkpointer.Deps{
		Log:      store.NewCheckpoints(ddb, s.checkpoints),
		Leases:   store.NewLeases(ddb, s.checkpoints),
		Cases:    store.NewCases(ddb, s.state),
		Chains:   store.NewReceipts(ddb, s.receipts),
		Findings: store.NewFindings(ddb, s.state),
		Alerts:   alert.NewSNS(sns.NewFromConfig(awsCfg), s.topic),
		Signer:   signer.NewKMS(kms.NewFromConfig(awsCfg), s.key),
		Logger:   log,
		Out:      os.Stdout,
	})
	return handler.Function{Name: checkpointer.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, s.state), Class: cost.Idle},
	}, c, err
}
