// Command cost is the scheduled Lambda of the cost job: it reads
// configuration, builds its dependencies once per execution environment and
// hands each scheduled invocation to the costjob package, which writes the
// month's chargeback exports to the chargeback bucket.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

func main() {
	fn, h, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "cost init:", err)
		os.Exit(1)
	}
	handler.Start(fn, h)
}

// settings are the cost job's environment.
type settings struct {
	receipts, state, topic, bucket string
	queues                         []string // polled by event source mappings
	level                          slog.Level
	conf                           costjob.Config
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{
		receipts: getenv(stack.EnvName(stack.OutReceiptsTable)),
		state:    getenv(stack.EnvName(stack.OutStateTable)),
		topic:    getenv(stack.EnvName(stack.OutAlertsTopicArn)),
		bucket:   getenv(stack.EnvName(stack.OutChargebackBucket)),
	}
	for _, out := range []string{stack.OutReceiptsTable, stack.OutStateTable, stack.OutAlertsTopicArn, stack.OutChargebackBucket} {
		if getenv(stack.EnvName(out)) == "" {
			return s, fmt.Errorf("%s is not set", stack.EnvName(out))
		}
	}
	for _, q := range strings.Split(getenv(costjob.EnvPolledQueues), ",") {
		if q = strings.TrimSpace(q); q != "" {
			s.queues = append(s.queues, q)
		}
	}
	var err error
	if s.level, err = telemetry.ParseLevel(getenv("LOG_LEVEL")); err != nil {
		return s, err
	}
	if s.conf, err = costjob.ParseConfig(getenv(costjob.EnvConfig)); err != nil {
		return s, err
	}
	return s, nil
}

func build(ctx context.Context) (handler.Function, handler.Func[json.RawMessage, costjob.Result], error) {
	var fn handler.Function
	s, err := readSettings(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	prices, err := cost.Load(cost.DefaultVersion)
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, costjob.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	log := telemetry.NewLogger(os.Stdout, s.level)
	ddb := dynamodb.NewFromConfig(awsCfg)
	deps := costjob.Deps{
		Leases:      store.NewLeases(ddb, s.state),
		Chains:      store.NewReceipts(ddb, s.receipts),
		Descriptors: registry.New(ddb, s.state),
		Overheads:   store.NewOverheads(ddb, s.state),
		Polling:     costjob.CloudWatchPolling{CW: newCloudWatch(awsCfg), Queues: s.queues},
		Claims:      store.NewBudgetAlerts(ddb, s.state),
		Alerts:      alert.NewSNS(sns.NewFromConfig(awsCfg), s.topic),
		Export:      objects.New(objects.NewClient(awsCfg), s.bucket),
		Prices:      prices,
		Config:      s.conf,
		Log:         log,
	}
	h := func(ctx context.Context, _ json.RawMessage) (costjob.Result, error) {
		d := deps
		d.Owner = "cost"
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			d.Owner = lc.AwsRequestID
		}
		return costjob.Run(ctx, d)
	}
	return handler.Function{Name: costjob.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, s.state), Class: cost.Idle},
	}, h, nil
}

// newCloudWatch returns a CloudWatch client speaking the awsQuery protocol,
// which CloudWatch and the local endpoint both accept (the SDK's default,
// CBOR, the local endpoint does not; see localaws.NewCloudWatch).
func newCloudWatch(cfg aws.Config) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.Protocol = awsquery.New(smithy.NewServiceSchema(nil, "2010-08-01"))
	})
}
