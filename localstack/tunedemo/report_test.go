package tunedemo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/learn"
)

func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 3}, {0.99, 5}, {0.2, 1}, {1, 5}} {
		if got := Quantile(ds, c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if Quantile(nil, 0.99) != 0 {
		t.Error("the quantile of nothing is not 0")
	}
}

// TestMeasure: outcomes are counted, waits run from the start message, and a
// minute breaches when its ended cases' p99 wait or availability misses the
// objective.
func TestMeasure(t *testing.T) {
	m0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var cs []Ended
	// Minute 0: ten quick completions. Minute 1: ten that waited 20 s.
	// Minute 2: nine completions and one fault (90 %). One never ended.
	for i := range 10 {
		cs = append(cs, Ended{Sent: m0, Started: m0.Add(time.Second), Ended: m0.Add(2*time.Second + time.Duration(i)*100*time.Millisecond), Status: history.CaseCompleted})
		cs = append(cs, Ended{Sent: m0.Add(50 * time.Second), Started: m0.Add(69 * time.Second), Ended: m0.Add(70 * time.Second), Status: history.CaseCompleted})
		st := history.CaseCompleted
		if i == 0 {
			st = history.CaseFaulted
		}
		cs = append(cs, Ended{Sent: m0.Add(125 * time.Second), Started: m0.Add(126 * time.Second), Ended: m0.Add(127 * time.Second), Status: st})
	}
	cs = append(cs, Ended{Sent: m0})
	f := Measure(cs, Objective{Availability: 0.95, P99: 5 * time.Second})
	if f.Cases != 31 || f.Completed != 29 || f.Faulted != 1 || f.Open != 1 {
		t.Fatalf("counts %+v", f)
	}
	if f.Minutes != 3 || f.BreachMinutes != 2 {
		t.Errorf("breach minutes %d of %d, want 2 of 3 (a slow minute and one under the availability objective)", f.BreachMinutes, f.Minutes)
	}
	if f.P99Wait != 20*time.Second || f.P99Case != 1900*time.Millisecond {
		t.Errorf("p99 wait %s, case %s; want 20s and 1.9s", f.P99Wait, f.P99Case)
	}
}

func TestPrintShowsRollbacksAndTraces(t *testing.T) {
	conc := learn.Setting{Kind: learn.MaxConcurrency, Target: "work"}
	on := Figures{Loop: true, Concurrency: []Sample{{0, 4}, {5, 4}, {60, 2}, {120, 4}, {180, 6}},
		Changes: []Change{
			{At: 2 * time.Minute, Change: learn.Change{ID: "c1", Setting: conc, Previous: 4, Value: 2, Rule: "concurrency-gradient"}, Verdict: "rolled back (queue age 0s → 40s)"},
			{At: 3 * time.Minute, Change: learn.Change{ID: "rollback-c1", Setting: conc, Previous: 2, Value: 4, Rule: "rollback", RollbackOf: "c1"}},
		}}
	var b bytes.Buffer
	Print(&b, Objective{Availability: 0.95, P99: 5 * time.Second}, Figures{}, on)
	out := b.String()
	for _, want := range []string{"4 → 2 → 4 → 6", "+02:00  maxConcurrency:work 4 → 2  concurrency-gradient → rolled back (queue age 0s → 40s)",
		"ROLLBACK of c1: maxConcurrency:work 2 → 4", "loop off:\n  none"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
