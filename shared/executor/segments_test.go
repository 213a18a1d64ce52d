package executor

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// A case of five set tasks run in one invocation writes its seven receipts
// with at most two conditional writes (one segment: nothing in it reaches
// outside the case), and they read back and verify as seven receipts.
func TestFiveTaskCaseWritesOneSegment(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	id := message.CaseID("acme", "test", "five-tasks", "one-segment")
	e.ops.reset()
	resp := e.direct(x, sqsEvent(t, []any{startMessage("acme", "test", "five-tasks", "one-segment", map[string]any{"qty": 3, "unitPrice": 9.5})}, nil), 30*time.Second)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("start reported for retry: %v", resp.BatchItemFailures)
	}
	rs := e.chain(id)
	if len(rs) != 7 || rs[6].Type != history.CaseCompleted || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("chain: %s", seqs(rs))
	}
	if got := e.ops.get("PutItem", e.receipts); got < 1 || got > 2 {
		t.Fatalf("PutItem on receipts = %d for a five-task case, want at most 2", got)
	}
	before, after := 0, 0
	for _, r := range rs {
		before += (store.StoredSize(r) + 1023) / 1024
	}
	for _, it := range e.items(t, id) {
		after += (meter.ItemSize(it) + 1023) / 1024
	}
	t.Logf("five-task case: %d receipts, %d PutItem on receipts (one item per receipt: 7), %d write units (one item per receipt: %d)",
		len(rs), e.ops.get("PutItem", e.receipts), after, before)
}

// A case whose chain was written one receipt per item (before segments)
// continues after the change: the executor reads it, decides from it and
// extends it with segments, and the whole chain verifies.
func TestCaseStartedBeforeSegmentsContinues(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(sampleConfig())
	id := message.CaseID("acme", "insurance", "insurance-claim", "old-layout")
	e.send(startMessage("acme", "insurance", "insurance-claim", "old-layout", sampleInput(t, "insurance-claim")))
	e.pump(x, func() bool { subs, _ := e.cases.Subscribers(e.ctx, "acme"); return len(subs) == 1 }, time.Minute)
	// Rewrite the chain so far as the old layout: one item per receipt.
	before := e.chain(id)
	e.toOldLayout(t, id, before)
	if rs := e.chain(id); len(rs) != len(before) || rs[len(rs)-1].Hash != before[len(before)-1].Hash {
		t.Fatalf("old layout reads back as %d receipts", len(rs))
	}
	e.sendDecision(t, "decision-old-layout")
	e.pump(x, func() bool { return e.ended(id) }, time.Minute)
	rs := e.chain(id)
	if rs[len(rs)-1].Type != history.CaseCompleted || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("continued case: %s", seqs(rs))
	}
	for i, r := range before {
		if rs[i].Hash != r.Hash {
			t.Fatalf("receipt %d changed", i)
		}
	}
}

// toOldLayout stores a case's receipts as items of one receipt each, as
// they were written before segments.
func (e *env) toOldLayout(t *testing.T, caseID string, rs []*receipt.Receipt) {
	t.Helper()
	segments := 0
	for _, it := range e.items(t, caseID) {
		if _, ok := it[receipt.AttrReceipts]; ok {
			segments++
		}
		if _, err := e.ddb.DeleteItem(e.ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.receipts),
			Key: map[string]dbtypes.AttributeValue{receipt.AttrCase: it[receipt.AttrCase], receipt.AttrSeq: it[receipt.AttrSeq]}}); err != nil {
			t.Fatal(err)
		}
	}
	if segments == 0 || segments == len(rs) {
		t.Fatalf("%d segment items for %d receipts: nothing to rewrite", segments, len(rs))
	}
	for _, r := range rs {
		it, err := store.Item(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ddb.PutItem(e.ctx, putItem(e.receipts, it)); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) sendDecision(t *testing.T, key string) {
	t.Helper()
	ev := standin.AdjusterDecision("clm_55102", key)
	ev["knhktenant"] = "acme"
	e.send(ev)
}

// items reads a case's stored receipt items.
func (e *env) items(t *testing.T, caseID string) []map[string]dbtypes.AttributeValue {
	t.Helper()
	out, err := e.ddb.Query(e.ctx, &dynamodb.QueryInput{TableName: aws.String(e.receipts), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase},
		ExpressionAttributeValues: map[string]dbtypes.AttributeValue{":c": &stringAttr{Value: caseID}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}
