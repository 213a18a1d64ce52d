// Package sla computes service levels from verified case outcomes: per
// workflow and minute, outcome counts and a mergeable latency sketch
// (DDSketch, 1 % relative accuracy); over any window, availability, latency
// quantiles from merged sketches (never averaged percentiles), the error
// budget left, and the multi-window burn-rate alerts of the SRE Workbook. It
// is pure: the scheduled job and the verifier feed it and store its results.
package sla

import (
	"errors"
	"fmt"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the latency sketches' guarantee: a quantile read from a
// sketch is within 1 % of the value of the same rank in the data.
const RelativeAccuracy = 0.01

// Outcome is how a case ended, as its receipts show.
type Outcome int

// Outcomes. A fault the workflow raises on purpose (a `raise` task, a
// business error of a called service that the workflow does not catch) is a
// correct answer: it counts as good. Platform faults, timeouts and dead
// letters are the platform failing the user.
const (
	Completed Outcome = iota
	WorkflowFaulted
	PlatformFaulted
	TimedOut
	DeadLettered
)

// WorkflowKey is the Workflow key of a workflow's service level: its
// namespace and name as namespace/name (the DSL names a workflow by both; two
// namespaces may hold a workflow of one name). A namespace left empty, by
// positions recorded before namespaces were kept, gives the name alone.
func WorkflowKey(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// CanaryProbes is the Workflow key of the canary's service level, the
// second SLI: one outcome per judged probe, so that it holds when real
// traffic is quiet. It cannot name a workflow (the DSL's names are lower
// case) and the platform's own level (every case) leaves it out.
const CanaryProbes = "CANARY"

// Unattributed is the Workflow key of outcomes that belong to no verified
// case: messages dead-lettered before their case's genesis receipt was
// written, whose workflow only the message claims. The platform's level
// counts them; no workflow's does.
const Unattributed = "UNATTRIBUTED"

// Counts are outcome counts over some span of time.
type Counts struct {
	Completed       int64 `json:"completed"`
	WorkflowFaulted int64 `json:"workflowFaulted"`
	PlatformFaulted int64 `json:"platformFaulted"`
	TimedOut        int64 `json:"timedOut"`
	DeadLettered    int64 `json:"deadLettered"`
}

// Record counts one outcome.
func (c *Counts) Record(o Outcome) {
	switch o {
	case Completed:
		c.Completed++
	case WorkflowFaulted:
		c.WorkflowFaulted++
	case PlatformFaulted:
		c.PlatformFaulted++
	case TimedOut:
		c.TimedOut++
	case DeadLettered:
		c.DeadLettered++
	}
}

// Add adds other's counts to c.
func (c *Counts) Add(o Counts) {
	c.Completed += o.Completed
	c.WorkflowFaulted += o.WorkflowFaulted
	c.PlatformFaulted += o.PlatformFaulted
	c.TimedOut += o.TimedOut
	c.DeadLettered += o.DeadLettered
}

// Good counts the cases the platform served correctly.
func (c Counts) Good() int64 { return c.Completed + c.WorkflowFaulted }

// Bad counts the cases the platform failed.
func (c Counts) Bad() int64 { return c.PlatformFaulted + c.TimedOut + c.DeadLettered }

// Valid counts every case that ended.
func (c Counts) Valid() int64 { return c.Good() + c.Bad() }

// Availability is good / valid, and 1 when nothing ended.
func (c Counts) Availability() float64 {
	if c.Valid() == 0 {
		return 1
	}
	return float64(c.Good()) / float64(c.Valid())
}

// NewSketch returns an empty latency sketch with the package's accuracy.
func NewSketch() *ddsketch.DDSketch {
	s, err := ddsketch.LogUnboundedDenseDDSketch(RelativeAccuracy)
	if err != nil {
		panic(err) // the accuracy is a valid constant
	}
	return s
}

// sketchMapping is the index mapping every sketch of the package uses, so
// that stored sketches omit it and any two merge.
var sketchMapping = func() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(RelativeAccuracy)
	if err != nil {
		panic(err)
	}
	return m
}()

// Bucket is one workflow's minute: outcome counts and the latency sketch of
// the cases that ended in it (milliseconds from submission to the terminal
// receipt).
type Bucket struct {
	Workflow string // WorkflowKey, CanaryProbes or Unattributed
	Minute   time.Time
	Counts   Counts
	Latency  *ddsketch.DDSketch
}

// NewBucket returns an empty bucket for the minute that holds t.
func NewBucket(workflow string, t time.Time) *Bucket {
	return &Bucket{Workflow: workflow, Minute: t.UTC().Truncate(time.Minute), Latency: NewSketch()}
}

// Observe records one ended case.
func (b *Bucket) Observe(o Outcome, latency time.Duration) error {
	b.Counts.Record(o)
	if latency < 0 {
		return fmt.Errorf("sla: negative latency %v", latency)
	}
	return b.Latency.Add(float64(latency) / float64(time.Millisecond))
}

// Merge adds another bucket's counts and latencies. Merging is exact: the
// merged sketch equals the sketch of all the values.
func (b *Bucket) Merge(o *Bucket) error {
	b.Counts.Add(o.Counts)
	if o.Latency == nil {
		return nil
	}
	return b.Latency.MergeWith(o.Latency)
}

// EncodeSketch serializes a sketch compactly (its mapping is implied).
func EncodeSketch(s *ddsketch.DDSketch) []byte {
	var b []byte
	s.Encode(&b, true)
	return b
}

// DecodeSketch reads a sketch that EncodeSketch wrote.
func DecodeSketch(b []byte) (*ddsketch.DDSketch, error) {
	s, err := ddsketch.DecodeDDSketch(b, store.DenseStoreConstructor, sketchMapping)
	if err != nil {
		return nil, fmt.Errorf("sla: decode sketch: %w", err)
	}
	return s, nil
}

// Quantile reads a latency quantile from a sketch; ok is false when the
// sketch is empty.
func Quantile(s *ddsketch.DDSketch, q float64) (time.Duration, bool) {
	if s == nil || s.IsEmpty() {
		return 0, false
	}
	v, err := s.GetValueAtQuantile(q)
	if err != nil {
		return 0, false
	}
	return time.Duration(v * float64(time.Millisecond)), true
}

// Objective is what a workflow (or the whole platform) promises.
type Objective struct {
	Availability float64       `json:"availability"` // e.g. 0.999
	P50          time.Duration `json:"p50"`
	P99          time.Duration `json:"p99"`
	Window       time.Duration `json:"window"` // the error budget's rolling window
}

// DefaultObjective is 99.9 % availability, p50 100 ms and p99 1 s over 30 days.
func DefaultObjective() Objective {
	return Objective{Availability: 0.999, P50: 100 * time.Millisecond, P99: time.Second, Window: 30 * 24 * time.Hour}
}

// Validate checks that an objective can be evaluated.
func (o Objective) Validate() error {
	var errs []error
	if !(o.Availability > 0 && o.Availability < 1) {
		errs = append(errs, fmt.Errorf("availability %v: want a fraction strictly between 0 and 1", o.Availability))
	}
	if o.P50 <= 0 || o.P99 < o.P50 {
		errs = append(errs, fmt.Errorf("latency p50 %v, p99 %v: want 0 < p50 <= p99", o.P50, o.P99))
	}
	if o.Window < time.Minute {
		errs = append(errs, fmt.Errorf("window %v: want at least a minute", o.Window))
	}
	return errors.Join(errs...)
}

// Budget is the error budget over the objective's window.
type Budget struct {
	// Allowed is how many bad cases the objective allows for the cases seen.
	Allowed float64 `json:"allowed"`
	// Spent is how many bad cases there were.
	Spent int64 `json:"spent"`
	// Remaining is the fraction of the budget left: 1 untouched, 0 spent,
	// negative when overspent.
	Remaining float64 `json:"remaining"`
}

// ErrorBudget computes the budget left for counts over the objective's window.
func ErrorBudget(o Objective, c Counts) Budget {
	allowed := (1 - o.Availability) * float64(c.Valid())
	b := Budget{Allowed: allowed, Spent: c.Bad(), Remaining: 1}
	if allowed > 0 {
		b.Remaining = 1 - float64(c.Bad())/allowed
	}
	return b
}

// BurnRate is how fast counts spend the budget: the bad fraction over the
// fraction the objective allows (1: the budget lasts exactly the window).
func BurnRate(c Counts, availability float64) float64 {
	if c.Valid() == 0 || availability >= 1 {
		return 0
	}
	return (float64(c.Bad()) / float64(c.Valid())) / (1 - availability)
}
