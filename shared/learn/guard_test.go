package learn

import (
	"errors"
	"maps"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// randomObservation draws a metric stream's next window around current
// settings k.
func randomObservation(r *rand.Rand, at time.Time, k *Knowledge, reserved int64) Observation {
	v := func(s Setting) int64 { x, _ := k.Value(s); return x }
	o := Observation{
		At: at, P99: time.Duration(r.IntN(3000)) * time.Millisecond, ObjectiveP99: time.Second,
		Availability: 1 - r.Float64()*0.01, Objective: 0.999, CostPerCase: 1e-5 * (1 + r.Float64()), Cases: int64(r.IntN(500)),
		QueueDepth: int64(r.IntN(10000)), OldestAge: time.Duration(r.IntN(120)) * time.Second,
		Concurrency: v(Setting{MaxConcurrency, "work"}), Reserved: reserved, BatchSize: v(Setting{BatchSize, "work"}),
		DeadlineShare: r.Float64() * 0.3,
	}
	calls := int64(r.IntN(200))
	o.Tasks = []TaskObservation{{Target: "payments/charge", Calls: calls, Failures: int64(r.IntN(int(calls) + 1)),
		Timeouts: int64(r.IntN(int(calls)/4 + 1)), RetriesSucceeded: r.Float64(), P99: time.Duration(r.IntN(5000)) * time.Millisecond,
		Attempts: v(Setting{RetryAttempts, "payments/charge"}), TimeoutMs: v(Setting{TimeoutMs, "payments/charge"})}}
	o.Hosts = []HostObservation{{Host: "bank.example", Calls: calls, Errors: int64(r.IntN(int(calls) + 1)),
		BreakerOpened: int64(r.IntN(5)), Threshold: v(Setting{BreakerThreshold, "bank.example"})}}
	return o
}

func initial() map[Setting]int64 {
	return map[Setting]int64{
		{MaxConcurrency, "work"}: 20, {BatchSize, "work"}: 10, {RetryAttempts, "payments/charge"}: 3,
		{TimeoutMs, "payments/charge"}: 2000, {BreakerThreshold, "bank.example"}: 5,
	}
}

// TestGuardrailsProperties runs the plan and the guardrails over random
// metric streams and checks, for every admitted change: inside the bounds,
// at most one step from the previous value, outside the cooldowns, with
// evidence; with the kill switch on nothing changes; every rollback
// restores the previous value exactly; replaying the changes gives the
// same settings.
func TestGuardrailsProperties(t *testing.T) {
	const reserved = 50
	admitted, rolledBack := 0, 0
	defer func() {
		t.Logf("%d changes admitted, %d rolled back over 300 random streams", admitted, rolledBack)
		if admitted == 0 || rolledBack == 0 {
			t.Error("the streams exercised no change or no rollback")
		}
	}()
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 42))
		kill := seed%10 == 0
		g := Guardrails{KillSwitch: kill, Allow: []string{"maxConcurrency", "batchSize", "retryAttempts", "timeoutMs", "breakerThreshold"},
			Cooldown: time.Minute, ReduceCooldown: 5 * time.Minute, Bounds: DefaultBounds(reserved)}
		k := NewKnowledge(initial())
		at := t0
		for step := range 120 {
			at = at.Add(time.Duration(30+r.IntN(90)) * time.Second)
			o := randomObservation(r, at, k, reserved)
			for _, rec := range Plan(o) {
				before := k.Values()
				c, err := g.Admit(rec, k, at, o.Outcome())
				if err != nil {
					if kill && !errors.Is(err, ErrKillSwitch) {
						t.Fatalf("seed %d: kill switch on, got %v", seed, err)
					}
					continue
				}
				if kill {
					t.Fatalf("seed %d: change %v admitted with the kill switch on", seed, c)
				}
				b := g.Bounds[c.Setting.Kind]
				if c.Value < b.Min || c.Value > b.Max {
					t.Fatalf("seed %d: %s = %d outside [%d, %d]", seed, c.Setting.Key(), c.Value, b.Min, b.Max)
				}
				if d := c.Value - c.Previous; d > g.step(c.Previous) || -d > g.step(c.Previous) || d == 0 {
					t.Fatalf("seed %d: step %d → %d exceeds ±25%%", seed, c.Previous, c.Value)
				}
				if len(c.Evidence) == 0 {
					t.Fatalf("seed %d: change without evidence", seed)
				}
				if last, ok := k.LastChange(c.Setting); ok {
					if at.Sub(last.At) < g.Cooldown || (c.Value < c.Previous && at.Sub(last.At) < g.ReduceCooldown) {
						t.Fatalf("seed %d: %s changed inside its cooldown", seed, c.Setting.Key())
					}
				}
				if err := k.Apply(c); err != nil {
					t.Fatal(err)
				}
				admitted++
				if step%7 == 0 { // roll some back: the exact previous value returns
					rb, err := g.Rollback(c, k, at, Evidence{Metric: "P99ms", Value: 1, Threshold: 0})
					if err != nil {
						t.Fatal(err)
					}
					if err := k.Apply(rb); err != nil {
						t.Fatal(err)
					}
					rolledBack++
					if !maps.Equal(k.Values(), before) {
						t.Fatalf("seed %d: rollback left %v, want %v", seed, k.Values(), before)
					}
				}
			}
		}
		re, err := Replay(initial(), k.Changes)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(re.Values(), k.Values()) {
			t.Fatalf("seed %d: replay gives %v, want %v", seed, re.Values(), k.Values())
		}
	}
}

