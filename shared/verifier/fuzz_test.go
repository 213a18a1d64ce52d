package verifier

import (
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/receipt"
)

// FuzzInsert feeds arbitrary "r" attributes through the INSERT path's pure
// part: it never panics, an undecodable item is exactly one Malformed
// finding naming the item's case and seq, and a decodable one is checked
// against a position.
func FuzzInsert(f *testing.F) {
	rs := buildChain(f, "acme", "case-fz", 3)
	for _, r := range rs {
		f.Add(string(mustCanonical(f, r)))
	}
	c := string(mustCanonical(f, rs[2]))
	f.Add(c[:len(c)/2])
	f.Add("")
	f.Add("null")
	f.Add(`{"v":1}`)
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, raw string) {
		rec := insertRecord(t, rs[2], 1)
		rec.Change.NewImage["r"] = events.NewStringAttribute(raw)
		got, fs := Inserted(rec)
		r := only(got)
		if r == nil {
			if len(fs) != 1 || fs[0].Kind != receipt.Malformed || fs[0].CaseID != "case-fz" || fs[0].Seq != 2 {
				t.Fatalf("undecodable item: %+v", fs)
			}
			return
		}
		for _, x := range fs {
			if !x.Kind.Tamper() {
				t.Fatalf("insert finding %v is not tampering", x)
			}
		}
		cur := receipt.Watermark{Seq: rs[1].Seq, Hash: rs[1].Hash}
		switch Classify(cur, r.Seq) {
		case Link, CatchUp:
			w, _ := Advance(cur, nil, r)
			if w.Seq != r.Seq {
				t.Fatalf("position %d, want %d", w.Seq, r.Seq)
			}
		case Redelivery:
			_ = Redelivered(r, rs[min(max(r.Seq, 0), 1)].Hash, true)
		}
		if raw == c && (len(fs) != 0 || !slices.Equal(kinds(fs), []receipt.Kind{})) {
			t.Fatalf("intact receipt: %v", fs)
		}
	})
}
