package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/executor"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// TestOperatorCommandsOnLocalStack publishes a workflow, submits a case,
// lets an executor run it, and inspects it the way an operator does.
func TestOperatorCommandsOnLocalStack(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	dir := filepath.Dir(outFile)
	sample := filepath.Join("..", "..", "events")

	out, errOut, code := run(t, "workflow", "push", filepath.Join(sample, "workflows", "order-routing.yaml"), "--outputs", outFile)
	if code != 0 || !strings.HasPrefix(out, "created commerce/order-routing:1.0.0 sha256:") {
		t.Fatalf("push: %d %q %q", code, out, errOut)
	}
	if out, _, code := run(t, "workflow", "list", "--outputs", outFile); code != 0 || !strings.Contains(out, "commerce/order-routing  1.0.0    *") {
		t.Fatalf("list: %d %q", code, out)
	}
	if _, _, code := run(t, "submit", "--workflow", "commerce/", "--outputs", outFile); code != 2 {
		t.Fatalf("submit with a bad reference exited %d, want 2", code)
	}
	// What the executor would fault at once is refused here (exit 2).
	for _, n := range []int{512, 600} {
		deep := filepath.Join(t.TempDir(), "deep.json")
		if err := os.WriteFile(deep, []byte(strings.Repeat("[", n)+strings.Repeat("]", n)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, code := run(t, "submit", "--workflow", "commerce/order-routing", "--input", deep, "--outputs", outFile); code != 2 {
			t.Fatalf("submit of a %d-deep input: exit %d, want 2", n, code)
		}
	}
	out, errOut, code = run(t, "submit", "--workflow", "commerce/order-routing", "--key", "order-1",
		"--input", filepath.Join(sample, "inputs", "order-routing.json"), "--outputs", outFile)
	caseID := strings.TrimSpace(out)
	if code != 0 || caseID != message.CaseID(message.DefaultTenant, "commerce", "order-routing", "order-1") {
		t.Fatalf("submit: %d %q %q", code, out, errOut)
	}

	// The executor runs what was submitted.
	ctx := context.Background()
	cfg, _ := ep.Config(ctx)
	sq, db := sqs.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg)
	got, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), WaitTimeSeconds: 2, MessageAttributeNames: []string{"All"}})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("submitted message: %v %v", got, err)
	}
	srv := httptest.NewServer(standin.Handler())
	defer srv.Close()
	chains := store.NewReceipts(db, outs[stack.OutReceiptsTable])
	x := executor.New(executor.DefaultConfig(), executor.Deps{
		Chains: chains, Descriptors: registry.New(db, outs[stack.OutStateTable]), Cases: store.NewCases(db, outs[stack.OutStateTable]),
		Sender: queue.NewSender(sq, outs[stack.OutWorkQueueURL]), HTTP: standin.Client(srv.Listener.Addr().String()),
	})
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := x.Handle(hctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: aws.ToString(got.Messages[0].Body)}}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("executor: %v %v", resp, err)
	}

	out, errOut, code = run(t, "case", "show", caseID, "--json", "--outputs", outFile)
	var v caseView
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("case show: %d %q %q", code, out, errOut)
	}
	if v.Status != "completed" || !v.Verified || v.Workflow != "commerce/order-routing:1.0.0" || !jsonSame(v.Output, standin.Outputs["order-routing"]) {
		t.Fatalf("case show = %+v", v)
	}
	for i, l := range v.LastEvents {
		if l.Time.IsZero() || (i > 0 && l.Time.Before(v.LastEvents[i-1].Time)) {
			t.Fatalf("case show: receipt %d has time %v after %v", l.Seq, l.Time, v.LastEvents[max(0, i-1)].Time)
		}
	}
	out, _, code = run(t, "case", "show", caseID, "--outputs", outFile)
	if code != 0 || !strings.Contains(out, "status    completed") || !strings.Contains(out, "case.completed") {
		t.Fatalf("case show (text): %d %q", code, out)
	}
	if _, _, code := run(t, "case", "show", "0123456789abcdef0123456789abcdef", "--outputs", outFile); code != 2 {
		t.Fatalf("case show of an unknown case exited %d, want 2", code)
	}

	out, _, code = run(t, "receipts", caseID, "--outputs", outFile)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != v.Receipts {
		t.Fatalf("receipts: exit %d, %d lines for %d receipts:\n%s", code, len(lines), v.Receipts, out)
	}
	file := filepath.Join(dir, "case.jsonl")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, code := run(t, "verify", "--file", file); code != 0 {
		t.Fatalf("verify --file of the exported receipts exited %d", code)
	}
	if out, _, code := run(t, "findings", "--outputs", outFile); code != 0 || strings.TrimSpace(out) != "" {
		t.Fatalf("findings on a clean stack: %d %q", code, out)
	}

	// An input too large for a message is sent by reference.
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, []byte(`{"scan":"`+strings.Repeat("x", message.MaxBodyBytes)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := run(t, "submit", "--workflow", "commerce/order-routing", "--input", big, "--outputs", outFile); code != 0 {
		t.Fatalf("submit of a large input: %d %q %q", code, out, errOut)
	}
	got, err = sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), WaitTimeSeconds: 2})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("submitted message: %v %v", got, err)
	}
	m, err := message.Decode([]byte(aws.ToString(got.Messages[0].Body)))
	if err != nil || m.Start == nil || m.Start.InputRef == "" || len(m.Start.Input) != 0 {
		t.Fatalf("large input sent as %.200s (%v), want an inputRef", aws.ToString(got.Messages[0].Body), err)
	}
	// It is uploaded to the payloads bucket under its hash, not to the
	// state table, and the executor starts the case from there.
	hash := strings.TrimPrefix(m.Start.InputRef, "sha256:")
	payloads := objects.NewPayloads(objects.New(objects.NewClient(cfg), outs[stack.OutPayloadBucket]))
	if b, err := payloads.Blob(ctx, hash); err != nil || len(b) <= message.MaxBodyBytes {
		t.Fatalf("s3://%s/%s: %d bytes, %v", outs[stack.OutPayloadBucket], objects.InputKey(hash), len(b), err)
	}
	if _, err := store.NewState(db, outs[stack.OutStateTable]).Blob(ctx, hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the input is also a state-table blob: %v", err)
	}
	// A large genesis input is detached to a state-table blob by the
	// receipt store, as in the deployed executor.
	chains.Blobs = store.NewState(db, outs[stack.OutStateTable])
	x = executor.New(executor.DefaultConfig(), executor.Deps{
		Chains: chains, Descriptors: registry.New(db, outs[stack.OutStateTable]), Cases: store.NewCases(db, outs[stack.OutStateTable]),
		Payloads: payloads, Sender: queue.NewSender(sq, outs[stack.OutWorkQueueURL]), HTTP: standin.Client(srv.Listener.Addr().String()),
	})
	if resp, err := x.Handle(hctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m2", Body: aws.ToString(got.Messages[0].Body)}}}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("executor on the referenced input: %v %v", resp, err)
	}
	if rs, _, err := chains.Chain(ctx, m.Start.CaseID()); err != nil || len(rs) == 0 || rs[0].InputHash != hash {
		t.Fatalf("case of the referenced input: %d receipts, %v", len(rs), err)
	}

	// A dead-lettered message is listed, shown and redriven to the work queue.
	if _, err := sq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(outs[stack.OutDeadLetterURL]), MessageBody: aws.String("not json")}); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(t, "dlq", "list", "--json", "--outputs", outFile)
	var dead []struct{ MessageID, Invalid, Body string }
	if code != 0 || json.Unmarshal([]byte(out), &dead) != nil || len(dead) != 1 || dead[0].Body != "not json" || dead[0].Invalid == "" {
		t.Fatalf("dlq list: %d %q", code, out)
	}
	if out, _, code := run(t, "dlq", "show", dead[0].MessageID, "--outputs", outFile); code != 0 || !strings.Contains(out, `"body": "not json"`) {
		t.Fatalf("dlq show: %d %q", code, out)
	}
	if out, _, code := run(t, "dlq", "redrive", "--outputs", outFile); code != 0 || strings.TrimSpace(out) != "redrove 1 message(s)" {
		t.Fatalf("dlq redrive: %d %q", code, out)
	}
	if out, _, code := run(t, "dlq", "list", "--outputs", outFile); code != 0 || strings.TrimSpace(out) != "the dead-letter queue is empty" {
		t.Fatalf("dlq list after redrive: %d %q", code, out)
	}
	back, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), WaitTimeSeconds: 2})
	if err != nil || len(back.Messages) != 1 || aws.ToString(back.Messages[0].Body) != "not json" {
		t.Fatalf("work queue after redrive: %+v %v", back, err)
	}
}

// deployForCLI deploys the stack on a fresh local endpoint, writes its
// outputs file and points the CLI's AWS settings at the endpoint.
func deployForCLI(t *testing.T) (*localaws.Endpoint, provision.Outputs, string) {
	t.Helper()
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	outFile := filepath.Join(t.TempDir(), "outputs.json")
	b, _ := json.Marshal(outs)
	if err := os.WriteFile(outFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": ep.URL, "AWS_REGION": localaws.Region,
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} {
		t.Setenv(k, v)
	}
	return ep, outs, outFile
}

func jsonSame(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
