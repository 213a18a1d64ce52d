package tuner

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/shared/learn"
)

// TestLambdaMappingOnLocalAPI reads and updates the work queue mapping
// through the Lambda API as the local Lambda service serves it.
func TestLambdaMappingOnLocalAPI(t *testing.T) {
	const fn, queue = "Stack-Executor", "arn:aws:sqs:us-east-1:000000000000:work"
	st := &lambdasvc.Stack{Name: "Stack", Functions: map[string]*lambdasvc.Function{
		fn: {Name: fn, ARN: "arn:aws:lambda:us-east-1:000000000000:function:" + fn}},
		Queues: []lambdasvc.QueueMapping{{LogicalID: "Work", Function: fn, QueueARN: queue, BatchSize: 5, MaxConcurrency: 4}}}
	srv := httptest.NewServer(lambdasvc.MappingAPI(st))
	defer srv.Close()
	client := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.AnonymousCredentials{}})
	ctx := context.Background()
	m := &LambdaMapping{Client: client, Function: fn, QueueARN: queue}
	got, err := m.Settings(ctx)
	if err != nil || got != (MappingSettings{MaxConcurrency: 4, BatchSize: 5}) {
		t.Fatalf("settings %+v, %v", got, err)
	}
	if err := m.Set(ctx, learn.MaxConcurrency, 6); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, learn.BatchSize, 7); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Settings(ctx); err != nil || got != (MappingSettings{MaxConcurrency: 6, BatchSize: 7}) {
		t.Fatalf("after updates %+v, %v", got, err)
	}
	if err := m.Set(ctx, learn.MaxConcurrency, 1); err == nil {
		t.Error("a concurrency below the API's minimum was accepted")
	}
	if err := m.Set(ctx, learn.RetryAttempts, 3); err == nil {
		t.Error("a task setting went to the mapping")
	}
	other := &LambdaMapping{Client: client, Function: "Stack-Other", QueueARN: queue}
	if _, err := other.Settings(ctx); err == nil {
		t.Error("found a mapping of another function")
	}
}
