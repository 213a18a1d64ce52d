package receipt

import (
	"fmt"
	"reflect"

	"github.com/aws/aws-lambda-go/events"
)

// Item attribute names of a stored receipt (the receipts table: partition
// key caseId, sort key seq).
const (
	AttrCase     = "caseId"   // S, partition key
	AttrSeq      = "seq"      // N, sort key
	AttrReceipt  = "r"        // S, the canonical receipt JSON
	AttrHash     = "hash"     // S
	AttrPrevHash = "prevHash" // S
	AttrType     = "type"     // S
	AttrTenant   = "tenant"   // S
)

// TTL deletions are stream REMOVE records made by this service principal.
const (
	ttlIdentityType      = "Service"
	ttlIdentityPrincipal = "dynamodb.amazonaws.com"
)

// VerifyStreamRecord checks one change record of the receipts table's
// stream (view type NEW_AND_OLD_IMAGES). An INSERT is decoded and its hash
// recomputed; any MODIFY is a Modified finding and any REMOVE a Removed
// finding, except deletions by the table's TTL, reported as TTLExpired.
// A MODIFY whose old and new images are both present and equal changed
// nothing and yields no finding: DynamoDB writes no stream record for such a
// write, but a local endpoint may (a retried put whose first response was
// lost), and it must not be counted as a second tampering.
// Links cannot be checked from a single record; a chain verification does.
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
		r, err := Decode([]byte(attrS(img, AttrReceipt)))
		if err != nil {
			f.Kind, f.Detail = Malformed, err.Error()
			return []Finding{f}
		}
		out := VerifyReceipt(r)
		for _, a := range []struct{ name, item, rec string }{
			{AttrCase, f.CaseID, r.CaseID}, {AttrTenant, f.Tenant, r.Tenant}, {AttrHash, attrS(img, AttrHash), r.Hash},
			{AttrPrevHash, attrS(img, AttrPrevHash), r.PrevHash}, {AttrType, attrS(img, AttrType), string(r.Type)},
			{AttrSeq, fmt.Sprint(f.Seq), fmt.Sprint(r.Seq)},
		} {
			if a.item != a.rec {
				out = append(out, Finding{Kind: Malformed, Tenant: r.Tenant, CaseID: r.CaseID, Seq: r.Seq,
					Expected: a.rec, Actual: a.item, Detail: "item attribute " + a.name + " differs from the receipt"})
			}
		}
		return out
	case string(events.DynamoDBOperationTypeModify):
		if unchanged(rec.Change) {
			return nil
		}
		f.Kind = Modified
		f.Expected = attrS(rec.Change.OldImage, AttrHash)
		f.Actual = attrS(rec.Change.NewImage, AttrHash)
		f.Detail = "receipt item modified after it was written"
	case string(events.DynamoDBOperationTypeRemove):
		if id := rec.UserIdentity; id != nil && id.Type == ttlIdentityType && id.PrincipalID == ttlIdentityPrincipal {
			f.Kind, f.Detail = TTLExpired, "deleted by the table's time to live"
		} else {
			f.Kind, f.Detail = Removed, "receipt item deleted"
		}
		f.Expected = attrS(rec.Change.OldImage, AttrHash)
	default:
		f.Kind, f.Detail = Malformed, fmt.Sprintf("unknown stream event %q", rec.EventName)
	}
	return []Finding{f}
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
func unchanged(c events.DynamoDBStreamRecord) bool {
	return len(c.OldImage) > 0 && len(c.NewImage) > 0 && reflect.DeepEqual(c.OldImage, c.NewImage)
}
