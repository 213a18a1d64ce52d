package canary

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine"
)

// metricValues returns every value of a metric in the EMF documents of out.
func metricValues(t *testing.T, out *bytes.Buffer, name string) []float64 {
	t.Helper()
	var vs []float64
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		raw, ok := doc[name]
		if !ok {
			continue
		}
		var one float64
		if json.Unmarshal(raw, &one) == nil {
			vs = append(vs, one)
			continue
		}
		var many []float64
		if err := json.Unmarshal(raw, &many); err != nil {
			t.Fatalf("metric %s: %s", name, raw)
		}
		vs = append(vs, many...)
	}
	out.Reset()
	return vs
}

// TestOnLocalEndpoint runs the canary against the local endpoint's tables
// and queue. The test plays the executor (the engine runs the start message
// the canary sent, the store appends its receipts) and the verifier (the
// chain is verified with receipt.VerifyFrom and its watermark stored).
func TestOnLocalEndpoint(t *testing.T) {
	ctx := context.Background()
	ep := localaws.StartT(t)
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ddb := dynamodb.NewFromConfig(cfg)
	sq := sqs.NewFromConfig(cfg)
	const receiptsTable, stateTable = "canary-receipts", "canary-state"
	if err := store.CreateTables(ctx, ddb, receiptsTable, stateTable); err != nil {
		t.Fatal(err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("canary-work")})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(ddb, stateTable)
	receipts := store.NewReceipts(ddb, receiptsTable)
	cases := store.NewCases(ddb, stateTable)
	var out bytes.Buffer
	now := time.Now().UTC()
	start0 := now
	slis := store.NewSLIs(ddb, stateTable)
	c, err := New(0, Deps{
		SLIs:     slis,
		Registry: reg,
		Sender:   queue.NewSender(sq, *q.QueueUrl),
		Chains:   StoreChains{Cases: cases, Receipts: receipts, Found: store.NewFindings(ddb, stateTable)},
		Probes:   StateProbes{DB: ddb, Table: stateTable},
		Out:      &out,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}

	// First run: publishes the workflow into the reserved namespace, owned
	// by the reserved tenant, and starts a probe; nothing to judge yet.
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verdicts) != 0 || len(metricValues(t, &out, telemetry.CanarySuccess)) != 0 {
		t.Fatalf("the first run judged something: %+v", res)
	}
	if o, err := reg.NamespaceOwner(ctx, Namespace); err != nil || o.Tenant != Tenant {
		t.Fatalf("namespace owner %+v %v, want %s", o, err, Tenant)
	}
	d, err := reg.Resolve(ctx, Namespace, "canary", "")
	if err != nil || d.Hash != dsl.Hash(Workflow) {
		t.Fatalf("published workflow %+v %v", d, err)
	}
	start := receiveStart(t, ctx, sq, *q.QueueUrl)
	if start.Tenant != Tenant || start.Workflow.Namespace != Namespace || start.CaseID() != res.Started {
		t.Fatalf("start message %+v for probe %s", start, res.Started)
	}

	// The platform runs and verifies the case.
	runAndVerify(t, ctx, receipts, cases, start, d)

	// Second run, a minute later: the first probe is healthy.
	now = now.Add(time.Minute)
	res, err = c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verdicts) != 1 || !res.Verdicts[0].OK {
		t.Fatalf("verdicts %+v, want the first probe healthy", res.Verdicts)
	}
	if got := metricValues(t, &out, telemetry.CanarySuccess); len(got) != 1 || got[0] != 1 {
		t.Fatalf("CanarySuccess %v, want [1]", got)
	}
	second := receiveStart(t, ctx, sq, *q.QueueUrl)

	// Nobody runs the second probe: within the freshness bound it waits,
	// past it the canary reports the failure.
	now = now.Add(DefaultFreshness / 2)
	if res, err = c.Run(ctx); err != nil || len(res.Verdicts) != 0 {
		t.Fatalf("verdicts within the freshness bound %+v %v", res.Verdicts, err)
	}
	receiveStart(t, ctx, sq, *q.QueueUrl)
	now = now.Add(DefaultFreshness)
	res, err = c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, v := range res.Verdicts {
		if !v.OK {
			failed = append(failed, v.CaseID)
		}
	}
	if len(failed) < 1 || failed[0] != second.CaseID() {
		t.Fatalf("verdicts %+v, want the unexecuted probe %s failed", res.Verdicts, second.CaseID())
	}
	for _, v := range metricValues(t, &out, telemetry.CanarySuccess) {
		if v != 0 {
			t.Fatalf("a probe nobody ran reported success")
		}
	}

	// The verdicts are the canary's service level: the healthy probe
	// completed with its latency, the ones nobody ran timed out; no other
	// key is written.
	bs, err := slis.Buckets(ctx, start0.Add(-time.Minute), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got sla.Counts
	latencies := 0
	for _, b := range bs {
		if b.Workflow != sla.CanaryProbes {
			t.Errorf("bucket of %q written", b.Workflow)
		}
		got.Add(b.Counts)
		latencies += int(b.Latency.GetCount())
	}
	if want := (sla.Counts{Completed: 1, TimedOut: int64(len(failed))}); got != want || latencies != 1 {
		t.Fatalf("canary SLI %+v with %d latencies, want %+v with 1", got, latencies, want)
	}
}

func receiveStart(t *testing.T, ctx context.Context, sq *sqs.Client, url string) *message.Start {
	t.Helper()
	out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 2, MaxNumberOfMessages: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive the canary's start: %v (%d messages)", err, len(out.Messages))
	}
	if _, err := sq.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	m, err := message.Admit([]byte(*out.Messages[0].Body))
	if err != nil || m.Start == nil {
		t.Fatalf("the canary sent %q: %v", *out.Messages[0].Body, err)
	}
	return m.Start
}

func runAndVerify(t *testing.T, ctx context.Context, receipts *store.Receipts, cases *store.Cases, s *message.Start, d *registry.Descriptor) {
	t.Helper()
	var input any
	if err := json.Unmarshal(s.Input, &input); err != nil {
		t.Fatal(err)
	}
	wf := d.Workflow
	res, err := engine.Run(ctx, wf, input, engine.RunOptions{CaseID: s.CaseID(), Genesis: history.Genesis{
		Tenant: s.Tenant, Namespace: s.Workflow.Namespace, Workflow: s.Workflow.Name, Version: wf.Document.Version, DescriptorHash: d.Hash,
	}})
	if err != nil || res.Status != engine.StatusCompleted {
		t.Fatalf("run the canary workflow: %v %+v", err, res)
	}
	var prev *receipt.Receipt
	var chain []*receipt.Receipt
	for _, ev := range res.History {
		a, err := receipts.Append(ctx, prev, s.Tenant, s.CaseID(), ev)
		if err != nil {
			t.Fatal(err)
		}
		prev = a.Receipt
		chain = append(chain, prev)
	}
	w, findings := receipt.VerifyFrom(receipt.Watermark{Seq: -1}, chain)
	if len(findings) > 0 {
		t.Fatalf("findings %v", findings)
	}
	if err := cases.SetWatermarks(ctx, map[string]receipt.Watermark{s.CaseID(): w}); err != nil {
		t.Fatal(err)
	}
}
