package learn

import (
	"strings"
	"testing"
	"time"
)

// TestLoopRollsBackAChangeThatMadeThingsWorse: latency over its objective
// makes the loop cut concurrency; the window after the change is worse, so
// the change is rolled back to exactly the value before it; a later change
// that helps is kept.
func TestLoopRollsBackAChangeThatMadeThingsWorse(t *testing.T) {
	conc := Setting{MaxConcurrency, "work"}
	l := &Loop{Guard: Guardrails{Allow: []string{"maxConcurrency"}, Bounds: DefaultBounds(40)},
		Knowledge: NewKnowledge(map[Setting]int64{conc: 20})}
	slow := Observation{At: t0, P99: 2 * time.Second, ObjectiveP99: time.Second, Availability: 0.999, Cases: 100,
		CostPerCase: 1e-5, Concurrency: 20, Reserved: 40}
	r, err := l.Step(slow)
	if err != nil || len(r.Applied) != 1 || r.Applied[0].Value != 15 {
		t.Fatalf("step 1: %+v, %v; want 20 → 15", r, err)
	}
	// Before the change settles nothing is judged or planned.
	early := slow
	early.At, early.Concurrency = t0.Add(time.Minute), 15
	if r, _ := l.Step(early); len(r.Applied)+len(r.RolledBack)+len(r.Kept) != 0 {
		t.Fatalf("step inside the settle time did %+v", r)
	}
	worse := early
	worse.At, worse.P99, worse.Availability = t0.Add(6*time.Minute), 3*time.Second, 0.99
	r, err = l.Step(worse)
	if err != nil || len(r.RolledBack) != 1 {
		t.Fatalf("step 3: %+v, %v; want a rollback", r, err)
	}
	if v, _ := l.Knowledge.Value(conc); v != 20 || r.RolledBack[0].RollbackOf == "" || r.RolledBack[0].Value != 20 {
		t.Fatalf("after rollback concurrency = %d (%+v), want 20", v, r.RolledBack[0])
	}
	// Later a backlog with room on latency: the rise is kept when the
	// window after it is no worse.
	backlog := Observation{At: t0.Add(20 * time.Minute), P99: 300 * time.Millisecond, ObjectiveP99: time.Second, Availability: 0.999,
		Cases: 100, CostPerCase: 1e-5, OldestAge: time.Minute, Concurrency: 20, Reserved: 40}
	if r, _ = l.Step(backlog); len(r.Applied) != 1 || r.Applied[0].Value != 25 {
		t.Fatalf("step 4: %+v, want 20 → 25", r)
	}
	better := backlog
	better.At, better.Concurrency, better.OldestAge = backlog.At.Add(6*time.Minute), 25, time.Second
	if r, _ = l.Step(better); len(r.Kept) != 1 || l.Trial != nil {
		t.Fatalf("step 5: %+v, want the change kept", r)
	}
	re, err := Replay(map[Setting]int64{conc: 20}, l.Knowledge.Changes)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := re.Value(conc); v != 25 {
		t.Fatalf("replayed concurrency %d, want 25", v)
	}
}

func TestLoopModes(t *testing.T) {
	conc := Setting{MaxConcurrency, "work"}
	slow := Observation{At: t0, P99: 2 * time.Second, ObjectiveP99: time.Second, Availability: 0.999, Cases: 100, Concurrency: 20, Reserved: 40}
	g := Guardrails{Allow: []string{"maxConcurrency"}, Bounds: DefaultBounds(40)}
	rec := &Loop{Guard: g, RecommendOnly: true, Knowledge: NewKnowledge(map[Setting]int64{conc: 20})}
	if r, _ := rec.Step(slow); len(r.Open) != 1 || len(r.Applied) != 0 {
		t.Fatalf("recommendation-only: %+v", r)
	}
	g.KillSwitch = true
	kill := &Loop{Guard: g, Knowledge: NewKnowledge(map[Setting]int64{conc: 20})}
	if r, _ := kill.Step(slow); len(r.Applied) != 0 || len(r.Refused) != 1 {
		t.Fatalf("kill switch: %+v", r)
	}
	if v, _ := kill.Knowledge.Value(conc); v != 20 {
		t.Fatalf("kill switch changed concurrency to %d", v)
	}
}

