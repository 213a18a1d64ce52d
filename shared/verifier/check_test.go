package verifier

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
)

func kinds(fs []receipt.Finding) []receipt.Kind {
	out := []receipt.Kind{}
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		cur  int64
		seq  int64
		want Step
	}{
		{-1, 0, Link}, {-1, 3, CatchUp}, {4, 5, Link}, {4, 9, CatchUp}, {4, 4, Redelivery}, {4, 0, Redelivery}, {-1, -1, Redelivery},
	} {
		if got := Classify(receipt.Watermark{Seq: tc.cur}, tc.seq); got != tc.want {
			t.Errorf("Classify(%d, %d) = %s, want %s", tc.cur, tc.seq, got, tc.want)
		}
	}
}

// The decision logic: a receipt against a verified position, with the
// receipts read to fill a gap.
func TestAdvance(t *testing.T) {
	rs := buildChain(t, "acme", "case-adv", 8)
	other := buildChain(t, "acme", "case-other", 8)
	f := forgeAfter(t, rs[4], other[4].Hash)
	wm := func(i int) receipt.Watermark { return receipt.Watermark{Seq: rs[i].Seq, Hash: rs[i].Hash} }
	for _, tc := range []struct {
		name    string
		cur     receipt.Watermark
		missing []*receipt.Receipt
		r       *receipt.Receipt
		want    []receipt.Kind
	}{
		{"genesis from nothing", receipt.Watermark{Seq: -1}, nil, rs[0], []receipt.Kind{}},
		{"next link", wm(3), nil, rs[4], []receipt.Kind{}},
		{"gap filled", wm(1), rs[2:5], rs[5], []receipt.Kind{}},
		{"gap filled from nothing", receipt.Watermark{Seq: -1}, rs[0:5], rs[5], []receipt.Kind{}},
		{"gap not filled", wm(1), rs[2:3], rs[5], []receipt.Kind{receipt.Gap}},
		{"broken link", wm(4), nil, f, []receipt.Kind{receipt.BrokenLink}},
		{"wrong watermark hash", receipt.Watermark{Seq: 4, Hash: other[4].Hash}, nil, rs[5], []receipt.Kind{receipt.BrokenLink}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, fs := Advance(tc.cur, tc.missing, tc.r)
			if got := kinds(fs); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v, want %v (%v)", got, tc.want, fs)
			}
			if w.Seq != tc.r.Seq || w.Hash != tc.r.Hash {
				t.Fatalf("position %+v, want the receipt's", w)
			}
		})
	}
}

