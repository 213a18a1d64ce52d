package receipt

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/receipt/jcs"
)

// A segment stores receipts without what its item carries and rebuilds
// them byte for byte: the canonical form and every hash are unchanged.
func TestSegmentRoundTrip(t *testing.T) {
	rs := buildChain(t, "acme", "case-seg", 9)
	for _, run := range [][]*Receipt{rs[:1], rs[:4], rs[4:], rs[3:9]} {
		seg, err := NewSegment(run)
		if err != nil {
			t.Fatal(err)
		}
		if seg.First != run[0].Seq || seg.Last() != run[len(run)-1].Seq || seg.PrevHash != run[0].PrevHash {
			t.Fatalf("segment position %d..%d prev %s", seg.First, seg.Last(), seg.PrevHash)
		}
		for i, b := range seg.Receipts {
			v, err := jcs.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range placedMembers {
				if _, ok := v.Get(m); ok {
					t.Fatalf("stored receipt %d repeats %s: %s", i, m, b)
				}
			}
			c, _ := run[i].Canonical()
			if len(b) >= len(c) {
				t.Fatalf("stored form %d bytes, canonical %d", len(b), len(c))
			}
		}
		got, err := seg.Decode()
		if err != nil || len(got) != len(run) {
			t.Fatalf("decode: %v %d", err, len(got))
		}
		for i := range run {
			a, _ := run[i].Canonical()
			b, _ := got[i].Canonical()
			if !bytes.Equal(a, b) || got[i].Hash != run[i].Hash {
				t.Fatalf("receipt %d rebuilt as %s, was %s", i, b, a)
			}
		}
	}
	if fs := VerifyChain(mustDecode(t, rs[:5], rs[5:])); len(fs) != 0 {
		t.Fatalf("chain of two segments: %v", fs)
	}
}

func mustDecode(t *testing.T, runs ...[]*Receipt) []*Receipt {
	t.Helper()
	var out []*Receipt
	for _, run := range runs {
		seg, err := NewSegment(run)
		if err != nil {
			t.Fatal(err)
		}
		got, err := seg.Decode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
	}
	return out
}

