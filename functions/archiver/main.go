// Command archiver is the scheduled Lambda that archives ended, checkpointed
// cases to the archive bucket and only then lets their receipts expire: it
// reads configuration, builds its dependencies once per execution
// environment and hands each scheduled invocation to the archiver package.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/archiver"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

func main() {
	fn, a, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "archiver init:", err)
		os.Exit(1)
	}
	handler.Start(fn, a.Handler)
}

// settings are the archiver's environment.
type settings struct {
	receipts, state, checkpoints, topic, key, bucket string
	payloads                                         string
	retention                                        time.Duration
	level                                            slog.Level
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{
		receipts:    getenv(stack.EnvName(stack.OutReceiptsTable)),
		state:       getenv(stack.EnvName(stack.OutStateTable)),
		checkpoints: getenv(stack.EnvName(stack.OutCheckpointsTable)),
		topic:       getenv(stack.EnvName(stack.OutAlertsTopicArn)),
		key:         getenv(stack.EnvName(stack.OutCheckpointKeyID)),
		bucket:      getenv(stack.EnvName(stack.OutArchiveBucket)),
		payloads:    getenv(stack.EnvName(stack.OutPayloadBucket)),
	}
	for _, k := range []string{stack.OutReceiptsTable, stack.OutStateTable, stack.OutCheckpointsTable, stack.OutAlertsTopicArn, stack.OutCheckpointKeyID, stack.OutArchiveBucket, stack.OutPayloadBucket} {
		if getenv(stack.EnvName(k)) == "" {
			return s, fmt.Errorf("%s is not set", stack.EnvName(k))
		}
	}
	var err error
	if s.retention, err = archiver.ParseRetentionDays(getenv(archiver.EnvRetentionDays)); err != nil {
		return s, err
	}
	s.level, err = telemetry.ParseLevel(getenv("LOG_LEVEL"))
	return s, err
}

// build returns the wrapper's view of the function (log, tracing, its own
// usage recorded as idle overhead) and the archiver.
func build(ctx context.Context) (handler.Function, *archiver.Archiver, error) {
	var fn handler.Function
	s, err := readSettings(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, archiver.FunctionName, os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	ddb := dynamodb.NewFromConfig(awsCfg)
	s3c := objects.NewClient(awsCfg)
	log := telemetry.NewLogger(os.Stdout, s.level)
	a, err := archiver.New(archiver.Deps{
		Log:        store.NewCheckpoints(ddb, s.checkpoints),
		Leases:     store.NewLeases(ddb, s.state),
		Watermarks: store.NewCases(ddb, s.state),
		Chains:     store.NewReceipts(ddb, s.receipts),
		// Detached payloads from the payloads bucket, or the state table
		// for those written there before they moved.
		Blobs:     objects.NewBlobs(objects.New(s3c, s.payloads), store.NewState(ddb, s.state)),
		Index:     store.NewArchives(ddb, s.state),
		Refusals:  store.NewRefusals(ddb, s.state),
		Bucket:    objects.NewVersioned(s3c, s.bucket),
		Key:       signer.NewKMS(kms.NewFromConfig(awsCfg), s.key),
		Alerts:    alert.NewSNS(sns.NewFromConfig(awsCfg), s.topic),
		Logger:    log,
		Out:       os.Stdout,
		Retention: s.retention,
	})
	return handler.Function{Name: archiver.FunctionName, Log: log, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, s.state), Class: cost.Idle},
	}, a, err
}
