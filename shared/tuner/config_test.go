package tuner

import (
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/learn"
)

func TestParseConfig(t *testing.T) {
	p, err := ParseConfig("", 20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled || len(p.Guard.Allow) != 0 || p.Settle != 5*time.Minute || p.Guard.Bounds[learn.MaxConcurrency] != (learn.Bounds{Min: 2, Max: 20}) {
		t.Fatalf("the empty configuration is %+v, want recommendation-only with nothing allowed", p)
	}
	p, err = ParseConfig(`{"enabled":true,"allow":["maxConcurrency","retryAttempts:orders/charge"],"maxStep":0.5,"p99Tolerance":0.3,
		"cooldown":"2m","reduceCooldown":"10m","settle":"3m","bounds":{"maxConcurrency":{"min":4,"max":12}}}`, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled || p.Guard.MaxStep != 0.5 || p.Guard.Cooldown != 2*time.Minute || p.Guard.ReduceCooldown != 10*time.Minute ||
		p.Settle != 3*time.Minute || p.Tolerance.P99 != 0.3 || p.Guard.Bounds[learn.MaxConcurrency] != (learn.Bounds{Min: 4, Max: 12}) {
		t.Fatalf("parsed %+v", p)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"enable":true}`, "unknown field"},
		{`{"allow":["maxConcurency"]}`, "unknown setting kind"},
		{`{"maxStep":1.5}`, "maxStep"},
		{`{"p99Tolerance":2}`, "p99Tolerance"},
		{`{"settle":"soon"}`, "settle"},
		{`{"cooldown":"-1m"}`, "cooldown"},
		{`{"cooldown":"10m","reduceCooldown":"5m"}`, "exceeds reduceCooldown"},
		{`{"bounds":{"maxConcurrency":{"min":2,"max":50}}}`, "leave the kind's limits"},
		{`{"bounds":{"maxConcurrency":{"min":8,"max":4}}}`, "exceeds max"},
		{`{"bounds":{"speed":{"min":1,"max":2}}}`, "unknown setting kind"},
	} {
		if _, err := ParseConfig(tc.in, 20); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) = %v, want an error about %q", tc.in, err, tc.want)
		}
	}
}

func TestParseSetting(t *testing.T) {
	s, err := ParseSetting("retryAttempts:orders/charge:v2")
	if err != nil || s != (learn.Setting{Kind: learn.RetryAttempts, Target: "orders/charge:v2"}) {
		t.Fatalf("ParseSetting = %+v, %v", s, err)
	}
	for _, bad := range []string{"", "maxConcurrency", "maxConcurrency:", "speed:work"} {
		if _, err := ParseSetting(bad); err == nil {
			t.Errorf("ParseSetting(%q) accepted", bad)
		}
	}
}

func TestMergeOpenKeepsOnePerSetting(t *testing.T) {
	s := learn.Setting{Kind: learn.MaxConcurrency, Target: MappingTarget}
	old := []learn.Recommendation{{ID: "a", Setting: s, From: 8, To: 6, At: t0}}
	if got := mergeOpen(old, []learn.Recommendation{{ID: "b", Setting: s, From: 8, To: 6, At: t0.Add(time.Minute)}}, t0.Add(time.Minute), true); len(got) != 1 || got[0].ID != "a" || !got[0].At.Equal(t0.Add(time.Minute)) {
		t.Errorf("same change planned again: %+v, want id a refreshed", got)
	}
	if got := mergeOpen(old, []learn.Recommendation{{ID: "c", Setting: s, From: 8, To: 10, At: t0}}, t0, true); len(got) != 1 || got[0].ID != "c" {
		t.Errorf("another change of the setting: %+v, want c", got)
	}
	if got := mergeOpen(old, nil, t0.Add(openTTL+time.Minute), true); len(got) != 0 {
		t.Errorf("stale recommendation kept: %+v", got)
	}
	if got := mergeOpen(old, old, t0, false); got != nil {
		t.Errorf("open recommendations outside recommendation-only mode: %+v", got)
	}
}
