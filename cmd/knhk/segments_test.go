package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

func segmentEvent(i int, salt string) history.Event {
	if i == 0 {
		return history.Event{Type: history.CaseStarted, Genesis: &history.Genesis{Tenant: "acme", Workflow: "wf", Version: "1", DescriptorHash: strings.Repeat("cd", 32)}}
	}
	return history.Event{Type: history.TaskCompleted, Task: "/do/0/a", Output: json.RawMessage(fmt.Sprintf(`{"i":%d,"s":%q}`, i, salt))}
}

// Chains stored as segments ([0..1] [2..4] [5..7]) are checkpointed and
// proved like any other, and every tamper class applied to a segment item
// makes `knhk verify --case` exit 3 naming what it found.
func TestVerifyCaseFindsSegmentTampering(t *testing.T) {
	ctx, db, dir, outputs := cliStack(t)
	chains, cases := store.NewReceipts(db, "receipts"), store.NewCases(db, "state")
	put := func(item map[string]types.AttributeValue) {
		t.Helper()
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("receipts"), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(caseID string, seq int) map[string]types.AttributeValue {
		t.Helper()
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("receipts"), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{receipt.AttrCase: &types.AttributeValueMemberS{Value: caseID}, receipt.AttrSeq: &types.AttributeValueMemberN{Value: fmt.Sprint(seq)}}})
		if err != nil || out.Item == nil {
			t.Fatalf("item %s/%d: %v", caseID, seq, err)
		}
		return out.Item
	}
	del := func(caseID string, seq int) {
		t.Helper()
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("receipts"),
			Key: map[string]types.AttributeValue{receipt.AttrCase: &types.AttributeValueMemberS{Value: caseID}, receipt.AttrSeq: &types.AttributeValueMemberN{Value: fmt.Sprint(seq)}}}); err != nil {
			t.Fatal(err)
		}
	}
	segments := func(rs []*receipt.Receipt) {
		t.Helper()
		for _, run := range [][]*receipt.Receipt{rs[:2], rs[2:5], rs[5:]} {
			it, err := store.SegmentItem(run)
			if err != nil {
				t.Fatal(err)
			}
			put(it)
		}
	}
	build := func(caseID, salt string, n int) []*receipt.Receipt {
		t.Helper()
		var out []*receipt.Receipt
		var prev *receipt.Receipt
		for i := range n {
			r, err := receipt.New(prev, "acme", caseID, segmentEvent(i, salt))
			if err != nil {
				t.Fatal(err)
			}
			out, prev = append(out, r), r
		}
		return out
	}
	tampers := []struct {
		name   string
		tamper func(caseID string, rs []*receipt.Receipt)
		want   receipt.Kind
	}{
		{"one byte of a stored receipt", func(c string, _ []*receipt.Receipt) {
			it := get(c, 2)
			l := slices.Clone(it[receipt.AttrReceipts].(*types.AttributeValueMemberL).Value)
			l[1] = &types.AttributeValueMemberS{Value: strings.Replace(l[1].(*types.AttributeValueMemberS).Value, `"i":3`, `"i":4`, 1)}
			it[receipt.AttrReceipts] = &types.AttributeValueMemberL{Value: l}
			put(it)
		}, receipt.HashMismatch},
		{"segment deleted", func(c string, _ []*receipt.Receipt) { del(c, 2) }, receipt.Gap},
		{"segment's prevHash rewritten", func(c string, rs []*receipt.Receipt) {
			it := get(c, 5)
			it[receipt.AttrPrevHash] = &types.AttributeValueMemberS{Value: rs[1].Hash}
			put(it)
		}, receipt.BrokenLink},
		{"segments swapped", func(c string, _ []*receipt.Receipt) {
			a, b := get(c, 2), get(c, 5)
			a[receipt.AttrSeq], b[receipt.AttrSeq] = b[receipt.AttrSeq], a[receipt.AttrSeq]
			put(a)
			put(b)
		}, receipt.HashMismatch},
		{"forged segment after the tail", func(c string, rs []*receipt.Receipt) {
			fake := *rs[7]
			fake.Hash = rs[6].Hash
			f, err := receipt.New(&fake, "acme", c, segmentEvent(8, "forged"))
			if err != nil {
				t.Fatal(err)
			}
			it, _ := store.SegmentItem([]*receipt.Receipt{f})
			put(it)
		}, receipt.BrokenLink},
		{"tail segment deleted", func(c string, _ []*receipt.Receipt) { del(c, 5) }, receipt.NotCheckpointed},
		{"chain rewritten consistently", func(c string, _ []*receipt.Receipt) { segments(build(c, "rewritten", 8)) }, receipt.NotCheckpointed},
	}
	ids := []string{"seg-clean"}
	for i := range tampers {
		ids = append(ids, fmt.Sprintf("seg-%d", i))
	}
	chainsOf := map[string][]*receipt.Receipt{}
	for _, id := range ids {
		var ps []store.Pending
		var prev *receipt.Receipt
		var rs []*receipt.Receipt
		for _, part := range [][2]int{{0, 1}, {2, 4}, {5, 7}} {
			ps = ps[:0]
			for i := part[0]; i <= part[1]; i++ {
				ps = append(ps, store.Pending{Event: segmentEvent(i, "")})
			}
			res, err := chains.AppendSegment(ctx, prev, "acme", id, ps)
			if err != nil {
				t.Fatal(err)
			}
			rs, prev = append(rs, res.Receipts...), res.Receipt
		}
		chainsOf[id] = rs
		if err := cases.SetWatermarks(ctx, map[string]receipt.Watermark{id: {Seq: prev.Seq, Hash: prev.Hash}}); err != nil {
			t.Fatal(err)
		}
	}
	if out, errOut, code := run(t, "--outputs", outputs, "checkpoint", "create"); code != 0 || !strings.Contains(out, fmt.Sprintf(`"signed": %d`, len(ids))) {
		t.Fatalf("checkpoint create: %d %s %s", code, out, errOut)
	}
	bundle, pem := filepath.Join(dir, "seg.bundle.json"), filepath.Join(dir, "key.pem")
	if _, errOut, code := run(t, "--outputs", outputs, "proof", "export", "--case", "seg-clean", "--out", bundle, "--public-key-out", pem); code != 0 {
		t.Fatalf("proof export: %d %s", code, errOut)
	}
	if out, _, code := run(t, "proof", "verify", bundle, "--public-key", pem); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("proof verify: %d %s", code, out)
	}
	for i, tc := range tampers {
		tc.tamper(ids[i+1], chainsOf[ids[i+1]])
	}
	if out, errOut, code := run(t, "--outputs", outputs, "verify", "--case", "seg-clean"); code != 0 {
		t.Fatalf("clean case: %d %s %s", code, out, errOut)
	}
	for i, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			out, _, code := run(t, "--outputs", outputs, "verify", "--case", ids[i+1])
			if code != exitTampered || !strings.Contains(out, string(tc.want)) {
				t.Fatalf("verify --case: %d, want %d naming %s:\n%s", code, exitTampered, tc.want, out)
			}
		})
	}
}