func TestNewSegmentRefusesWhatIsNotOneRun(t *testing.T) {
	rs := buildChain(t, "acme", "case-run", 4)
	other := buildChain(t, "acme", "case-other", 4)
	for name, run := range map[string][]*Receipt{
		"empty":      nil,
		"a gap":      {rs[0], rs[2]},
		"reordered":  {rs[1], rs[0]},
		"two chains": {rs[0], other[1]},
	} {
		if _, err := NewSegment(run); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Strictness: a stored receipt must be exactly what Compact writes.
func TestFromCompactIsStrict(t *testing.T) {
	rs := buildChain(t, "acme", "case-strict", 3)
	b, err := rs[1].Compact()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := FromCompact(b, "acme", "case-strict", 1, rs[0].Hash); err != nil || r.Hash != rs[1].Hash {
		t.Fatalf("intact: %v", err)
	}
	c, _ := rs[1].Canonical()
	for name, bad := range map[string][]byte{
		"spaced":             append([]byte(" "), b...),
		"member missing":     []byte(strings.Replace(string(b), `,"v":1}`, `}`, 1)),
		"members reordered":  []byte(strings.Replace(strings.Replace(string(b), `,"v":1}`, `}`, 1), `{`, `{"v":1,`, 1)),
		"full canonical":     c,
		"not an object":      []byte(`[]`),
		"repeats its seq":    []byte(strings.Replace(string(b), `"started"`, `"seq":1,"started"`, 1)),
		"unknown member":     []byte(strings.Replace(string(b), `"started"`, `"extra":1,"started"`, 1)),
		"upper-case escapes": []byte(strings.Replace(string(b), `"type"`, `"typ\u0065"`, 1)),
	} {
		if _, err := FromCompact(bad, "acme", "case-strict", 1, rs[0].Hash); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// A wrong place rebuilds a receipt whose hash no longer matches.
	r, err := FromCompact(b, "acme", "case-strict", 2, rs[0].Hash)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := r.ComputeHash(); h == r.Hash {
		t.Fatal("a receipt rebuilt at another seq still verifies")
	}
}

func TestSplitBounds(t *testing.T) {
	rs := buildChain(t, "acme", "case-split", 150)
	small := make([]int, len(rs))
	for i := range small {
		small[i] = 100
	}
	if got := Split(rs, small); len(got) != 3 || len(got[0]) != MaxSegmentReceipts || len(got[2]) != 150-2*MaxSegmentReceipts {
		t.Fatalf("count bound: %d runs", len(got))
	}
	big := make([]int, 10)
	for i := range big {
		big[i] = MaxSegmentBytes / 3
	}
	big[4] = MaxSegmentBytes + 1 // alone
	runs := Split(rs[:10], big)
	total := 0
	for _, run := range runs {
		size := 0
		for _, r := range run {
			size += big[r.Seq]
		}
		if len(run) > 1 && size > MaxSegmentBytes {
			t.Fatalf("run of %d is %d bytes", len(run), size)
		}
		total += len(run)
	}
	if total != 10 || !slices.ContainsFunc(runs, func(run []*Receipt) bool { return len(run) == 1 && run[0].Seq == 4 }) {
		t.Fatalf("byte bound: %d runs, %d receipts", len(runs), total)
	}
}

// Segment stream records: inserted segments verify; a change or deletion
// is one finding per receipt held.
func TestSegmentStreamRecords(t *testing.T) {
	rs := buildChain(t, "acme", "case-sr", 5)
	seg, _ := NewSegment(rs[1:4])
	img := segImage(seg, rs[3])
	keys := map[string]events.DynamoDBAttributeValue{AttrCase: img[AttrCase], AttrSeq: img[AttrSeq]}
	ins := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: keys, NewImage: img}}
	if got, fs := StreamReceipts(img); len(got) != 3 || len(fs) != 0 || len(VerifyStreamRecord(ins)) != 0 {
		t.Fatalf("intact segment: %d %v", len(got), fs)
	}
	bad := segImage(seg, rs[3])
	bad[AttrLast] = events.NewNumberAttribute("4")
	if fs := VerifyStreamRecord(events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: keys, NewImage: bad}}); !slices.Equal(kinds(fs), []Kind{Malformed}) {
		t.Fatalf("last attribute differs: %v", fs)
	}
	rm := events.DynamoDBEventRecord{EventName: "REMOVE", Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: img}}
	fs := VerifyStreamRecord(rm)
	if len(fs) != 3 || !slices.Equal(kinds(fs), []Kind{Removed}) || fs[0].Seq != 1 || fs[2].Seq != 3 || fs[1].Expected != rs[2].Hash {
		t.Fatalf("removed segment: %v", fs)
	}
}

func segImage(seg Segment, last *Receipt) map[string]events.DynamoDBAttributeValue {
	l := make([]events.DynamoDBAttributeValue, len(seg.Receipts))
	for i, b := range seg.Receipts {
		l[i] = events.NewStringAttribute(string(b))
	}
	return map[string]events.DynamoDBAttributeValue{
		AttrCase: events.NewStringAttribute(seg.CaseID), AttrSeq: events.NewNumberAttribute(itoa(seg.First)),
		AttrLast: events.NewNumberAttribute(itoa(seg.Last())), AttrTenant: events.NewStringAttribute(seg.Tenant),
		AttrPrevHash: events.NewStringAttribute(seg.PrevHash), AttrHash: events.NewStringAttribute(last.Hash),
		AttrType: events.NewStringAttribute(string(last.Type)), AttrReceipts: events.NewListAttribute(l),
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// FuzzFromCompact: whatever the stored bytes of a segment's receipt,
// decoding yields a receipt whose stored form is exactly them, or
// ErrMalformed; never a panic.
func FuzzFromCompact(f *testing.F) {
	rs := buildChain(f, "acme", "case-fz", 3)
	for _, r := range rs {
		b, _ := r.Compact()
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := FromCompact(b, "acme", "case-fz", 1, rs[0].Hash)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, err := r.Compact()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded receipt stores as %q, not %q", again, b)
		}
		if r.Seq != 1 || r.CaseID != "case-fz" || r.PrevHash != rs[0].Hash {
			t.Fatalf("placed members not from the item: %+v", r)
		}
	})
}
