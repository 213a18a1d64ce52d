package checkpointer

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// appendSegment writes events from..to of a case as one segment after prev.
func (e *env) appendSegment(t *testing.T, caseID string, prev *receipt.Receipt, from, to int) *receipt.Receipt {
	t.Helper()
	var ps []store.Pending
	for i := from; i <= to; i++ {
		ps = append(ps, store.Pending{Event: event(i)})
	}
	res, err := e.receipts.AppendSegment(context.Background(), prev, "acme", caseID, ps)
	if err != nil || len(res.Receipts) != to-from+1 {
		t.Fatalf("append segment %d..%d: %v", from, to, err)
	}
	return res.Receipt
}

// Heads of chains stored as segments are signed as they advance, each
// signed head found again inside the segment that holds it; a segment
// rewritten consistently under a signed head is refused.
func TestCheckpointHeadsInSegments(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	head := e.appendSegment(t, "seg", nil, 0, 3)
	e.watermark(t, "seg", head)
	if res := e.run(t); res.Signed != 1 || len(res.Refused) != 0 {
		t.Fatalf("first run: %+v", res)
	}
	signed := e.appendSegment(t, "seg", head, 4, 9)
	e.watermark(t, "seg", signed)
	if res := e.run(t); res.Signed != 1 || len(res.Refused) != 0 {
		t.Fatalf("second run: %+v", res)
	}
	if last, _ := e.verifiedLog(t).Last("seg"); last.Seq != 9 || last.Hash != signed.Hash {
		t.Fatalf("signed head %+v, want seq 9", last)
	}
	// Rewrite the segment 4..9 with every hash recomputed, extend it, and
	// move the watermark to the new tail.
	prev := head
	var run []*receipt.Receipt
	for i := 4; i <= 11; i++ {
		ev := event(i)
		ev.Output = json.RawMessage(fmt.Sprintf(`{"i":%d,"forged":true}`, i))
		r, err := receipt.New(prev, "acme", "seg", ev)
		if err != nil {
			t.Fatal(err)
		}
		run, prev = append(run, r), r
	}
	for _, part := range [][]*receipt.Receipt{run[:6], run[6:]} {
		it, err := store.SegmentItem(part)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.rt), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	e.watermark(t, "seg", prev)
	res := e.run(t)
	if res.Signed != 0 || len(res.Refused) != 1 || res.Refused[0].Seq != 9 || res.Refused[0].Expected != signed.Hash {
		t.Fatalf("rewritten segment: %+v", res)
	}
}
