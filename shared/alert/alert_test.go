package alert

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/localaws"
)

func TestShorten(t *testing.T) {
	long := strings.Repeat("é", 80) // 160 bytes
	got := shorten(long, maxSubject)
	if len(got) > maxSubject || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("shorten = %q (%d bytes)", got, len(got))
	}
	if shorten("short", maxSubject) != "short" {
		t.Fatal("a short subject was changed")
	}
}

func TestAlertReachesSubscriber(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sn, sq := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts")})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("pager")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(attrs.Attributes["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	if err := NewSNS(sn, *topic.TopicArn).Alert(ctx, "KNHK integrity finding: case 42", "HashMismatch at seq 3"); err != nil {
		t.Fatal(err)
	}
	out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 2})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive = %v, %v", out, err)
	}
	var env struct{ Subject, Message string }
	if err := json.Unmarshal([]byte(*out.Messages[0].Body), &env); err != nil {
		t.Fatal(err)
	}
	if env.Subject != "KNHK integrity finding: case 42" || env.Message != "HashMismatch at seq 3" {
		t.Fatalf("delivered %+v", env)
	}
	if err := NewSNS(sn, "").Alert(ctx, "x", "y"); err != nil {
		t.Fatalf("a disabled alerter must be a no-op, got %v", err)
	}
}
