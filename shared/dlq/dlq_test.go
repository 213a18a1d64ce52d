package dlq

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
)

func str(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

// TestRedriveOnLocalEndpoint lists, filters and redrives dead-lettered
// messages on the real local endpoint: nothing is lost or duplicated, and the
// moved messages keep their body and attributes.
func TestRedriveOnLocalEndpoint(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	url := func(name string) string {
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.QueueUrl)
	}
	q := &Queues{SQS: client, DeadURL: url("dead"), SourceURL: url("work")}

	start := message.Start{Kind: message.KindStart, Tenant: "t1", Workflow: message.WorkflowRef{Namespace: "ns", Name: "wf"}, IdempotencyKey: "k1", Input: json.RawMessage(`{}`)}
	caseA := start.CaseID()
	startBody, _ := json.Marshal(start)
	caseB := message.CaseID("t1", "ns", "wf", "k2")
	contBody, _ := json.Marshal(message.Continue{Kind: message.KindContinue, Tenant: "t1", CaseID: caseB, Reason: message.ReasonResume, ExpectedSeq: 1})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	bodies := []string{string(startBody), string(contBody), "not json"}
	for i, b := range bodies {
		in := &sqs.SendMessageInput{QueueUrl: aws.String(q.DeadURL), MessageBody: aws.String(b)}
		if i == 0 {
			// The invalid body claims case A in its attribute: the filter
			// goes by the validated body, not by the claim.
			in.MessageAttributes = map[string]types.MessageAttributeValue{queue.TraceAttribute: str(tp), queue.CaseAttribute: str(caseA)}
		}
		if i == 2 {
			in.MessageAttributes = map[string]types.MessageAttributeValue{queue.CaseAttribute: str(caseA)}
		}
		if _, err := client.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	for range 2 { // listing twice sees the same messages: a listing removes nothing
		got, err := q.List(ctx, 0)
		if err != nil || len(got) != 3 {
			t.Fatalf("list: %d messages, %v", len(got), err)
		}
		kinds := map[string]string{}
		for _, m := range got {
			kinds[m.Body] = m.Kind + "/" + m.CaseID
			if m.Body == "not json" && m.Invalid == "" {
				t.Errorf("invalid body not reported as invalid: %+v", m)
			}
		}
		if kinds[string(startBody)] != "start/"+caseA || kinds[string(contBody)] != "continue/"+caseB || kinds["not json"] != "/" {
			t.Fatalf("described as %v", kinds)
		}
	}
	if got, _ := q.List(ctx, 2); len(got) != 2 {
		t.Fatalf("list --max 2 returned %d", len(got))
	}

	res, err := q.Redrive(ctx, Filter{CaseID: caseA})
	if err != nil || len(res.Moved) != 1 {
		t.Fatalf("redrive case A: %+v %v", res, err)
	}
	moved := receiveAll(t, client, q.SourceURL)
	if len(moved) != 1 || aws.ToString(moved[0].Body) != string(startBody) ||
		aws.ToString(moved[0].MessageAttributes[queue.TraceAttribute].StringValue) != tp ||
		aws.ToString(moved[0].MessageAttributes[queue.CaseAttribute].StringValue) != caseA {
		t.Fatalf("work queue after redriving case A: %+v", moved)
	}

	res, err = q.Redrive(ctx, Filter{})
	if err != nil || len(res.Moved) != 2 || res.TaskHandle != "" {
		t.Fatalf("redrive all (moved one at a time locally): %+v %v", res, err)
	}
	rest := receiveAll(t, client, q.SourceURL)
	var got []string
	for _, m := range rest {
		got = append(got, aws.ToString(m.Body))
	}
	slices.Sort(got)
	want := []string{string(contBody), "not json"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("work queue after redriving all: %q, want %q", got, want)
	}
	if left, _ := q.List(ctx, 0); len(left) != 0 {
		t.Fatalf("dead-letter queue still holds %d messages", len(left))
	}
}

func receiveAll(t *testing.T, c *sqs.Client, url string) []types.Message {
	t.Helper()
	var all []types.Message
	for {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, VisibilityTimeout: 60, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		all = append(all, out.Messages...)
	}
}
