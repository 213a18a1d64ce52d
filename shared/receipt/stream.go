package receipt

import (
	"fmt"
	"maps"
	"reflect"

	"github.com/aws/aws-lambda-go/events"
)

// Item attribute names of the receipts table (partition key caseId, sort
// key seq). A segment item stores consecutive receipts in AttrReceipts, its
// sort key the first one's seq; an item written before segments stores one
// receipt's canonical JSON in AttrReceipt. Both are read.
const (
	AttrCase     = "caseId"   // S, partition key
	AttrSeq      = "seq"      // N, sort key: the (first) receipt's seq
	AttrReceipts = "rs"       // L of S, a segment's receipts in their Compact form
	AttrLast     = "last"     // N, a segment's last seq
	AttrReceipt  = "r"        // S, one receipt's canonical JSON (items written before segments)
	AttrHash     = "hash"     // S, the (last) receipt's hash
	AttrPrevHash = "prevHash" // S, the (first) receipt's prevHash
	AttrType     = "type"     // S, the (last) receipt's type
	AttrTenant   = "tenant"   // S
	// AttrExpires is the table's time-to-live attribute (N, epoch
	// seconds): the archiver sets it on a case's items only after the
	// case's archive object verified.
	AttrExpires = "expiresAt"
)

// TTL deletions are stream REMOVE records made by this service principal.
const (
	ttlIdentityType      = "Service"
	ttlIdentityPrincipal = "dynamodb.amazonaws.com"
)

// VerifyStreamRecord checks one change record of the receipts table's
// stream (view type NEW_AND_OLD_IMAGES). An INSERT is decoded (a segment
// into its receipts) and every hash recomputed; any MODIFY is a Modified
// finding and any REMOVE a Removed finding for every receipt the item held,
// except deletions by the table's TTL, reported as TTLExpired.
// A MODIFY whose old and new images are both present and equal changed
// nothing and yields no finding: DynamoDB writes no stream record for such a
// write, but a local endpoint may (a retried put whose first response was
// lost), and it must not be counted as a second tampering.
// Links to the receipts before the item cannot be checked from a single
// record; a chain verification does.
func VerifyStreamRecord(rec events.DynamoDBEventRecord) []Finding {
	img := rec.Change.NewImage
	if rec.EventName == string(events.DynamoDBOperationTypeRemove) {
		img = rec.Change.OldImage
	}
	if img == nil {
		img = rec.Change.Keys
	}
	f := Finding{CaseID: attrS(img, AttrCase), Tenant: attrS(img, AttrTenant), Seq: attrN(img, AttrSeq)}
	if f.CaseID == "" {
		f.CaseID = attrS(rec.Change.Keys, AttrCase)
		f.Seq = attrN(rec.Change.Keys, AttrSeq)
	}
	switch rec.EventName {
	case string(events.DynamoDBOperationTypeInsert):
		_, fs := StreamReceipts(img)
		return fs
	case string(events.DynamoDBOperationTypeModify):
		if unchanged(rec.Change) {
			return nil
		}
		if expirySet(rec.Change) {
			f.Kind, f.Detail = ExpirySet, "time to live set on the receipt item"
		} else {
			f.Kind, f.Detail = Modified, "receipt item modified after it was written"
		}
	case string(events.DynamoDBOperationTypeRemove):
		if id := rec.UserIdentity; id != nil && id.Type == ttlIdentityType && id.PrincipalID == ttlIdentityPrincipal {
			f.Kind, f.Detail = TTLExpired, "deleted by the table's time to live"
		} else {
			f.Kind, f.Detail = Removed, "receipt item deleted"
		}
	default:
		f.Kind, f.Detail = Malformed, fmt.Sprintf("unknown stream event %q", rec.EventName)
		return []Finding{f}
	}
	return perReceipt(f, rec.Change.OldImage, rec.Change.NewImage)
}