func mustCanonical(t testing.TB, r *receipt.Receipt) []byte {
	t.Helper()
	b, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRedelivered(t *testing.T) {
	rs := buildChain(t, "acme", "case-re", 3)
	if fs := Redelivered(rs[2], rs[2].Hash, true); len(fs) != 0 {
		t.Fatalf("same receipt: %v", fs)
	}
	if fs := Redelivered(rs[2], rs[1].Hash, false); len(fs) != 0 {
		t.Fatalf("unknown verified hash: %v", fs)
	}
	fs := Redelivered(rs[2], rs[1].Hash, true)
	if len(fs) != 1 || fs[0].Kind != receipt.Modified || fs[0].Expected != rs[1].Hash || fs[0].Actual != rs[2].Hash || fs[0].Seq != 2 {
		t.Fatalf("different receipt: %+v", fs)
	}
}

func TestInserted(t *testing.T) {
	rs := buildChain(t, "acme", "case-ins", 3)
	good := insertRecord(t, rs[2], 1)
	edit := func(f func(img map[string]events.DynamoDBAttributeValue)) events.DynamoDBEventRecord {
		rec := insertRecord(t, rs[2], 1)
		f(rec.Change.NewImage)
		return rec
	}
	tampered := strings.Replace(string(mustCanonical(t, rs[2])), `"ok":true`, `"ok":false`, 1)
	for _, tc := range []struct {
		name string
		rec  events.DynamoDBEventRecord
		want []receipt.Kind
		ok   bool
	}{
		{"intact", good, []receipt.Kind{}, true},
		{"content changed", edit(func(img map[string]events.DynamoDBAttributeValue) { img["r"] = events.NewStringAttribute(tampered) }),
			[]receipt.Kind{receipt.HashMismatch, receipt.PayloadMismatch}, true},
		{"no r", edit(func(img map[string]events.DynamoDBAttributeValue) { delete(img, "r") }), []receipt.Kind{receipt.Malformed}, false},
		{"r not a string", edit(func(img map[string]events.DynamoDBAttributeValue) { img["r"] = events.NewNumberAttribute("1") }), []receipt.Kind{receipt.Malformed}, false},
		{"r not JSON", edit(func(img map[string]events.DynamoDBAttributeValue) { img["r"] = events.NewStringAttribute("{") }), []receipt.Kind{receipt.Malformed}, false},
		{"hash attribute differs", edit(func(img map[string]events.DynamoDBAttributeValue) {
			img["hash"] = events.NewStringAttribute(rs[1].Hash)
		}),
			[]receipt.Kind{receipt.Malformed}, true},
		{"tenant attribute differs", edit(func(img map[string]events.DynamoDBAttributeValue) { img["tenant"] = events.NewStringAttribute("other") }),
			[]receipt.Kind{receipt.Malformed}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, fs := Inserted(tc.rec)
			r := only(got)
			if (r != nil) != tc.ok {
				t.Fatalf("decoded %v, want %v", r != nil, tc.ok)
			}
			if got := kinds(fs); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v, want %v (%v)", got, tc.want, fs)
			}
			for _, f := range fs {
				if f.CaseID != "case-ins" || f.Seq != 2 {
					t.Errorf("finding does not name the case and seq: %+v", f)
				}
			}
		})
	}
	// A record whose key names another case than its receipt.
	moved := insertRecord(t, rs[2], 1)
	moved.Change.Keys["caseId"] = events.NewStringAttribute("case-x")
	moved.Change.NewImage["caseId"] = events.NewStringAttribute("case-x")
	if _, fs := Inserted(moved); !slices.Equal(kinds(fs), []receipt.Kind{receipt.Malformed}) || fs[0].CaseID != "case-x" {
		t.Fatalf("moved receipt: %+v", fs)
	}
}

func TestWithoutSelf(t *testing.T) {
	a := receipt.Finding{Kind: receipt.HashMismatch, CaseID: "c", Seq: 1}
	b := receipt.Finding{Kind: receipt.BrokenLink, CaseID: "c", Seq: 1}
	if got := withoutSelf([]receipt.Finding{a, b}, []receipt.Finding{a}); !slices.Equal(got, []receipt.Finding{b}) {
		t.Fatalf("got %v", got)
	}
}

