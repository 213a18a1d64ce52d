package verifier

import (
	"strconv"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/receipt"
)

// Step is what an inserted receipt needs, given the case's verified
// position.
type Step int

// Steps of an inserted receipt.
const (
	// Link: the receipt continues the verified position; check its link.
	Link Step = iota + 1
	// CatchUp: receipts between the verified position and this one were
	// not seen; read them from the table and verify from the position.
	CatchUp
	// Redelivery: the receipt is at or below the verified position; it
	// must equal what was verified there.
	Redelivery
)

// String names the step.
func (s Step) String() string {
	switch s {
	case Link:
		return "link"
	case CatchUp:
		return "catch-up"
	case Redelivery:
		return "redelivery"
	}
	return "step(" + strconv.Itoa(int(s)) + ")"
}

// Classify decides the step of a receipt at seq after the verified position
// cur (seq -1: nothing verified yet).
func Classify(cur receipt.Watermark, seq int64) Step {
	switch {
	case seq <= cur.Seq:
		return Redelivery
	case seq == cur.Seq+1:
		return Link
	default:
		return CatchUp
	}
}

// Advance verifies r, preceded by the receipts read to fill a gap (missing,
// in seq order, possibly incomplete), as the continuation of cur: every
// hash, payload and link, and the sequence. It returns the new position, the
// last receipt, even when there are findings: a finding is reported once and
// later receipts are checked against what the chain now holds.
func Advance(cur receipt.Watermark, missing []*receipt.Receipt, r *receipt.Receipt) (receipt.Watermark, []receipt.Finding) {
	rs := make([]*receipt.Receipt, 0, len(missing)+1)
	rs = append(rs, missing...)
	rs = append(rs, r)
	_, fs := receipt.VerifyFrom(cur, rs)
	return cur.Through(rs), fs
}

// Redelivered checks a receipt delivered again at a seq already verified:
// its hash must be the verified one. ok false means the verified hash is not
// known (the item is no longer in the table: its removal is reported by its
// own stream record), and nothing is reported.
func Redelivered(r *receipt.Receipt, verified string, ok bool) []receipt.Finding {
	if !ok || r.Hash == verified {
		return nil
	}
	return []receipt.Finding{{Kind: receipt.Modified, Tenant: r.Tenant, CaseID: r.CaseID, Seq: r.Seq,
		Expected: verified, Actual: r.Hash, Detail: "an inserted receipt differs from the one verified at its seq"}}
}

// VerifiedHashes returns the hash verified at each seq up to the
// watermark w, from the receipts stored at and below it (in any order).
// The watermark's hash is known; walking back, the hash verified at seq s-1
// is the prevHash of the receipt at s, as long as that receipt still hashes
// to the hash verified at s. Where the walk breaks (a receipt missing or
// changed), the hash derived from the link above is kept for that seq,
// unless the stored receipt there is intact and links to the stored one
// below it (then the link above was the broken one); below the break the
// stored hashes are taken as they are: those items' changes are reported by
// their own stream records.
func VerifiedHashes(w receipt.Watermark, stored []*receipt.Receipt) map[int64]string {
	m := map[int64]string{}
	if w.Seq < 0 {
		return m
	}
	m[w.Seq] = w.Hash
	by := make(map[int64]*receipt.Receipt, len(stored))
	low := w.Seq
	for _, r := range stored {
		if r != nil && r.Seq <= w.Seq {
			by[r.Seq] = r
			low = min(low, r.Seq)
		}
	}
	linked := true
	for s := w.Seq; s >= low; s-- {
		r := by[s]
		if linked {
			if r != nil && r.Hash == m[s] && selfHashOK(r) {
				if s > 0 {
					m[s-1] = r.PrevHash
				}
				continue
			}
			linked = false
			if r != nil && fitsBelow(r, by[s-1]) {
				// The link above did not match a receipt that still fits
				// the chain below it: the link was broken when written
				// (reported then as BrokenLink), not this receipt replaced.
				m[s] = r.Hash
			}
			continue
		}
		if r != nil {
			m[s] = r.Hash
		}
	}
	return m
}

// fitsBelow reports whether r is intact and links to below (or is a
// genesis).
func fitsBelow(r, below *receipt.Receipt) bool {
	if !selfHashOK(r) {
		return false
	}
	if r.Seq == 0 {
		return r.PrevHash == receipt.ZeroHash
	}
	return below != nil && selfHashOK(below) && below.Hash == r.PrevHash
}

func selfHashOK(r *receipt.Receipt) bool {
	h, err := r.ComputeHash()
	return err == nil && h == r.Hash
}

// Inserted decodes the receipts of an INSERT record, a segment's or the one
// receipt of an item written before segments (receipt.StreamReceipts), and
// checks what they prove on their own (hashes, payloads, genesis, the links
// inside the segment) and that the item's key and attributes agree with
// them. What does not decode yields Malformed findings instead of receipts.
func Inserted(rec events.DynamoDBEventRecord) ([]*receipt.Receipt, []receipt.Finding) {
	caseID, seq := keyOf(rec)
	rs, fs := receipt.StreamReceipts(rec.Change.NewImage)
	for i := range fs {
		if fs[i].CaseID == "" {
			fs[i].CaseID = caseID
		}
		if fs[i].Seq < 0 {
			fs[i].Seq = seq
		}
	}
	return rs, fs
}

// keyOf returns the case and seq of a record's key (seq -1 when absent).
func keyOf(rec events.DynamoDBEventRecord) (string, int64) {
	caseID := strAttr(rec.Change.Keys, receipt.AttrCase)
	seq := int64(-1)
	if a, ok := rec.Change.Keys[receipt.AttrSeq]; ok && a.DataType() == events.DataTypeNumber {
		if n, err := strconv.ParseInt(a.Number(), 10, 64); err == nil {
			seq = n
		}
	}
	return caseID, seq
}

func strAttr(img map[string]events.DynamoDBAttributeValue, name string) string {
	a, ok := img[name]
	if !ok || a.DataType() != events.DataTypeString {
		return ""
	}
	return a.String()
}