// perReceipt spreads a finding about a changed or deleted item over every
// receipt the item held (its old image; the key alone when there is none),
// each with the hash it had and, for a change, the hash now at its seq.
func perReceipt(f Finding, old, cur map[string]events.DynamoDBAttributeValue) []Finding {
	before := positions(old)
	if len(before) == 0 {
		if old != nil {
			f.Expected = attrS(old, AttrHash)
		}
		if f.Kind == Modified && cur != nil {
			f.Actual = attrS(cur, AttrHash)
		}
		return []Finding{f}
	}
	after := map[int64]string{}
	if f.Kind == Modified {
		for _, p := range positions(cur) {
			after[p.seq] = p.hash
		}
	}
	out := make([]Finding, 0, len(before))
	for _, p := range before {
		g := f
		g.Seq, g.Expected, g.Actual = p.seq, p.hash, after[p.seq]
		out = append(out, g)
	}
	return out
}

type position struct {
	seq  int64
	hash string
}

// positions lists the receipts an item image holds, by seq with their
// hashes as far as they can be rebuilt (a segment's undecodable tail with
// empty hashes, up to its last seq).
func positions(img map[string]events.DynamoDBAttributeValue) []position {
	if img == nil {
		return nil
	}
	seg, ok := streamSegment(img)
	if !ok {
		seq := attrN(img, AttrSeq)
		if seq < 0 {
			return nil
		}
		return []position{{seq, attrS(img, AttrHash)}}
	}
	rs, _ := seg.Decode()
	out := make([]position, 0, len(seg.Receipts))
	for i := range seg.Receipts {
		p := position{seq: seg.First + int64(i)}
		if i < len(rs) {
			p.hash = rs[i].Hash
		}
		out = append(out, p)
	}
	return out
}

// streamSegment reads a segment item's image (ok false: not a segment).
func streamSegment(img map[string]events.DynamoDBAttributeValue) (Segment, bool) {
	a, ok := img[AttrReceipts]
	if !ok || a.DataType() != events.DataTypeList {
		return Segment{}, false
	}
	seg := Segment{Tenant: attrS(img, AttrTenant), CaseID: attrS(img, AttrCase), First: attrN(img, AttrSeq), PrevHash: attrS(img, AttrPrevHash)}
	for _, e := range a.List() {
		if e.DataType() != events.DataTypeString {
			seg.Receipts = append(seg.Receipts, nil) // decodes as malformed
			continue
		}
		seg.Receipts = append(seg.Receipts, []byte(e.String()))
	}
	return seg, true
}

// StreamReceipts decodes the receipts of an inserted item's image, a
// segment or an item written before segments, strictly, and checks what
// they prove on their own: each hash, inline payload and genesis, the links
// inside the segment, and that the item's key and query attributes agree
// with them. What does not decode is a Malformed finding per seq it held.
func StreamReceipts(img map[string]events.DynamoDBAttributeValue) ([]*Receipt, []Finding) {
	f := Finding{Kind: Malformed, CaseID: attrS(img, AttrCase), Tenant: attrS(img, AttrTenant), Seq: attrN(img, AttrSeq)}
	seg, ok := streamSegment(img)
	if !ok {
		if _, has := img[AttrReceipt]; !has {
			f.Detail = fmt.Sprintf("item has neither %q nor %q", AttrReceipts, AttrReceipt)
			return nil, []Finding{f}
		}
		r, err := Decode([]byte(attrS(img, AttrReceipt)))
		if err != nil {
			f.Detail = err.Error()
			return nil, []Finding{f}
		}
		out := VerifyReceipt(r)
		out = append(out, attrsAgree(img, r, r, r.Seq)...)
		return []*Receipt{r}, out
	}
	switch {
	case len(seg.Receipts) == 0:
		f.Detail = "segment item holds no receipts"
		return nil, []Finding{f}
	case seg.CaseID == "" || seg.Tenant == "" || seg.First < 0:
		f.Detail = "segment item lacks its case, tenant or first seq"
		return nil, []Finding{f}
	}
	rs, err := seg.Decode()
	var out []Finding
	for _, r := range rs {
		out = append(out, VerifyReceipt(r)...)
	}
	if err != nil {
		for seq := seg.First + int64(len(rs)); seq <= seg.Last(); seq++ {
			g := f
			g.Seq, g.Detail = seq, err.Error()
			out = append(out, g)
		}
		return rs, out
	}
	return rs, append(out, attrsAgree(img, rs[0], rs[len(rs)-1], seg.Last())...)
}

