package learn

import (
	"fmt"
	"math"
	"time"
)

// Observation is what the monitor saw over the last window: the
// platform's service level and cost (from the SLA and cost jobs), the work
// queue, and per task and dependency what the receipts and metrics show.
type Observation struct {
	At           time.Time
	P99          time.Duration // platform p99 over the window
	ObjectiveP99 time.Duration
	Availability float64
	Objective    float64 // availability objective
	CostPerCase  float64
	Cases        int64

	QueueDepth  int64
	OldestAge   time.Duration // age of the oldest message in the work queue
	TargetAge   time.Duration // what queueing the operator accepts (default 30 s)
	Concurrency int64         // the mapping's maximum concurrency now
	Reserved    int64         // the executor's reserved concurrency (the upper bound)
	BatchSize   int64
	// DeadlineShare is the share of executor invocations that ran out of
	// time and handed work back (resume continuations).
	DeadlineShare float64

	Tasks []TaskObservation
	Hosts []HostObservation

	// Undone is, by setting key, the directions in which a change was rolled
	// back recently because the window after it was worse; Loop.Step fills
	// it from the knowledge.
	Undone map[string]Undone
}

// TaskObservation is one task's calls over the window.
type TaskObservation struct {
	Target   string // "workflow/task"
	Calls    int64
	Failures int64 // attempts that failed
	Timeouts int64
	// RetriesSucceeded is the share of retried calls that a later attempt
	// completed.
	RetriesSucceeded float64
	P99              time.Duration // latency of the task's calls
	Attempts         int64         // current maximum attempts
	TimeoutMs        int64         // current timeout
}

// HostObservation is one dependency's calls over the window.
type HostObservation struct {
	Host          string
	Calls, Errors int64
	BreakerOpened int64
	Threshold     int64 // current breaker threshold
}

// Undone are the directions of a setting's recent rollbacks.
type Undone struct{ Up, Down bool }

// Blocks reports whether a move from one value to another goes a way that
// was rolled back.
func (u Undone) Blocks(from, to int64) bool { return (to > from && u.Up) || (to < from && u.Down) }

// Outcome is the observation's objective figures.
func (o Observation) Outcome() Outcome {
	return Outcome{Cases: o.Cases, Availability: o.Availability, P99: o.P99, CostPerCase: o.CostPerCase, QueueAge: o.OldestAge, QueueDepth: o.QueueDepth}
}

