package receipt

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/knhk/knhk/shared/receipt/jcs"
)

// Bounds of one segment: the receipts one conditional write stores. The
// byte bound counts the stored (compact) receipts and keeps an item well
// under DynamoDB's 400 KB; a receipt larger than it is stored alone.
const (
	MaxSegmentReceipts = 64
	MaxSegmentBytes    = 192 << 10
)

// placedMembers are the members a segment item carries once for all its
// receipts (tenant, caseId, the first seq and the first prevHash) and that
// the stored form of a receipt therefore leaves out.
var placedMembers = []string{"caseId", "prevHash", "seq", "tenant"}

// Compact returns the stored form of r inside a segment: its canonical JSON
// without tenant, caseId, seq and prevHash, which follow from the segment
// item (tenant, case, first seq and the first receipt's prevHash) and from
// the receipt before it in the segment. The canonical form, and so the hash,
// is unchanged: FromCompact rebuilds it byte for byte.
func (r *Receipt) Compact() ([]byte, error) { return r.appendFields(nil, true, fieldsStored) }

// FromCompact rebuilds a receipt from its stored form and the members its
// place supplies. It is as strict as Decode: the stored bytes must be
// exactly what Compact writes for the rebuilt receipt, and must not carry a
// member the place supplies.
func FromCompact(b []byte, tenant, caseID string, seq int64, prevHash string) (*Receipt, error) {
	r, err := fromCompact(b, tenant, caseID, seq, prevHash)
	if err != nil {
		return nil, fmt.Errorf("%w: seq %d: %w", ErrMalformed, seq, err)
	}
	return r, nil
}

func fromCompact(b []byte, tenant, caseID string, seq int64, prevHash string) (*Receipt, error) {
	v, err := jcs.Parse(b)
	if err != nil {
		return nil, err
	}
	if v.Kind != jcs.Object {
		return nil, errors.New("stored receipt is not an object")
	}
	for _, name := range placedMembers {
		if _, ok := v.Get(name); ok {
			return nil, fmt.Errorf("stored receipt repeats member %q of its segment", name)
		}
	}
	v.Obj = append(v.Obj,
		jcs.Member{Key: "tenant", Val: jcs.Value{Kind: jcs.String, Str: tenant}},
		jcs.Member{Key: "caseId", Val: jcs.Value{Kind: jcs.String, Str: caseID}},
		jcs.Member{Key: "seq", Val: jcs.Value{Kind: jcs.Number, Num: float64(seq)}},
		jcs.Member{Key: "prevHash", Val: jcs.Value{Kind: jcs.String, Str: prevHash}})
	r, err := FromValue(v)
	if err != nil {
		return nil, err
	}
	stored, err := r.Compact()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(stored, b) {
		return nil, errors.New("stored receipt not in canonical form")
	}
	return r, nil
}

// Segment is the stored form of consecutive receipts of one case: what a
// segment item of the receipts table holds.
type Segment struct {
	Tenant, CaseID string
	First          int64    // seq of the first receipt (the item's sort key)
	PrevHash       string   // the first receipt's prevHash
	Receipts       [][]byte // each receipt's Compact form, in seq order
}

// Last is the seq of the segment's last receipt.
func (s Segment) Last() int64 { return s.First + int64(len(s.Receipts)) - 1 }

// Size is the bytes of the segment's stored receipts.
func (s Segment) Size() int {
	n := 0
	for _, b := range s.Receipts {
		n += len(b)
	}
	return n
}

// NewSegment stores rs, consecutive receipts of one case, as one segment.
// It refuses receipts that are not one linked run (each at the seq after
// and with the prevHash of the one before): such a segment could not be
// read back as the same receipts.
func NewSegment(rs []*Receipt) (Segment, error) {
	if len(rs) == 0 {
		return Segment{}, errors.New("segment: no receipts")
	}
	s := Segment{Tenant: rs[0].Tenant, CaseID: rs[0].CaseID, First: rs[0].Seq, PrevHash: rs[0].PrevHash, Receipts: make([][]byte, len(rs))}
	for i, r := range rs {
		if i > 0 && (r.Seq != rs[i-1].Seq+1 || r.PrevHash != rs[i-1].Hash || r.Tenant != s.Tenant || r.CaseID != s.CaseID) {
			return Segment{}, fmt.Errorf("segment %s/%d: receipt %d does not continue the one before it", s.CaseID, s.First, r.Seq)
		}
		b, err := r.Compact()
		if err != nil {
			return Segment{}, fmt.Errorf("segment %s/%d: encode receipt %d: %w", s.CaseID, s.First, r.Seq, err)
		}
		s.Receipts[i] = b
	}
	return s, nil
}

// Split cuts rs, one linked run of receipts, into the runs that segments
// store: at most MaxSegmentReceipts receipts and MaxSegmentBytes stored
// bytes each (a larger receipt alone). sizes gives each receipt's stored
// size.
func Split(rs []*Receipt, sizes []int) [][]*Receipt {
	var out [][]*Receipt
	start, bytes := 0, 0
	for i := range rs {
		if i > start && (i-start >= MaxSegmentReceipts || bytes+sizes[i] > MaxSegmentBytes) {
			out = append(out, rs[start:i])
			start, bytes = i, 0
		}
		bytes += sizes[i]
	}
	if start < len(rs) {
		out = append(out, rs[start:])
	}
	return out
}

// Decode rebuilds the segment's receipts: each gets the segment's tenant
// and case, the next seq, and as prevHash the hash of the receipt before it
// (the segment's PrevHash for the first). A stored receipt that does not
// decode ends the run: the receipts before it are returned with the error
// (the receipts from seq First+len(returned) to Last cannot be rebuilt).
func (s Segment) Decode() ([]*Receipt, error) {
	rs := make([]*Receipt, 0, len(s.Receipts))
	prev := s.PrevHash
	for i, b := range s.Receipts {
		r, err := FromCompact(b, s.Tenant, s.CaseID, s.First+int64(i), prev)
		if err != nil {
			return rs, err
		}
		rs = append(rs, r)
		prev = r.Hash
	}
	return rs, nil
}
