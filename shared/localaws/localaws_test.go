package localaws

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// A long poll whose client went away must not take the messages that
// arrive afterwards: moto would keep them invisible for the visibility
// timeout with nobody to process them.
func TestAbandonedLongPollTakesNoMessage(t *testing.T) {
	ep := StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("abandoned-poll"),
		Attributes: map[string]string{"VisibilityTimeout": "300"}})
	if err != nil {
		t.Fatal(err)
	}
	url := created.QueueUrl
	pollCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := q.ReceiveMessage(pollCtx, &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 20}); err == nil {
		t.Fatal("the abandoned poll returned; want it cancelled")
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("after the poll left")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the abandoned poll wakes at least once a second
	out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "after the poll left" {
		t.Fatalf("received %d messages, want the one sent after the abandoned poll", len(out.Messages))
	}
}