func TestAdmitRefusals(t *testing.T) {
	s := Setting{MaxConcurrency, "work"}
	ev := []Evidence{{Metric: "P99ms", Value: 2000, Threshold: 1000}}
	g := Guardrails{Allow: []string{"maxConcurrency"}, Bounds: DefaultBounds(40)}
	k := NewKnowledge(map[Setting]int64{s: 20})
	cases := []struct {
		name string
		g    Guardrails
		r    Recommendation
		want error
		to   int64
	}{
		{"clamped to one step", g, Recommendation{Setting: s, From: 20, To: 5, Evidence: ev}, nil, 15},
		{"clamped to reserved", g, Recommendation{Setting: s, From: 20, To: 90, Evidence: ev}, nil, 25},
		{"no evidence", g, Recommendation{Setting: s, From: 20, To: 15}, ErrNoEvidence, 0},
		{"kill switch", Guardrails{KillSwitch: true, Allow: g.Allow, Bounds: g.Bounds}, Recommendation{Setting: s, From: 20, To: 15, Evidence: ev}, ErrKillSwitch, 0},
		{"not allowed", g, Recommendation{Setting: Setting{BatchSize, "work"}, From: 10, To: 9, Evidence: ev}, ErrNotAllowed, 0},
		{"stale", g, Recommendation{Setting: s, From: 30, To: 25, Evidence: ev}, ErrStale, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.g.Admit(c.r, k, t0, Outcome{})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if err == nil && got.Value != c.to {
				t.Fatalf("value = %d, want %d", got.Value, c.to)
			}
		})
	}
	// Cooldowns: a rise a minute later is fine, a reduction is not.
	c, _ := g.Admit(Recommendation{Setting: s, From: 20, To: 22, Evidence: ev}, k, t0, Outcome{})
	if err := k.Apply(c); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(Recommendation{Setting: s, From: 22, To: 20, Evidence: ev}, k, t0.Add(2*time.Minute), Outcome{}); !errors.Is(err, ErrCooldown) {
		t.Fatalf("reduction 2 min after a change: %v, want ErrCooldown", err)
	}
	if _, err := g.Admit(Recommendation{Setting: s, From: 22, To: 24, Evidence: ev}, k, t0.Add(30*time.Second), Outcome{}); !errors.Is(err, ErrCooldown) {
		t.Fatalf("rise 30 s after a change: %v, want ErrCooldown", err)
	}
	if _, err := g.Admit(Recommendation{Setting: s, From: 22, To: 20, Evidence: ev}, k, t0.Add(6*time.Minute), Outcome{}); err != nil {
		t.Fatalf("reduction 6 min after: %v", err)
	}
}

