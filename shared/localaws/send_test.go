package localaws

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// queueScans reads the endpoint's count of walks over a queue's messages
// from its stats file (written at exit).
func queueScans(t *testing.T, path string) (scans, messages int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ops map[string]struct {
		Count    int `json:"count"`
		Messages int `json:"messages"`
	}
	if err := json.Unmarshal(raw, &ops); err != nil {
		t.Fatal(err)
	}
	s := ops["SQS queue scans"]
	return s.Count, s.Messages
}

// A send's cost must not depend on the queue's depth: moto computed every
// queue attribute, three of which walk the whole queue, on each SendMessage
// and each entry of a SendMessageBatch. The endpoint counts those walks
// (a deterministic proxy for the cost): filling a queue with thousands of
// messages must walk it never, while a receive still does (the counter
// works).
func TestSendsDoNotWalkTheQueue(t *testing.T) {
	stats := filepath.Join(t.TempDir(), "stats.json")
	t.Setenv("KNHK_ENDPOINT_STATS", stats)
	ep, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("deep")})
	if err != nil {
		t.Fatal(err)
	}
	const batches = 200 // 2,000 messages
	for b := range batches {
		entries := make([]sqstypes.SendMessageBatchRequestEntry, 10)
		for i := range entries {
			entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(fmt.Sprintf("m-%d-%d", b, i))}
		}
		out, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: created.QueueUrl, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("batch %d: %v %v", b, err, out)
		}
	}
	for i := range 20 {
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: aws.String(fmt.Sprint("single-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: created.QueueUrl, MaxNumberOfMessages: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ep.Stop(); err != nil {
		t.Fatal(err)
	}
	scans, visited := queueScans(t, stats)
	if scans == 0 {
		t.Fatal("no queue scan counted: the receive walks the queue, so the counter does not work")
	}
	// Every scan counted comes from the one receive, which walks the 2,020
	// messages a few times; 2,020 sends walking a queue of average depth
	// 1,000 three times each would visit millions.
	if visited > 10*(batches*10+20) {
		t.Fatalf("%d scans visited %d messages: the sends walk the queue", scans, visited)
	}
}
