package receipt

import (
	"slices"
	"strconv"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func image(t *testing.T, r *Receipt) map[string]events.DynamoDBAttributeValue {
	t.Helper()
	c, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]events.DynamoDBAttributeValue{
		AttrCase:     events.NewStringAttribute(r.CaseID),
		AttrSeq:      events.NewNumberAttribute(strconv.FormatInt(r.Seq, 10)),
		AttrReceipt:  events.NewStringAttribute(string(c)),
		AttrHash:     events.NewStringAttribute(r.Hash),
		AttrPrevHash: events.NewStringAttribute(r.PrevHash),
		AttrType:     events.NewStringAttribute(string(r.Type)),
		AttrTenant:   events.NewStringAttribute(r.Tenant),
	}
}

func TestVerifyStreamRecord(t *testing.T) {
	rs := buildChain(t, "acme", "c", 3)
	ins := image(t, rs[2])
	tampered := image(t, rs[2])
	c, _ := rs[2].Canonical()
	tampered[AttrReceipt] = events.NewStringAttribute(string(c[:len(c)-2]) + "2}")
	wrongAttr := image(t, rs[2])
	wrongAttr[AttrHash] = events.NewStringAttribute(rs[1].Hash)
	wrongAttrCopy := image(t, rs[2])
	wrongAttrCopy[AttrHash] = events.NewStringAttribute(rs[1].Hash)
	keys := map[string]events.DynamoDBAttributeValue{AttrCase: ins[AttrCase], AttrSeq: ins[AttrSeq]}
	ttl := &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
	cases := []struct {
		name string
		rec  events.DynamoDBEventRecord
		want []Kind
	}{
		{"insert", events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: keys, NewImage: ins}}, nil},
		{"insert tampered", events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: keys, NewImage: tampered}}, []Kind{Malformed}},
		{"insert attribute differs", events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: keys, NewImage: wrongAttr}}, []Kind{Malformed}},
		{"insert without image", events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: keys}}, []Kind{Malformed}},
		{"modify", events.DynamoDBEventRecord{EventName: "MODIFY", Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: ins, NewImage: wrongAttr}}, []Kind{Modified}},
		{"modify to the same item", events.DynamoDBEventRecord{EventName: "MODIFY", Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: wrongAttr, NewImage: image(t, rs[2])}}, []Kind{Modified}},
		{"rewrite without change", events.DynamoDBEventRecord{EventName: "MODIFY", Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: wrongAttr, NewImage: wrongAttrCopy}}, nil},
		{"modify without images", events.DynamoDBEventRecord{EventName: "MODIFY", Change: events.DynamoDBStreamRecord{Keys: keys}}, []Kind{Modified}},
		{"remove", events.DynamoDBEventRecord{EventName: "REMOVE", Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: ins}}, []Kind{Removed}},
		{"remove by user claiming service", events.DynamoDBEventRecord{EventName: "REMOVE", UserIdentity: &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "someone"}, Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: ins}}, []Kind{Removed}},
		{"ttl", events.DynamoDBEventRecord{EventName: "REMOVE", UserIdentity: ttl, Change: events.DynamoDBStreamRecord{Keys: keys, OldImage: ins}}, []Kind{TTLExpired}},
		{"unknown", events.DynamoDBEventRecord{EventName: "TRUNCATE", Change: events.DynamoDBStreamRecord{Keys: keys}}, []Kind{Malformed}},
	}
	for _, c := range cases {
		fs := VerifyStreamRecord(c.rec)
		if got := kinds(fs); !slices.Equal(got, c.want) {
			t.Errorf("%s: kinds %v, want %v (%v)", c.name, got, c.want, fs)
			continue
		}
		for _, f := range fs {
			if f.CaseID != "c" || f.Seq != 2 {
				t.Errorf("%s: finding does not name the item: %+v", c.name, f)
			}
			if f.Kind == Removed && f.Expected != rs[2].Hash {
				t.Errorf("%s: removed hash not reported: %+v", c.name, f)
			}
			if f.Kind.Tamper() == (f.Kind == TTLExpired) {
				t.Errorf("%s: Tamper() wrong for %s", c.name, f.Kind)
			}
		}
	}
	// A forged insert with a valid self-hash but a bad genesis claim.
	forged := forge(t, c, func(r *Receipt) { r.Seq = 0 })
	r, err := Decode(forged)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(VerifyReceipt(r)); !slices.Equal(got, []Kind{GenesisInvalid}) {
		t.Errorf("forged genesis: %v", got)
	}
}