func TestJudge(t *testing.T) {
	base := Outcome{Cases: 100, Availability: 0.999, P99: time.Second, CostPerCase: 1e-5}
	cases := []struct {
		name      string
		after     Outcome
		worse, ok bool
	}{
		{"same", base, false, true},
		{"p99 up 20 %", Outcome{Cases: 100, Availability: 0.999, P99: 1200 * time.Millisecond, CostPerCase: 1e-5}, true, true},
		{"availability down", Outcome{Cases: 100, Availability: 0.9, P99: time.Second, CostPerCase: 1e-5}, true, true},
		{"one fault more, within chance", Outcome{Cases: 150, Availability: 1 - 1.0/150, P99: time.Second, CostPerCase: 1e-5}, false, true},
		{"cost up 50 %", Outcome{Cases: 100, Availability: 0.999, P99: time.Second, CostPerCase: 1.5e-5}, true, true},
		{"better", Outcome{Cases: 100, Availability: 1, P99: 500 * time.Millisecond, CostPerCase: 1e-5}, false, true},
		{"too few cases", Outcome{Cases: 3, Availability: 0.5}, false, false},
		{"queue aged past the slack", Outcome{Cases: 100, Availability: 0.999, P99: time.Second, CostPerCase: 1e-5, QueueAge: 40 * time.Second}, true, true},
		{"queue aged within the slack", Outcome{Cases: 100, Availability: 0.999, P99: time.Second, CostPerCase: 1e-5, QueueAge: 8 * time.Second}, false, true},
	}
	aged := base
	aged.QueueAge = time.Minute
	if worse, why, _ := Judge(aged, Outcome{Cases: 100, Availability: 0.999, P99: time.Second, CostPerCase: 1e-5, QueueAge: 70 * time.Second}, Tolerance{}); worse {
		t.Errorf("a queue a sixth older judged worse (%s), want within the relative tolerance", why)
	}
	// Under a backlog in both windows the throughput is judged, not the
	// age, which follows the arrivals.
	busy := Outcome{Cases: 100, Availability: 0.999, P99: time.Second, QueueAge: time.Minute, QueueDepth: 200}
	for _, c := range []struct {
		name  string
		after Outcome
		worse bool
	}{
		{"older queue, more throughput", Outcome{Cases: 150, Availability: 0.999, P99: time.Second, QueueAge: 3 * time.Minute, QueueDepth: 600}, false},
		{"less throughput", Outcome{Cases: 80, Availability: 0.999, P99: time.Second, QueueAge: time.Minute, QueueDepth: 300}, true},
		{"slower cases, more throughput", Outcome{Cases: 150, Availability: 0.999, P99: 3 * time.Second, QueueAge: time.Minute, QueueDepth: 300}, false},
		{"less throughput, fewer completed", Outcome{Cases: 100, Availability: 0.9, P99: time.Second, QueueAge: time.Minute, QueueDepth: 300}, true},
		{"backlog gone, younger queue", Outcome{Cases: 90, Availability: 0.999, P99: time.Second, QueueAge: 0, QueueDepth: 0}, false},
	} {
		if worse, why, _ := Judge(busy, c.after, Tolerance{}); worse != c.worse {
			t.Errorf("backlogged, %s: worse %v (%s), want %v", c.name, worse, why, c.worse)
		}
	}
	for _, c := range cases {
		worse, why, ok := Judge(base, c.after, Tolerance{})
		if worse != c.worse || ok != c.ok {
			t.Errorf("%s: worse %v (%s), ok %v; want %v, %v", c.name, worse, why, ok, c.worse, c.ok)
		}
	}
}