// TestLoopLearnsFromARolledBackCut: latency over its objective from a slow
// dependency makes the loop cut concurrency; the queue then ages, so the cut
// is rolled back; within the loop's memory it does not cut again, and with
// the backlog still there it raises concurrency instead, which is kept.
func TestLoopLearnsFromARolledBackCut(t *testing.T) {
	conc := Setting{MaxConcurrency, "work"}
	l := &Loop{Guard: Guardrails{Allow: []string{"maxConcurrency"}, Bounds: DefaultBounds(16)}, Settle: time.Minute,
		Knowledge: NewKnowledge(map[Setting]int64{conc: 4})}
	slow := Observation{At: t0, P99: 3 * time.Second, ObjectiveP99: 2 * time.Second, Availability: 1, Cases: 100,
		OldestAge: 5 * time.Second, Concurrency: 4, Reserved: 16}
	r, err := l.Step(slow)
	if err != nil || len(r.Applied) != 1 || r.Applied[0].Rule != "concurrency-gradient" || r.Applied[0].Value != 3 {
		t.Fatalf("step 1: %+v, %v; want the gradient's cut 4 → 3", r, err)
	}
	aged := slow
	aged.At, aged.Concurrency, aged.OldestAge = t0.Add(2*time.Minute), 3, 45*time.Second
	r, err = l.Step(aged)
	if err != nil || len(r.RolledBack) != 1 || r.RolledBack[0].Value != 4 || !strings.Contains(r.RolledBack[0].Evidence[0].Note, "queue age") {
		t.Fatalf("step 2: %+v, %v; want the cut rolled back for the queue's age", r, err)
	}
	still := aged
	still.At, still.Concurrency = t0.Add(4*time.Minute), 4
	r, err = l.Step(still)
	if err != nil || len(r.Applied) != 1 || r.Applied[0].Rule != "concurrency-backlog" || r.Applied[0].Value != 5 {
		t.Fatalf("step 3: %+v, %v; want a rise 4 → 5 instead of another cut", r, err)
	}
	drained := still
	drained.At, drained.Concurrency, drained.OldestAge = t0.Add(6*time.Minute), 5, 10*time.Second
	if r, _ := l.Step(drained); len(r.Kept) != 1 {
		t.Fatalf("step 4: %+v, want the rise kept", r)
	}
	// Once the memory has passed, latency over its objective may cut again.
	later := drained
	later.At, later.OldestAge = t0.Add(40*time.Minute), 0
	if r, _ := l.Step(later); len(r.Applied) != 1 || r.Applied[0].Rule != "concurrency-gradient" {
		t.Fatalf("after the memory: %+v, want the gradient rule again", r)
	}
}

// TestLoopRefusesARolledBackDirection: a rule that proposes the direction
// just rolled back is refused while the memory lasts.
func TestLoopRefusesARolledBackDirection(t *testing.T) {
	batch := Setting{BatchSize, "work"}
	k := NewKnowledge(map[Setting]int64{batch: 4})
	up := Change{ID: "c1", Setting: batch, Previous: 4, Value: 5, At: t0}
	down := Change{ID: "rollback-c1", Setting: batch, Previous: 5, Value: 4, At: t0.Add(time.Minute), RollbackOf: "c1"}
	for _, c := range []Change{up, down} {
		if err := k.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	l := &Loop{Guard: Guardrails{Allow: []string{"batchSize"}, Bounds: DefaultBounds(16)}, Knowledge: k}
	backlog := Observation{At: t0.Add(5 * time.Minute), Availability: 1, Cases: 100, OldestAge: time.Minute, TargetAge: 30 * time.Second,
		BatchSize: 4, Concurrency: 4, Reserved: 4}
	r, err := l.Step(backlog)
	if err != nil || len(r.Applied) != 0 || len(r.Refused) != 1 || !strings.Contains(r.Refused[0].Reason, "rolled back") {
		t.Fatalf("within memory: %+v, %v; want the batch rise refused", r, err)
	}
	backlog.At = t0.Add(time.Hour)
	if r, _ := l.Step(backlog); len(r.Applied) != 1 || r.Applied[0].Value != 5 {
		t.Fatalf("after memory: %+v, want 4 → 5", r)
	}
}
