package receipt

import (
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestExpirySetOnlyWhenOnlyTheTTLChanged(t *testing.T) {
	item := func(extra map[string]events.DynamoDBAttributeValue) map[string]events.DynamoDBAttributeValue {
		m := map[string]events.DynamoDBAttributeValue{AttrCase: events.NewStringAttribute("c"), AttrSeq: events.NewNumberAttribute("0"),
			AttrHash: events.NewStringAttribute("ab"), AttrReceipt: events.NewStringAttribute(`{}`)}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	ttl := map[string]events.DynamoDBAttributeValue{AttrExpires: events.NewNumberAttribute("1900000000")}
	tests := []struct {
		name     string
		old, cur map[string]events.DynamoDBAttributeValue
		want     Kind
	}{
		{"ttl added", item(nil), item(ttl), ExpirySet},
		{"ttl changed", item(map[string]events.DynamoDBAttributeValue{AttrExpires: events.NewNumberAttribute("1")}), item(ttl), ExpirySet},
		{"ttl as a string", item(nil), item(map[string]events.DynamoDBAttributeValue{AttrExpires: events.NewStringAttribute("1")}), Modified},
		{"ttl and content", item(nil), item(map[string]events.DynamoDBAttributeValue{AttrExpires: events.NewNumberAttribute("1"), AttrHash: events.NewStringAttribute("cd")}), Modified},
		{"ttl removed", item(ttl), item(nil), Modified},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := VerifyStreamRecord(events.DynamoDBEventRecord{EventName: "MODIFY", Change: events.DynamoDBStreamRecord{OldImage: tc.old, NewImage: tc.cur}})
			if len(fs) != 1 || fs[0].Kind != tc.want {
				t.Fatalf("findings %v, want one %s", fs, tc.want)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	kinds := func(fs []Finding) []Kind {
		var out []Kind
		for _, f := range fs {
			out = append(out, f.Kind)
		}
		return out
	}
	in := []Finding{{Kind: Removed}, {Kind: TTLExpired}, {Kind: ExpirySet}, {Kind: Modified}, {Kind: HashMismatch}}
	tests := []struct {
		archived bool
		want     []Kind
	}{
		{true, []Kind{Expired, Expired, Expired, Modified, HashMismatch}},
		{false, []Kind{Removed, Removed, ExpirySet, Modified, HashMismatch}},
	}
	for _, tc := range tests {
		got := Retention(in, tc.archived)
		if !slices.Equal(kinds(got), tc.want) {
			t.Errorf("archived=%v: %v, want %v", tc.archived, kinds(got), tc.want)
		}
		for i, f := range got {
			if f.Kind.Tamper() == (tc.archived && i < 3) {
				t.Errorf("archived=%v: %s tamper=%v", tc.archived, f.Kind, f.Kind.Tamper())
			}
		}
	}
	if !RetentionKinds(in[:1]) || RetentionKinds(in[3:]) {
		t.Error("RetentionKinds")
	}
}