// attrsAgree checks an item's attributes against the receipts it holds,
// first to last (the same receipt for an item of one receipt).
func attrsAgree(img map[string]events.DynamoDBAttributeValue, first, last *Receipt, lastSeq int64) []Finding {
	var out []Finding
	checks := []struct{ name, item, rec string }{
		{AttrCase, attrS(img, AttrCase), first.CaseID}, {AttrTenant, attrS(img, AttrTenant), first.Tenant},
		{AttrSeq, fmt.Sprint(attrN(img, AttrSeq)), fmt.Sprint(first.Seq)},
		{AttrPrevHash, attrS(img, AttrPrevHash), first.PrevHash},
		{AttrHash, attrS(img, AttrHash), last.Hash}, {AttrType, attrS(img, AttrType), string(last.Type)},
	}
	if _, seg := img[AttrReceipts]; seg {
		checks = append(checks, struct{ name, item, rec string }{AttrLast, fmt.Sprint(attrN(img, AttrLast)), fmt.Sprint(lastSeq)})
	}
	caseID := attrS(img, AttrCase) // the finding belongs to the chain that holds the item
	if caseID == "" {
		caseID = last.CaseID
	}
	for _, a := range checks {
		if a.item != a.rec {
			out = append(out, Finding{Kind: Malformed, Tenant: last.Tenant, CaseID: caseID, Seq: last.Seq,
				Expected: a.rec, Actual: a.item, Detail: "item attribute " + a.name + " differs from the receipt"})
		}
	}
	return out
}

// VerifyReceipt checks what one receipt proves on its own: its hash, its
// inline payloads and, for seq 0, its genesis.
func VerifyReceipt(r *Receipt) []Finding {
	if r == nil {
		return []Finding{{Kind: Malformed, Seq: -1, Detail: "missing receipt value"}}
	}
	v := newVerifier()
	v.tenant, v.caseID, v.started = r.Tenant, r.CaseID, true
	v.self(r)
	return v.out
}

func attrS(img map[string]events.DynamoDBAttributeValue, name string) string {
	a, ok := img[name]
	if !ok || a.DataType() != events.DataTypeString {
		return ""
	}
	return a.String()
}

func attrN(img map[string]events.DynamoDBAttributeValue, name string) int64 {
	a, ok := img[name]
	if !ok || a.DataType() != events.DataTypeNumber {
		return -1
	}
	n, err := a.Int64()
	if err != nil {
		return -1
	}
	return n
}

// unchanged reports whether a change record carries two equal images.
// expirySet reports a MODIFY that only set the time-to-live attribute.
func expirySet(c events.DynamoDBStreamRecord) bool {
	if len(c.OldImage) == 0 || len(c.NewImage) == 0 || c.NewImage[AttrExpires].DataType() != events.DataTypeNumber {
		return false
	}
	old, cur := maps.Clone(c.OldImage), maps.Clone(c.NewImage)
	delete(old, AttrExpires)
	delete(cur, AttrExpires)
	return reflect.DeepEqual(old, cur)
}

// RetentionKinds are the findings whose verdict depends on whether the
// case is archived (see Retention).
func RetentionKinds(fs []Finding) bool {
	for _, f := range fs {
		switch f.Kind {
		case Removed, TTLExpired, ExpirySet:
			return true
		}
	}
	return false
}

// Retention judges a stream record's deletion and expiry findings by
// whether the case is archived (its archive object verified and indexed):
// for an archived case a deletion (by the table's TTL or anyone) or a time
// to live set is Expired, allowed, since the archive holds the verified
// chain; for a case not archived each is tampering, a TTL deletion a
// Removed finding. Other findings pass unchanged.
func Retention(fs []Finding, archived bool) []Finding {
	out := make([]Finding, 0, len(fs))
	for _, f := range fs {
		switch {
		case f.Kind != Removed && f.Kind != TTLExpired && f.Kind != ExpirySet:
		case archived:
			f.Detail = string(f.Kind) + " of an archived case: " + f.Detail
			f.Kind = Expired
		case f.Kind == TTLExpired:
			f.Kind, f.Detail = Removed, "deleted by the table's time to live, but the case is not archived"
		}
		out = append(out, f)
	}
	return out
}

func unchanged(c events.DynamoDBStreamRecord) bool {
	return len(c.OldImage) > 0 && len(c.NewImage) > 0 && reflect.DeepEqual(c.OldImage, c.NewImage)
}
