package executor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/store"
)

// TestDeadLetterCountsInTheServiceLevel: a start whose input by reference is
// missing (a transient failure) fails its last receive: it is recorded as a
// dead-lettered outcome, once even when that receive is redelivered, under
// UNATTRIBUTED since no verified case names its workflow.
func TestDeadLetterCountsInTheServiceLevel(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	missing := sha256.Sum256([]byte("never stored"))
	start := message.Start{Kind: message.KindStart, Tenant: "acme", IdempotencyKey: "dlq-1",
		Workflow: message.WorkflowRef{Namespace: "insurance", Name: "insurance-claim"}, InputRef: "sha256:" + hex.EncodeToString(missing[:])}
	ev := sqsEvent(t, []any{start}, nil)
	ev.Records[0].Attributes["ApproximateReceiveCount"] = "5"
	from := time.Now().Add(-time.Minute)
	for range 2 {
		if resp := e.direct(x, ev, 30*time.Second); len(resp.BatchItemFailures) != 1 {
			t.Fatalf("the missing input was not reported for retry: %+v", resp)
		}
	}
	bs, err := store.NewSLIs(e.ddb, e.state).Buckets(e.ctx, from, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var dead int64
	for _, b := range bs {
		if b.Workflow == sla.Unattributed {
			dead += b.Counts.DeadLettered
		} else if b.Counts.DeadLettered > 0 {
			t.Errorf("a dead letter counted against %s, which only the message names", b.Workflow)
		}
	}
	if dead != 1 {
		t.Fatalf("%d dead-lettered outcomes under %s, want 1 for one message received twice at its limit", dead, sla.Unattributed)
	}
}

// TestDeadLetterWorkflowComesFromTheChain: a dead letter counts against the
// workflow of the case's genesis receipt, only when the message names an
// existing case of its own tenant.
func TestDeadLetterWorkflowComesFromTheChain(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	id := message.CaseID("acme", "insurance", "insurance-claim", "dlq-attr")
	e.send(startMessage("acme", "insurance", "insurance-claim", "dlq-attr", sampleInput(t, "insurance-claim")))
	e.pump(x, func() bool { return len(e.chain(id)) > 0 }, time.Minute)
	body := func(v any) events.SQSMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return events.SQSMessage{MessageId: "m", Body: string(b)}
	}
	other := forged(id, message.ReasonResume, "", 1, time.Time{})
	other.Tenant = "globex"
	for _, tc := range []struct {
		name string
		m    events.SQSMessage
		want string
	}{
		{"a continuation of the case", body(forged(id, message.ReasonResume, "", 1, time.Time{})), "insurance/insurance-claim"},
		{"the case's start again", body(startMessage("acme", "insurance", "insurance-claim", "dlq-attr", sampleInput(t, "insurance-claim"))), "insurance/insurance-claim"},
		{"another tenant naming the case", body(other), sla.Unattributed},
		{"a case that does not exist", body(forged(message.CaseID("acme", "insurance", "insurance-claim", "nope"), message.ReasonResume, "", 1, time.Time{})), sla.Unattributed},
		{"not a message", events.SQSMessage{MessageId: "m", Body: "{"}, sla.Unattributed},
	} {
		if got := x.deadLetterWorkflow(e.ctx, tc.m); got != tc.want {
			t.Errorf("%s: counted against %q, want %q", tc.name, got, tc.want)
		}
	}
}
