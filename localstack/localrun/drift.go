package localrun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/localstack/lambdasvc"
)

// TableDescriber is the part of the DynamoDB client Drift uses.
type TableDescriber interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// Drift says why the stack a Lambda service serves no longer matches the
// endpoint, "" while it does: a table whose stream a mapping reads is gone
// (the endpoint restarted or was reset) or has a stream other than the
// mapping's (the stack was deployed again).
func Drift(ctx context.Context, db TableDescriber, s *lambdasvc.Stack) (string, error) {
	for _, m := range s.Streams {
		table, ok := streamTable(m.StreamARN)
		if !ok {
			continue
		}
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var missing *ddbtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &missing):
			return fmt.Sprintf("table %s is gone from the endpoint (restarted or reset)", table), nil
		case err != nil:
			return "", fmt.Errorf("localrun: describe %s: %w", table, err)
		case aws.ToString(out.Table.LatestStreamArn) != m.StreamARN:
			return fmt.Sprintf("table %s has a new stream (the stack was deployed again)", table), nil
		}
	}
	return "", nil
}

// streamTable is the table name in a DynamoDB stream ARN
// (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL).
func streamTable(arn string) (string, bool) {
	_, rest, ok := strings.Cut(arn, ":table/")
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "/stream/")
	return name, ok && name != ""
}

// AwaitDrift checks every interval until the stack drifts (its reason is
// returned) or ctx ends (""); a failed check is noted as a warning and
// tried again.
func AwaitDrift(ctx context.Context, db TableDescriber, s *lambdasvc.Stack, interval time.Duration, note func(string)) string {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-t.C:
		}
		why, err := Drift(ctx, db, s)
		switch {
		case ctx.Err() != nil:
			return ""
		case err != nil:
			note("warning: " + err.Error())
		case why != "":
			return why
		}
	}
}

// Keep serves the stack until ctx ends, checking every interval that it
// still matches the endpoint; on a drift it says why through note, stops
// the service, deploys the stack again (Up), runs again (a lost registry
// and secrets, for instance) and serves the new stack, whose stream
// mappings read the new streams. It returns the Env it serves last, which
// the caller closes.
func Keep(ctx context.Context, cfg Config, e *Env, interval time.Duration, note func(string), again func(*Env) error) (*Env, error) {
	db := dynamodb.NewFromConfig(cfg.AWS)
	for {
		why := AwaitDrift(ctx, db, e.Lambda.Stack(), interval, note)
		if why == "" {
			return e, nil
		}
		if err := e.Close(); err != nil {
			note("warning: stopping the Lambda service: " + err.Error())
		}
		next, err := Up(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("localrun: redeploy after %s: %w", why, err)
		}
		e = next
		if again != nil {
			if err := again(e); err != nil {
				return e, fmt.Errorf("localrun: after redeploy: %w", err)
			}
		}
		note(why + ": deployed the stack again; its stream mappings now read the new streams")
	}
}
