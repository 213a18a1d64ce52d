// Command sla is the scheduled Lambda of the SLA job: it reads
// configuration, builds its dependencies once per execution environment and
// hands each scheduled invocation to the slajob package.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

func main() {
	j, err := build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "sla init:", err)
		os.Exit(1)
	}
	lambda.Start(j.Handler)
}

func build(ctx context.Context) (*slajob.Job, error) {
	table := os.Getenv(stack.EnvName(stack.OutStateTable))
	if table == "" {
		return nil, fmt.Errorf("%s is not set", stack.EnvName(stack.OutStateTable))
	}
	level, err := telemetry.ParseLevel(os.Getenv("LOG_LEVEL"))
	if err != nil {
		return nil, err
	}
	cfg, err := slajob.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	slis := store.NewSLIs(ddb, table)
	return slajob.New(cfg, slajob.Deps{
		Buckets: slis,
		Reports: slis,
		Lease:   store.NewLeases(ddb, table),
		Log:     telemetry.NewLogger(os.Stdout, level),
		Out:     os.Stdout,
	})
}
