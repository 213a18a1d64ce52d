package sla

import (
	"fmt"
	"time"
)

// Report is one objective evaluated at a point in time.
type Report struct {
	Workflow     string    `json:"workflow"` // "" for the whole platform
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	Objective    Objective `json:"objective"`
	Counts       Counts    `json:"counts"`
	Availability float64   `json:"availability"`
	// Latency quantiles of the window's merged sketch; Latency is false when
	// no case ended in the window.
	Latency       bool          `json:"latency"`
	P50           time.Duration `json:"p50"`
	P99           time.Duration `json:"p99"`
	P999          time.Duration `json:"p999"`
	LatencyBreach bool          `json:"latencyBreach"`
	Budget        Budget        `json:"budget"`
	Burns         []Burn        `json:"burns"`
}

// Alerts are the report's firing rules.
func (r Report) Alerts() []Alert {
	var out []Alert
	for _, b := range r.Burns {
		if b.Firing {
			out = append(out, Alert{Rule: b.Rule, LongBurn: b.Long, ShortBurn: b.Short, LongEvents: b.LongEvents})
		}
	}
	return out
}

// Compute evaluates an objective at end over buckets (any workflows: pass one
// workflow's buckets for its report, all of them for the platform's). Buckets
// outside [end-window, end) count only towards the burn-rate windows that
// reach them.
func Compute(workflow string, o Objective, buckets []*Bucket, end time.Time, rules []Rule, g Guard) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, fmt.Errorf("sla: objective of %q: %w", workflow, err)
	}
	end = end.UTC().Truncate(time.Minute)
	r := Report{Workflow: workflow, From: end.Add(-o.Window), To: end, Objective: o}
	series := Series{}
	merged := NewSketch()
	for _, b := range buckets {
		series.Add(b.Minute, b.Counts)
		if b.Minute.Before(r.From) || !b.Minute.Before(end) {
			continue
		}
		r.Counts.Add(b.Counts)
		if b.Latency != nil {
			if err := merged.MergeWith(b.Latency); err != nil {
				return Report{}, fmt.Errorf("sla: merge %s %s: %w", b.Workflow, b.Minute.Format(time.RFC3339), err)
			}
		}
	}
	r.Availability = r.Counts.Availability()
	r.Budget = ErrorBudget(o, r.Counts)
	r.Burns = Burns(series, end, o.Availability, rules, g)
	if p50, ok := Quantile(merged, 0.5); ok {
		r.Latency = true
		r.P50 = p50
		r.P99, _ = Quantile(merged, 0.99)
		r.P999, _ = Quantile(merged, 0.999)
		r.LatencyBreach = r.P50 > o.P50 || r.P99 > o.P99
	}
	return r, nil
}
