package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/executor"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// TestSubmitWaitConflictAndRelease: `submit --wait` reports a reused
// idempotency key with another input (exit 4) and waits for an ordinary
// case; `case show` names a quarantine (exit 3) until `case release`, which
// records the operator action and resumes the case.
func TestSubmitWaitConflictAndRelease(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	sample := filepath.Join("..", "..", "events")
	if _, errOut, code := run(t, "workflow", "push", filepath.Join(sample, "workflows", "order-routing.yaml"), "--outputs", outFile); code != 0 {
		t.Fatalf("push: %d %q", code, errOut)
	}
	out, errOut, code := run(t, "submit", "--workflow", "commerce/order-routing", "--key", "k1",
		"--input", filepath.Join(sample, "inputs", "order-routing.json"), "--outputs", outFile)
	if code != 0 {
		t.Fatalf("submit: %d %q", code, errOut)
	}
	caseID := strings.TrimSpace(out)
	ctx := context.Background()
	cfg, _ := ep.Config(ctx)
	sq, db := sqs.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg)
	srv := standin.New()
	cases := store.NewCases(db, outs[stack.OutStateTable])
	x := executor.New(executor.DefaultConfig(), executor.Deps{
		Chains: store.NewReceipts(db, outs[stack.OutReceiptsTable]), Descriptors: registry.New(db, outs[stack.OutStateTable]),
		Cases: cases, Sender: queue.NewSender(sq, outs[stack.OutWorkQueueURL]), HTTP: standinClient(t, srv),
	})
	drain := func() int { return drainWork(t, sq, outs[stack.OutWorkQueueURL], x) }
	drain()

	// The same key with the same input: waits and reports the output.
	out, errOut, code = run(t, "submit", "--workflow", "commerce/order-routing", "--key", "k1", "--wait", "--timeout", "30s",
		"--input", filepath.Join(sample, "inputs", "order-routing.json"), "--outputs", outFile)
	if code != 0 || !strings.Contains(out, "completed") {
		t.Fatalf("submit --wait, same input: %d %q %q", code, out, errOut)
	}
	// The same key with another input: a conflict, exit 4.
	_, _, code = run(t, "submit", "--workflow", "commerce/order-routing", "--key", "k1", "--wait", "--timeout", "30s",
		"--input", filepath.Join(sample, "inputs", "payment-processing.json"), "--outputs", outFile)
	if code != exitConflict {
		t.Fatalf("submit --wait, other input: exit %d, want %d (conflict)", code, exitConflict)
	}
	drain()
	if cs, err := cases.StartConflicts(ctx, caseID); err != nil || len(cs) != 1 {
		t.Fatalf("start conflicts recorded %+v (%v), want 1", cs, err)
	}

	// Quarantine (as the executor records it), show, release.
	finding := receipt.Finding{Kind: receipt.Modified, Tenant: message.DefaultTenant, CaseID: caseID, Seq: 1, Detail: "test"}
	if _, err := cases.Quarantine(ctx, message.DefaultTenant, caseID, []receipt.Finding{finding}); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(t, "case", "show", caseID, "--outputs", outFile)
	if code != 3 || !strings.Contains(out, "quarantined") || !strings.Contains(out, string(receipt.Modified)) {
		t.Fatalf("case show of a quarantined case: exit %d\n%s", code, out)
	}
	if _, _, code := run(t, "case", "release", caseID, "--outputs", outFile); code == 0 {
		t.Fatal("release without --reason succeeded")
	}
	out, errOut, code = run(t, "case", "release", caseID, "--reason", "false positive", "--outputs", outFile)
	if code != 0 || !strings.Contains(out, "released") || !strings.Contains(errOut, "operator action") {
		t.Fatalf("release: %d %q %q", code, out, errOut)
	}
	if n := drain(); n != 1 {
		t.Errorf("release sent %d messages, want one resume", n)
	}
	if _, _, code := run(t, "case", "show", caseID, "--outputs", outFile); code != 0 {
		t.Fatalf("case show after release exited %d", code)
	}
	if _, _, code := run(t, "case", "release", caseID, "--reason", "again", "--outputs", outFile); code != 2 {
		t.Fatalf("releasing a case that is not quarantined exited %d, want 2", code)
	}
}

// standinClient serves h on loopback and returns a client whose sample
// hosts reach it.
func standinClient(t *testing.T, h http.Handler) *http.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return standin.Client(srv.Listener.Addr().String())
}

// drainWork hands the work queue's messages to the executor x until the
// queue is empty, and returns how many it handed.
func drainWork(t *testing.T, sq *sqs.Client, queueURL string, x *executor.Executor) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for {
		got, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Messages) == 0 {
			return n
		}
		var ev events.SQSEvent
		for _, m := range got.Messages {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), Body: aws.ToString(m.Body)})
			_, _ = sq.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle})
		}
		hctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, _ = x.Handle(hctx, ev)
		cancel()
		n += len(got.Messages)
	}
}
