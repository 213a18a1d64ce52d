package learn

import (
	"testing"
	"time"
)

// BenchmarkDetectorObserve is the cost of one point of one task's series.
func BenchmarkDetectorObserve(b *testing.B) {
	xs, _ := latencyGen().generate(1, Drift)
	d, err := NewDetector(DetectorConfig{Window: 60, Season: evalSeason, MinScale: 0.6})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, _, err := d.Observe(xs[i%len(xs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanAndAdmit is one loop iteration's planning for one window.
func BenchmarkPlanAndAdmit(b *testing.B) {
	g := Guardrails{Allow: []string{"maxConcurrency", "batchSize", "retryAttempts", "timeoutMs", "breakerThreshold"}, Bounds: DefaultBounds(50)}
	o := Observation{At: t0, P99: 2 * time.Second, ObjectiveP99: time.Second, Cases: 100, Concurrency: 20, Reserved: 50, BatchSize: 10,
		DeadlineShare: 0.3, Tasks: []TaskObservation{{Target: "w/t", Calls: 100, Failures: 20, RetriesSucceeded: 0.8, Attempts: 3, TimeoutMs: 2000}}}
	b.ReportAllocs()
	for b.Loop() {
		k := NewKnowledge(initial())
		for _, r := range Plan(o) {
			if c, err := g.Admit(r, k, t0, o.Outcome()); err == nil {
				_ = k.Apply(c)
			}
		}
	}
}

// BenchmarkFitHoltWinters is the hourly forecast's fit over six weeks.
func BenchmarkFitHoltWinters(b *testing.B) {
	xs := hourlyVolume(1, 2, 1.5)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EvaluateForecast(xs, 24, 7*24); err != nil {
			b.Fatal(err)
		}
	}
}
