// Command verifier is the Lambda on the receipts table's DynamoDB stream: it
// reads configuration, builds its dependencies once per execution
// environment and hands stream batches to the verifier package.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/verifier"
)

func main() {
	fn, h, err := build(context.Background())
	if err != nil {
		// Init failures surface as the function's init error.
		fmt.Fprintln(os.Stderr, "verifier init:", err)
		os.Exit(1)
	}
	handler.Start(fn, h)
}

// settings are the verifier's environment.
type settings struct {
	receipts, state, topic string
	level                  slog.Level
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{
		receipts: getenv("KNHK_RECEIPTS_TABLE"),
		state:    getenv("KNHK_STATE_TABLE"),
		topic:    getenv("KNHK_ALERTS_TOPIC_ARN"),
	}
	for name, v := range map[string]string{"KNHK_RECEIPTS_TABLE": s.receipts, "KNHK_STATE_TABLE": s.state} {
		if v == "" {
			return s, fmt.Errorf("%s is not set", name)
		}
	}
	var err error
	if s.level, err = telemetry.ParseLevel(getenv("LOG_LEVEL")); err != nil {
		return s, err
	}
	return s, nil
}

func build(ctx context.Context) (handler.Function, handler.Func[events.DynamoDBEvent, events.DynamoDBEventResponse], error) {
	var fn handler.Function
	s, err := readSettings(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, verifier.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	log := telemetry.NewLogger(os.Stdout, s.level)
	metrics := telemetry.NewMetrics(telemetry.Namespace)
	if err := metrics.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: verifier.FunctionName}); err != nil {
		return fn, nil, err
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	v, err := verifier.New(verifier.Deps{
		Chains:   store.NewReceipts(ddb, s.receipts),
		Cases:    store.NewCases(ddb, s.state),
		Findings: store.NewFindings(ddb, s.state),
		Alerts:   alert.NewSNS(sns.NewFromConfig(awsCfg), s.topic),
		SLIs:     store.NewSLIs(ddb, s.state),
		Archives: store.NewArchives(ddb, s.state),
		Log:      log,
		Metrics:  metrics,
		Out:      os.Stdout,
	})
	if err != nil {
		return fn, nil, err
	}
	// The verifier flushes its own metrics per batch.
	return handler.Function{Name: verifier.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, s.state), Class: cost.Shared, Every: handler.BusyOverheadEvery},
	}, v.Handler, nil
}