func TestAlertMessage(t *testing.T) {
	subject, body := AlertMessage(receipt.Finding{Kind: receipt.Modified, Tenant: "acme", CaseID: "case-7", Seq: 4, Expected: "aa", Actual: "bb", Detail: "changed"})
	for _, want := range []string{"acme", "case-7", "Seq:      4", "Modified", "Expected: aa", "Actual:   bb", "knhk verify --case case-7"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(subject, "Modified") || !strings.Contains(subject, "case-7") {
		t.Errorf("subject %q", subject)
	}
}

func TestVerifiedHashes(t *testing.T) {
	rs := buildChain(t, "acme", "case-vh", 6)
	w := receipt.Watermark{Seq: 5, Hash: rs[5].Hash}
	replaced := forgeAfter(t, rs[1], rs[0].Hash)   // seq 2, linked elsewhere
	relinked := forgeAfter(t, rs[1], rs[1].Hash)   // seq 2, fits below, not above
	forgedLink := forgeAfter(t, rs[3], rs[1].Hash) // seq 4 written with a broken link
	changed, err := receipt.Decode([]byte(strings.Replace(string(mustCanonical(t, rs[3])), `"ok":true`, `"ok":false`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	with := func(i int, r *receipt.Receipt) []*receipt.Receipt {
		out := slices.Clone(rs)
		out[i] = r
		return out
	}
	for _, tc := range []struct {
		name   string
		w      receipt.Watermark
		stored []*receipt.Receipt
		want   map[int64]string // checked entries
	}{
		{"intact", w, rs, map[int64]string{0: rs[0].Hash, 2: rs[2].Hash, 5: rs[5].Hash}},
		{"nothing verified", receipt.Watermark{Seq: -1}, rs, map[int64]string{}},
		{"replaced receipt keeps the verified hash", w, with(2, replaced), map[int64]string{2: rs[2].Hash, 1: rs[1].Hash}},
		{"relinked replacement is taken as stored", w, with(2, relinked), map[int64]string{2: relinked.Hash}},
		{"changed content keeps the verified hash", w, with(3, changed), map[int64]string{3: rs[3].Hash, 2: rs[2].Hash}},
		{"missing receipt keeps the verified hash", w, slices.Delete(slices.Clone(rs), 4, 5), map[int64]string{4: rs[4].Hash, 3: rs[3].Hash}},
		{"link broken when written", receipt.Watermark{Seq: 4, Hash: forgedLink.Hash}, with(4, forgedLink)[:5],
			map[int64]string{4: forgedLink.Hash, 3: rs[3].Hash, 2: rs[2].Hash}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := VerifiedHashes(tc.w, tc.stored)
			if len(tc.want) == 0 && len(got) != 0 {
				t.Fatalf("got %v, want none", got)
			}
			for seq, h := range tc.want {
				if got[seq] != h {
					t.Errorf("seq %d: %.12s, want %.12s", seq, got[seq], h)
				}
			}
		})
	}
}

func TestEarliestFailure(t *testing.T) {
	recs := make([]events.DynamoDBEventRecord, 4)
	for i := range recs {
		recs[i].Change.SequenceNumber = fmt.Sprintf("s%d", i)
	}
	failing := func(ids ...string) events.DynamoDBEventResponse {
		r := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
		for _, id := range ids {
			r.BatchItemFailures = append(r.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: id})
		}
		return r
	}
	cases := []struct {
		name string
		resp events.DynamoDBEventResponse
		i    int
		want []string
	}{
		{"no write failure keeps the response", failing("s2"), -1, []string{"s2"}},
		{"write failure before the reported record wins", failing("s2"), 1, []string{"s1"}},
		{"reported record before the write failure stays", failing("s0"), 3, []string{"s0"}},
		{"write failure alone", failing(), 2, []string{"s2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := earliest(recs, tc.resp, tc.i)
			var ids []string
			for _, f := range got.BatchItemFailures {
				ids = append(ids, f.ItemIdentifier)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("failures %v, want %v", ids, tc.want)
			}
		})
	}
}

// Advance carries where the case ended, so a receipt appended after the
// terminal one is reported even when it arrives in a later batch, from the
// stored watermark alone.
func TestAdvanceAfterTerminal(t *testing.T) {
	rs := buildChain(t, "acme", "case-end", 4)
	end, err := receipt.New(rs[3], "acme", "case-end", history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	cur, fs := Advance(receipt.Watermark{Seq: 3, Hash: rs[3].Hash}, nil, end)
	if len(fs) != 0 || cur.Ended != end.Seq {
		t.Fatalf("terminal receipt: %+v %v", cur, fs)
	}
	again, err := receipt.New(end, "acme", "case-end", history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	stored := receipt.Watermark{Seq: cur.Seq, Hash: cur.Hash, Ended: cur.Ended} // as read back in a later batch
	if _, fs := Advance(stored, nil, again); !slices.Equal(kinds(fs), []receipt.Kind{receipt.AfterTerminal}) {
		t.Fatalf("second case.completed: %v", fs)
	}
}
