package queue

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.opentelemetry.io/otel/trace"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/telemetry"
)

func TestSendBatchesAndAttributes(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("work")})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender(client, *q.QueueUrl)

	const n = 23 // three batches
	var msgs []Message
	for i := range n {
		msgs = append(msgs, Message{Body: map[string]int{"i": i}, CaseID: "case-a", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	}
	if err := s.Send(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, Message{Body: "late", Delay: 2 * time.Hour}); err != nil {
		t.Fatalf("a delay over the SQS maximum must be clamped, got %v", err)
	}

	var got []int
	for len(got) < n {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			var body map[string]int
			if err := json.Unmarshal([]byte(*m.Body), &body); err != nil {
				t.Fatalf("body %q: %v", *m.Body, err)
			}
			if v := m.MessageAttributes[CaseAttribute].StringValue; v == nil || *v != "case-a" {
				t.Fatalf("case attribute = %v", v)
			}
			if v := m.MessageAttributes[TraceAttribute].StringValue; v == nil || *v == "" {
				t.Fatal("traceparent attribute missing")
			}
			got = append(got, body["i"])
		}
	}
	sort.Ints(got)
	if len(got) != n || got[0] != 0 || got[n-1] != n-1 {
		t.Fatalf("received %v, want 0..%d once each (the delayed message must not be visible yet)", got, n-1)
	}
}

func TestEntryClampsDelay(t *testing.T) {
	cases := map[time.Duration]int32{-time.Second: 0, 0: 0, 1500 * time.Millisecond: 2, 15 * time.Minute: 900, 20 * time.Minute: 900}
	for d, want := range cases {
		e, err := entry("1", Message{Body: 1, Delay: d})
		if err != nil {
			t.Fatal(err)
		}
		if e.DelaySeconds != want {
			t.Errorf("delay %s -> %d s, want %d", d, e.DelaySeconds, want)
		}
	}
	if _, err := entry("1", Message{Body: func() {}}); err == nil {
		t.Fatal("an unencodable body was accepted")
	}
}

// A message sent within a span carries that span as its traceparent (the
// receiver's span becomes its child); the caller's slice is left as given.
func TestSendCarriesTheSendingSpan(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("traced")})
	if err != nil {
		t.Fatal(err)
	}
	const sender = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := telemetry.SpanContextOf(sender, "")
	spanCtx := trace.ContextWithSpanContext(ctx, sc)
	msgs := []Message{{Body: "x", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if err := NewSender(client, *q.QueueUrl).Send(spanCtx, msgs...); err != nil {
		t.Fatal(err)
	}
	if msgs[0].TraceParent[3:35] != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("the caller's message was changed: %+v", msgs[0])
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v %v", out, err)
	}
	if v := out.Messages[0].MessageAttributes[TraceAttribute].StringValue; v == nil || *v != sender {
		t.Errorf("traceparent %v, want the sending span %s", v, sender)
	}
}