func rate(n, of int64) float64 {
	if of <= 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// Plan turns one observation into recommendations, each with the evidence
// it rests on and its expected effect. It never proposes a value outside
// the kinds' natural bounds; the guardrails bound the step.
func Plan(o Observation) []Recommendation {
	var out []Recommendation
	add := func(rule string, s Setting, from, to int64, ev []Evidence, eff Effect) {
		if to == from || len(ev) == 0 {
			return
		}
		out = append(out, Recommendation{ID: recommendationID(s, from, to, o.At), Rule: rule, Setting: s,
			From: from, To: to, Evidence: ev, Expected: eff, At: o.At})
	}
	out = append(out, planConcurrency(o)...)
	if o.BatchSize > 0 {
		s := Setting{BatchSize, "work"}
		switch {
		case o.DeadlineShare > 0.1:
			add("batch-deadline", s, o.BatchSize, max(1, o.BatchSize*3/4),
				[]Evidence{{Metric: "DeadlineShare", Value: o.DeadlineShare, Threshold: 0.1, Note: "invocations run out of time"}},
				Effect{Metric: "DeadlineShare", Direction: -1, Note: "smaller batches finish within the invocation"})
		case o.DeadlineShare == 0 && o.OldestAge > targetAge(o) && o.BatchSize < 10:
			add("batch-backlog", s, o.BatchSize, o.BatchSize+1,
				[]Evidence{{Metric: "OldestAge", Value: o.OldestAge.Seconds(), Threshold: targetAge(o).Seconds()}},
				Effect{Metric: "OldestAge", Direction: -1, Note: "more messages per invocation drain the backlog"})
		}
	}
	for _, t := range o.Tasks {
		fr := rate(t.Failures, t.Calls)
		if t.Calls >= 20 && t.TimeoutMs > 0 && rate(t.Timeouts, t.Calls) > 0.05 && t.P99 >= time.Duration(t.TimeoutMs)*time.Millisecond*8/10 {
			add("timeout-headroom", Setting{TimeoutMs, t.Target}, t.TimeoutMs, int64(math.Ceil(float64(t.P99.Milliseconds())*1.5)),
				[]Evidence{{Metric: "TimeoutRate", Value: rate(t.Timeouts, t.Calls), Threshold: 0.05},
					{Metric: "TaskP99ms", Value: float64(t.P99.Milliseconds()), Threshold: float64(t.TimeoutMs) * 0.8}},
				Effect{Metric: "TimeoutRate", Direction: -1, Note: "calls that finish slowly are no longer cut off"})
		}
		if t.Calls >= 20 && t.Attempts > 0 && fr > 0.05 {
			switch {
			case t.RetriesSucceeded >= 0.5:
				add("retry-transient", Setting{RetryAttempts, t.Target}, t.Attempts, t.Attempts+1,
					[]Evidence{{Metric: "FailureRate", Value: fr, Threshold: 0.05}, {Metric: "RetriesSucceeded", Value: t.RetriesSucceeded, Threshold: 0.5}},
					Effect{Metric: "Availability", Direction: +1, Note: "transient failures recover on one more attempt"})
			case t.RetriesSucceeded < 0.1 && t.Attempts > 1:
				add("retry-futile", Setting{RetryAttempts, t.Target}, t.Attempts, t.Attempts-1,
					[]Evidence{{Metric: "FailureRate", Value: fr, Threshold: 0.05}, {Metric: "RetriesSucceeded", Value: t.RetriesSucceeded, Threshold: 0.1}},
					Effect{Metric: "CostPerCase", Direction: -1, Note: "retries that do not help stop costing and loading the dependency"})
			}
		}
	}
	for _, h := range o.Hosts {
		er := rate(h.Errors, h.Calls)
		s := Setting{BreakerThreshold, h.Host}
		switch {
		case h.Calls >= 20 && er > 0.3 && h.BreakerOpened == 0 && h.Threshold > 2:
			add("breaker-sooner", s, h.Threshold, max(2, h.Threshold*3/4),
				[]Evidence{{Metric: "HostErrorRate", Value: er, Threshold: 0.3}, {Metric: "BreakerOpened", Value: 0, Threshold: 1}},
				Effect{Metric: "P99", Direction: -1, Note: "a failing dependency is cut off sooner instead of waited on"})
		case h.BreakerOpened >= 3 && er < 0.05:
			add("breaker-flapping", s, h.Threshold, h.Threshold+max(1, h.Threshold/4),
				[]Evidence{{Metric: "BreakerOpened", Value: float64(h.BreakerOpened), Threshold: 3}, {Metric: "HostErrorRate", Value: er, Threshold: 0.05}},
				Effect{Metric: "Availability", Direction: +1, Note: "a healthy dependency is not cut off by chance failures"})
		}
	}
	return out
}

func targetAge(o Observation) time.Duration {
	if o.TargetAge > 0 {
		return o.TargetAge
	}
	return 30 * time.Second
}

// planConcurrency is a gradient rule in the style of Netflix's
// concurrency-limits: when latency exceeds its objective or a dependency
// fails, the limit is scaled by objective/observed (at least 0.5); when the
// queue ages with latency well inside the objective, or after a cut was
// rolled back as worse (the latency is not load-bound), it grows by √limit.
// The result lies in [2, reserved].
func planConcurrency(o Observation) []Recommendation {
	if o.Concurrency <= 0 || o.Reserved < 2 {
		return nil
	}
	s := Setting{MaxConcurrency, "work"}
	lim := o.Concurrency
	var to int64
	var ev []Evidence
	var eff Effect
	var rule string
	worstHost := 0.0
	for _, h := range o.Hosts {
		if h.Calls >= 20 {
			worstHost = max(worstHost, rate(h.Errors, h.Calls))
		}
	}
	cutFailed := o.Undone[s.Key()].Down
	switch {
	case o.ObjectiveP99 > 0 && o.P99 > o.ObjectiveP99 && !cutFailed:
		g := max(0.5, min(0.9, float64(o.ObjectiveP99)/float64(o.P99)))
		to, rule = int64(math.Floor(float64(lim)*g)), "concurrency-gradient"
		ev = []Evidence{{Metric: "P99ms", Value: float64(o.P99.Milliseconds()), Threshold: float64(o.ObjectiveP99.Milliseconds())}}
		eff = Effect{Metric: "P99", Direction: -1, Note: "less concurrent load on a saturated path"}
	case worstHost > 0.5:
		to, rule = lim/2, "concurrency-dependency"
		ev = []Evidence{{Metric: "HostErrorRate", Value: worstHost, Threshold: 0.5}}
		eff = Effect{Metric: "DLQMessages", Direction: -1, Note: "fewer calls into a failing dependency"}
	case o.OldestAge > targetAge(o) && (o.ObjectiveP99 == 0 || o.P99 <= o.ObjectiveP99*8/10):
		to, rule = lim+int64(math.Ceil(math.Sqrt(float64(lim)))), "concurrency-backlog"
		ev = []Evidence{{Metric: "OldestAge", Value: o.OldestAge.Seconds(), Threshold: targetAge(o).Seconds()},
			{Metric: "P99ms", Value: float64(o.P99.Milliseconds()), Threshold: float64(o.ObjectiveP99.Milliseconds()) * 0.8}}
		eff = Effect{Metric: "OldestAge", Direction: -1, Note: "more executors drain the backlog while latency has room"}
	case o.OldestAge > targetAge(o) && cutFailed:
		// Cutting made things worse: the latency is not the platform's
		// load (a slow dependency), so more executors drain the backlog.
		to, rule = lim+int64(math.Ceil(math.Sqrt(float64(lim)))), "concurrency-backlog"
		ev = []Evidence{{Metric: "OldestAge", Value: o.OldestAge.Seconds(), Threshold: targetAge(o).Seconds()},
			{Metric: "CutRolledBack", Value: 1, Threshold: 1, Note: "a recent cut of concurrency was rolled back as worse"}}
		eff = Effect{Metric: "OldestAge", Direction: -1, Note: "more executors drain the backlog; latency is not load-bound"}
	default:
		return nil
	}
	to = min(max(to, 2), o.Reserved)
	if to == lim {
		return nil
	}
	return []Recommendation{{ID: recommendationID(s, lim, to, o.At), Rule: rule, Setting: s, From: lim, To: to, Evidence: ev, Expected: eff, At: o.At}}
}

// String is a one-line account of the recommendation.
func (r Recommendation) String() string {
	return fmt.Sprintf("%s %s %d → %d (%s)", r.ID, r.Setting.Key(), r.From, r.To, r.Rule)
}
