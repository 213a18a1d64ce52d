package verifier

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// appendSegments writes a new case's receipts through the store as
// segments of the given sizes and returns the case id and the receipts.
func (e *env) appendSegments(t *testing.T, name string, sizes ...int) (string, []*receipt.Receipt) {
	t.Helper()
	caseID := fmt.Sprintf("%s-%03d", name, caseNo.Add(1))
	n := 0
	for _, k := range sizes {
		n += k
	}
	evs := caseEvents("acme", n)
	s := store.NewReceipts(e.db, e.receipts)
	var prev *receipt.Receipt
	var out []*receipt.Receipt
	for _, k := range sizes {
		var ps []store.Pending
		for _, ev := range evs[len(out) : len(out)+k] {
			ps = append(ps, store.Pending{Event: ev})
		}
		res, err := s.AppendSegment(context.Background(), prev, "acme", caseID, ps)
		if err != nil || len(res.Receipts) != k {
			t.Fatalf("append segment: %v %+v", err, res)
		}
		out = append(out, res.Receipts...)
		prev = res.Receipt
	}
	return caseID, out
}

// setStored replaces the stored form of receipt i of a segment item.
func setStored(it map[string]types.AttributeValue, i int, f func(string) string) {
	l := slices.Clone(it[receipt.AttrReceipts].(*types.AttributeValueMemberL).Value)
	l[i] = &types.AttributeValueMemberS{Value: f(l[i].(*types.AttributeValueMemberS).Value)}
	it[receipt.AttrReceipts] = &types.AttributeValueMemberL{Value: l}
}

// testSegments: a chain of segments verifies from its stream, one record
// per segment; each tamper class applied to a segment item is reported for
// every receipt it touches, with one alert per case.
func testSegments(t *testing.T, e *env) {
	t.Run("clean", func(t *testing.T) {
		caseID, rs := e.appendSegments(t, "seg-clean", 1, 4, 3, 2)
		recs := e.streamRecords(t, caseID)
		if len(recs) != 4 {
			t.Fatalf("%d stream records, want one per segment", len(recs))
		}
		h := e.verifier(t, e.state)
		resp, sums := h.handle(t, recs)
		if len(resp.BatchItemFailures) != 0 || sums[telemetry.ReceiptsVerified] != 10 || sums[telemetry.IntegrityFindings] != 0 {
			t.Fatalf("failures %v metrics %v: %s", resp.BatchItemFailures, sums, h.logs.String())
		}
		if w := e.watermark(t, caseID); w.Seq != 9 || w.Hash != rs[9].Hash {
			t.Fatalf("watermark %+v, want the tail", w)
		}
		// Delivered again (a retried batch), and a later segment first
		// (the verifier catches up from the table).
		h = e.verifier(t, e.state)
		if resp, sums := h.handle(t, recs); len(resp.BatchItemFailures) != 0 || sums[telemetry.IntegrityFindings] != 0 {
			t.Fatalf("redelivery: %v %v", resp.BatchItemFailures, sums)
		}
		late, lrs := e.appendSegments(t, "seg-late", 2, 3, 3)
		lrecs := e.streamRecords(t, late)
		h = e.verifier(t, e.state)
		if resp, sums := h.handle(t, lrecs[2:]); len(resp.BatchItemFailures) != 0 || sums[telemetry.IntegrityFindings] != 0 || sums[telemetry.ReceiptsVerified] != 8 {
			t.Fatalf("catch-up: %v %v", resp.BatchItemFailures, sums)
		}
		if w := e.watermark(t, late); w.Seq != 7 || w.Hash != lrs[7].Hash {
			t.Fatalf("watermark after catch-up %+v", w)
		}
	})
	// Segments [0..1] [2..4] [5..7].
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, caseID string, rs []*receipt.Receipt)
		want   []string
	}{
		{"one byte of a receipt in a segment", func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			it := e.item(t, caseID, 2)
			setStored(it, 1, func(v string) string { return strings.Replace(v, `"task":"/do/`, `"task":"/dx/`, 1) })
			e.putItem(t, it)
		}, []string{"Modified@2", "Modified@3", "Modified@4"}},
		{"segment deleted", func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			e.deleteReceipt(t, caseID, 2)
		}, []string{"Removed@2", "Removed@3", "Removed@4"}},
		{"segment's prevHash rewritten", func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			it := e.item(t, caseID, 5)
			it[receipt.AttrPrevHash] = &types.AttributeValueMemberS{Value: rs[1].Hash}
			e.putItem(t, it)
		}, []string{"Modified@5", "Modified@6", "Modified@7"}},
		{"forged segment after the tail", func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			other := buildChain(t, "acme", caseID, 8)
			f := forgeAfter(t, rs[7], other[6].Hash)
			it, err := store.SegmentItem([]*receipt.Receipt{f})
			if err != nil {
				t.Fatal(err)
			}
			e.putItem(t, it)
		}, []string{"BrokenLink@8"}},
		{"segment inserted with a changed receipt", func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			a := forgeAfter(t, rs[7], rs[7].Hash)
			b := forgeAfter(t, a, a.Hash)
			it, err := store.SegmentItem([]*receipt.Receipt{a, b})
			if err != nil {
				t.Fatal(err)
			}
			setStored(it, 1, func(v string) string { return strings.Replace(v, `999999`, `999998`, 1) })
			e.putItem(t, it)
		}, []string{"HashMismatch@9", "PayloadMismatch@9"}},
		{"chain rewritten consistently", func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			var prev *receipt.Receipt
			var fake []*receipt.Receipt
			for i, ev := range caseEvents("acme", 8) {
				ev.Output = []byte(fmt.Sprintf(`{"rewritten":%d}`, i))
				if i == 0 {
					ev.Output = nil
				}
				r, err := receipt.New(prev, "acme", caseID, ev)
				if err != nil {
					t.Fatal(err)
				}
				fake, prev = append(fake, r), r
			}
			for _, run := range [][]*receipt.Receipt{fake[:2], fake[2:5], fake[5:]} {
				it, err := store.SegmentItem(run)
				if err != nil {
					t.Fatal(err)
				}
				e.putItem(t, it)
			}
		}, []string{"Modified@0", "Modified@1", "Modified@2", "Modified@3", "Modified@4", "Modified@5", "Modified@6", "Modified@7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseID, rs := e.appendSegments(t, "seg-tamper", 2, 3, 3)
			seen := len(e.verified(t, caseID, rs))
			tc.tamper(t, caseID, rs)
			recs := e.streamRecords(t, caseID)[seen:]
			h := e.verifier(t, e.state)
			resp, sums := h.handle(t, recs)
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %v: %s", resp.BatchItemFailures, h.logs.String())
			}
			got := findingKinds(e.findings(t, caseID))
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v", got, want)
			}
			if sums[telemetry.IntegrityFindings] != float64(len(tc.want)) {
				t.Fatalf("IntegrityFindings %v, want %d", sums[telemetry.IntegrityFindings], len(tc.want))
			}
			if n := e.alertsFor(t, caseID); n != 1 {
				t.Fatalf("%d alerts, want exactly one for the case", n)
			}
		})
	}
}
