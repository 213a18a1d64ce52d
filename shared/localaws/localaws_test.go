package localaws

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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

// Distinct access keys are distinct senders: the SenderId a receiver sees
// is the signing key's principal, the one GetCallerIdentity reports as its
// UserId, for single and batch sends alike.
func TestSenderIDIsTheSigningPrincipal(t *testing.T) {
	ep := StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("senders")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, key := range []string{AccessKey, "producer-a", "producer-b"} {
		kc, err := ep.ConfigAs(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		id, err := sts.NewFromConfig(kc).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(id.UserId) != key {
			t.Fatalf("GetCallerIdentity UserId %q for key %q", aws.ToString(id.UserId), key)
		}
		kq := sqs.NewFromConfig(kc)
		if _, err := kq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: aws.String("single " + key)}); err != nil {
			t.Fatal(err)
		}
		if _, err := kq.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: created.QueueUrl,
			Entries: []sqstypes.SendMessageBatchRequestEntry{{Id: aws.String("1"), MessageBody: aws.String("batch " + key)}}}); err != nil {
			t.Fatal(err)
		}
		want["single "+key], want["batch "+key] = key, key
	}
	got := map[string]string{}
	for len(got) < len(want) {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: created.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			t.Fatalf("received %d of %d messages", len(got), len(want))
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)] = m.Attributes["SenderId"]
		}
	}
	for body, key := range want {
		if got[body] != key {
			t.Errorf("message %q: SenderId %q, want %q", body, got[body], key)
		}
	}
}
