package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/stack"
)

// outputsFile is where commands that talk to a deployed stack find its
// resource names when the KNHK_* environment variables do not give them.
var outputsFile string

func init() {
	root.PersistentFlags().StringVar(&outputsFile, "outputs", stack.DefaultOutputsFile,
		"stack outputs file (JSON) naming tables, queues and keys; KNHK_* environment variables override it")
}

// awsConfig loads the default AWS configuration (it honours AWS_ENDPOINT_URL
// and the usual credential chain), defaulting the region to us-east-1. With an
// endpoint (a local one) it also uses it explicitly and, when no credentials
// are configured, the local endpoint's test credentials.
func awsConfig(ctx context.Context, endpoint string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(endpoint))
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws config: %w", err)
	}
	return cfg, nil
}

// deployedStack resolves the stack's resources and the AWS configuration to
// reach them, and checks that the ones the caller needs are named.
func deployedStack(ctx context.Context, need ...string) (aws.Config, stack.Resources, error) {
	res, err := stack.Resolve(outputsFile)
	if err != nil {
		return aws.Config{}, res, err
	}
	have := map[string]string{
		stack.OutReceiptsTable:    res.ReceiptsTable,
		stack.OutStateTable:       res.StateTable,
		stack.OutWorkQueueURL:     res.WorkQueueURL,
		stack.OutDeadLetterURL:    res.DeadLetterURL,
		stack.OutAlertsTopicArn:   res.AlertsTopicArn,
		stack.OutCheckpointKeyID:  res.CheckpointKeyID,
		stack.OutCheckpointsTable: res.CheckpointsTable,
		stack.OutChargebackBucket: res.ChargebackBucket,
		stack.OutPayloadBucket:    res.PayloadBucket,
		stack.OutArchiveBucket:    res.ArchiveBucket,
	}
	for _, k := range need {
		if have[k] == "" {
			return aws.Config{}, res, errors.New("stack output " + k + " unknown: deploy the stack (make local-deploy) or set " + stack.EnvName(k))
		}
	}
	cfg, err := awsConfig(ctx, "")
	return cfg, res, err
}

// localEndpoint returns the local endpoint a command works against: flag,
// else AWS_ENDPOINT_URL. Without one the command refuses to run, so it never
// acts on real AWS by accident.
// localSession is what a long-running command on the local endpoint needs:
// the endpoint, a context that ends on Ctrl-C or SIGTERM (stop releases
// it), and the AWS configuration for the endpoint.
type localSession struct {
	endpoint string
	ctx      context.Context
	stop     context.CancelFunc
	cfg      aws.Config
}

// startLocal resolves the endpoint (flag, else AWS_ENDPOINT_URL) and opens a
// session on it; the caller defers s.stop.
func startLocal(cmd *cobra.Command, command, flag string) (*localSession, error) {
	endpoint, err := localEndpoint(command, flag)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	cfg, err := awsConfig(ctx, endpoint)
	if err != nil {
		stop()
		return nil, err
	}
	return &localSession{endpoint: endpoint, ctx: ctx, stop: stop, cfg: cfg}, nil
}

func localEndpoint(command, flag string) (string, error) {
	if flag == "" {
		flag = os.Getenv("AWS_ENDPOINT_URL")
	}
	if flag == "" {
		return "", withExit(2, fmt.Errorf("%s: no endpoint: set AWS_ENDPOINT_URL or --endpoint", command))
	}
	return flag, nil
}
