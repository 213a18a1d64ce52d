package learn

import (
	"testing"
	"time"
)

func TestPlanRules(t *testing.T) {
	calm := Observation{At: t0, P99: 300 * time.Millisecond, ObjectiveP99: time.Second, Availability: 1, Objective: 0.999,
		Cases: 100, OldestAge: time.Second, Concurrency: 20, Reserved: 50, BatchSize: 10}
	cases := []struct {
		name     string
		mod      func(o *Observation)
		setting  string
		from, to int64
	}{
		{"latency over objective cuts concurrency by the gradient", func(o *Observation) { o.P99 = 2 * time.Second }, "maxConcurrency:work", 20, 10},
		{"backlog with latency room grows concurrency by √limit", func(o *Observation) { o.OldestAge = time.Minute; o.BatchSize = 0 }, "maxConcurrency:work", 20, 25},
		{"concurrency stays within reserved", func(o *Observation) { o.OldestAge = time.Minute; o.Reserved = 22; o.BatchSize = 0 }, "maxConcurrency:work", 20, 22},
		{"failing dependency halves concurrency", func(o *Observation) {
			o.Hosts = []HostObservation{{Host: "h", Calls: 100, Errors: 80, BreakerOpened: 2, Threshold: 5}}
		}, "maxConcurrency:work", 20, 10},
		{"deadline pressure shrinks batches", func(o *Observation) { o.DeadlineShare = 0.3 }, "batchSize:work", 10, 7},
		{"timeouts near the limit raise the timeout", func(o *Observation) {
			o.Tasks = []TaskObservation{{Target: "w/t", Calls: 100, Timeouts: 10, Failures: 10, P99: 1900 * time.Millisecond, TimeoutMs: 2000, Attempts: 3, RetriesSucceeded: 0.3}}
		}, "timeoutMs:w/t", 2000, 2850},
		{"transient failures get one more attempt", func(o *Observation) {
			o.Tasks = []TaskObservation{{Target: "w/t", Calls: 100, Failures: 20, RetriesSucceeded: 0.8, Attempts: 3, TimeoutMs: 2000, P99: 100 * time.Millisecond}}
		}, "retryAttempts:w/t", 3, 4},
		{"futile retries are cut", func(o *Observation) {
			o.Tasks = []TaskObservation{{Target: "w/t", Calls: 100, Failures: 20, RetriesSucceeded: 0.05, Attempts: 3, TimeoutMs: 2000, P99: 100 * time.Millisecond}}
		}, "retryAttempts:w/t", 3, 2},
		{"a failing host that never trips opens sooner", func(o *Observation) {
			o.Hosts = []HostObservation{{Host: "h", Calls: 100, Errors: 40, Threshold: 8}}
		}, "breakerThreshold:h", 8, 6},
		{"a flapping breaker on a healthy host opens later", func(o *Observation) {
			o.Hosts = []HostObservation{{Host: "h", Calls: 100, Errors: 1, BreakerOpened: 4, Threshold: 8}}
		}, "breakerThreshold:h", 8, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := calm
			c.mod(&o)
			var found *Recommendation
			for _, r := range Plan(o) {
				if len(r.Evidence) == 0 || r.Expected.Metric == "" || r.ID == "" {
					t.Errorf("%s lacks evidence, effect or id", r)
				}
				if r.Setting.Key() == c.setting {
					found = &r
				}
			}
			if found == nil || found.From != c.from || found.To != c.to {
				t.Fatalf("recommendation for %s = %v, want %d → %d", c.setting, found, c.from, c.to)
			}
		})
	}
	if rs := Plan(calm); len(rs) != 0 {
		t.Fatalf("a calm window recommends %v", rs)
	}
}
