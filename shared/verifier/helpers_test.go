package verifier

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

const descriptorHash = "5b7c1e0f3a9d2c4b6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f"

// events of a payment case: the genesis, then task started/completed pairs.
func caseEvents(tenant string, n int) []history.Event {
	t0 := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	evs := []history.Event{{Type: history.CaseStarted, Input: json.RawMessage(`{"amount":125.5,"currency":"EUR","payer":"DE89370400440532013000"}`),
		Genesis: &history.Genesis{Tenant: tenant, Namespace: "payments", Workflow: "payment-processing", Version: "1.0.0", DescriptorHash: descriptorHash},
		Started: t0}}
	tasks := []string{"/do/0/validate", "/do/1/screen", "/do/2/authorize", "/do/3/capture", "/do/4/notify"}
	for i := 1; len(evs) < n; i++ {
		p := (i - 1) / 2 // the task pair this event belongs to
		task := tasks[p%len(tasks)]
		at := t0.Add(time.Duration(i) * 150 * time.Millisecond)
		if i%2 == 1 {
			evs = append(evs, history.Event{Type: history.TaskStarted, Task: task, Key: fmt.Sprint(p), Started: at})
		} else {
			evs = append(evs, history.Event{Type: history.TaskCompleted, Task: task, Key: fmt.Sprint(p), Started: at.Add(-150 * time.Millisecond), Ended: at,
				Output: json.RawMessage(fmt.Sprintf(`{"step":%d,"ok":true}`, p+1))})
		}
	}
	return evs
}

// buildChain builds a case's first n receipts without storing them.
func buildChain(t testing.TB, tenant, caseID string, n int) []*receipt.Receipt {
	t.Helper()
	var prev *receipt.Receipt
	var out []*receipt.Receipt
	for _, ev := range caseEvents(tenant, n) {
		r, err := receipt.New(prev, tenant, caseID, ev, receipt.WithUsage(receipt.Usage{BilledMs: 12, WriteUnits: 1, Requests: 1}))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		prev = r
	}
	return out
}

// lambdaAttrs converts item attributes to the Lambda stream event form.
func lambdaAttrs(item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if item == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(item))
	for k, v := range item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out[k] = events.NewStringAttribute(v.Value)
		case *types.AttributeValueMemberN:
			out[k] = events.NewNumberAttribute(v.Value)
		case *types.AttributeValueMemberB:
			out[k] = events.NewBinaryAttribute(v.Value)
		case *types.AttributeValueMemberBOOL:
			out[k] = events.NewBooleanAttribute(v.Value)
		case *types.AttributeValueMemberL:
			l := make([]events.DynamoDBAttributeValue, len(v.Value))
			for i, e := range v.Value {
				l[i] = lambdaAttrs(map[string]types.AttributeValue{"e": e})["e"]
			}
			out[k] = events.NewListAttribute(l)
		}
	}
	return out
}

// only is the one receipt of an item written before segments (nil when it
// did not decode).
func only(rs []*receipt.Receipt) *receipt.Receipt {
	if len(rs) != 1 {
		return nil
	}
	return rs[0]
}

// segmentRecord is the stream record of a segment's write.
func segmentRecord(t testing.TB, rs []*receipt.Receipt, seqNo int) events.DynamoDBEventRecord {
	t.Helper()
	item, err := store.SegmentItem(rs)
	if err != nil {
		t.Fatal(err)
	}
	return itemInsert(item, seqNo)
}

// itemInsert is the stream record of an item's first write.
func itemInsert(item map[string]types.AttributeValue, seqNo int) events.DynamoDBEventRecord {
	img := lambdaAttrs(item)
	return events.DynamoDBEventRecord{EventName: "INSERT", EventSource: "aws:dynamodb", AWSRegion: "eu-west-1",
		Change: events.DynamoDBStreamRecord{Keys: keysOf(img), NewImage: img, SequenceNumber: fmt.Sprintf("%021d", seqNo),
			StreamViewType: "NEW_AND_OLD_IMAGES"}}
}

func keysOf(img map[string]events.DynamoDBAttributeValue) map[string]events.DynamoDBAttributeValue {
	return map[string]events.DynamoDBAttributeValue{receipt.AttrCase: img[receipt.AttrCase], receipt.AttrSeq: img[receipt.AttrSeq]}
}

// insertRecord is the stream record of a receipt's first write.
func insertRecord(t testing.TB, r *receipt.Receipt, seqNo int) events.DynamoDBEventRecord {
	t.Helper()
	item, err := store.Item(r)
	if err != nil {
		t.Fatal(err)
	}
	return itemInsert(item, seqNo)
}

// forgeAfter builds a receipt with a correct hash of its own at the seq
// after at, of at's case, whose prevHash is prevHash instead of at's hash.
func forgeAfter(t testing.TB, at *receipt.Receipt, prevHash string) *receipt.Receipt {
	t.Helper()
	fake := *at
	fake.Hash = prevHash
	r, err := receipt.New(&fake, at.Tenant, at.CaseID, history.Event{Type: history.TaskCompleted, Task: "/do/3/capture", Key: "forged",
		Output: json.RawMessage(`{"captured":999999}`)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
