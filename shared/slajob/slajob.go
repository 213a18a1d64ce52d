// Package slajob is the scheduled SLA job: under its lease it reads the
// service-level buckets the verifier wrote, computes a report per workflow
// and for the whole platform (package sla), stores the reports and publishes
// them as metrics. Running it twice for the same minute stores the same
// reports again; two runs at once compute once.
package slajob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/telemetry"
)

// FunctionName is the job's short name: its lease and its metrics'
// Function dimension.
const FunctionName = "sla"

// Overall is the Workflow dimension value (and report key) of the whole
// platform's report.
const Overall = "ALL"

// Buckets reads service-level buckets.
type Buckets interface {
	Buckets(ctx context.Context, from, to time.Time) ([]*sla.Bucket, error)
}

// Reports stores computed reports.
type Reports interface {
	PutReports(ctx context.Context, rs []sla.Report) error
}

// Lease is the job's mutual exclusion.
type Lease interface {
	Acquire(ctx context.Context, job, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, job, owner string) error
}

// Config says what to promise and how to alert.
type Config struct {
	// Default is the objective of workflows without their own (and of the
	// platform); zero means sla.DefaultObjective.
	Default sla.Objective
	// Objectives are per workflow.
	Objectives map[string]sla.Objective
	// Rules are the burn-rate alerts; nil means sla.WorkbookRules.
	Rules []sla.Rule
	Guard sla.Guard
	// LeaseTTL bounds a run (default 5 minutes).
	LeaseTTL time.Duration
}

// Deps are the job's collaborators.
type Deps struct {
	Buckets Buckets
	Reports Reports
	Lease   Lease
	Log     *slog.Logger
	Out     io.Writer // where EMF metrics go (default standard output)
	Now     func() time.Time
	Owner   func() string // this run's lease owner (default: a time-based id)
}

// Job is the SLA job.
type Job struct {
	cfg Config
	d   Deps
}

// New returns the job; it checks every objective.
func New(cfg Config, d Deps) (*Job, error) {
	if d.Buckets == nil || d.Reports == nil || d.Lease == nil {
		return nil, errors.New("slajob: buckets, reports and lease are required")
	}
	if cfg.Default == (sla.Objective{}) {
		cfg.Default = sla.DefaultObjective()
	}
	if cfg.Rules == nil {
		cfg.Rules = sla.WorkbookRules()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Minute
	}
	errs := []error{}
	if err := cfg.Default.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default objective: %w", err))
	}
	for wf, o := range cfg.Objectives {
		if err := o.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("objective of %s: %w", wf, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("slajob: %w", err)
	}
	if d.Log == nil {
		d.Log = telemetry.NewLogger(nil, nil)
	}
	if d.Out == nil {
		d.Out = os.Stdout
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Owner == nil {
		d.Owner = func() string { return "run-" + strconv.FormatInt(time.Now().UnixNano(), 36) }
	}
	return &Job{cfg: cfg, d: d}, nil
}

// Result is what one run did.
type Result struct {
	Skipped bool         `json:"skipped,omitempty"` // another run held the lease
	At      time.Time    `json:"at"`
	Buckets int          `json:"buckets"`
	Reports []sla.Report `json:"reports,omitempty"`
}

// Handler is the scheduled function's entry point.
func (j *Job) Handler(ctx context.Context, _ json.RawMessage) (Result, error) { return j.Run(ctx) }

func (j *Job) objective(wf string) sla.Objective {
	if o, ok := j.cfg.Objectives[wf]; ok {
		return o
	}
	return j.cfg.Default
}

// span is how far back a run reads: the longest objective window or burn
// window.
func (j *Job) span() time.Duration {
	d := j.cfg.Default.Window
	for _, o := range j.cfg.Objectives {
		d = max(d, o.Window)
	}
	for _, r := range j.cfg.Rules {
		d = max(d, r.Long, r.Short)
	}
	return d
}

// Run computes, stores and publishes the reports at the current minute.
func (j *Job) Run(ctx context.Context) (Result, error) {
	owner := j.d.Owner()
	ok, err := j.d.Lease.Acquire(ctx, FunctionName, owner, j.cfg.LeaseTTL)
	if err != nil {
		return Result{}, fmt.Errorf("sla job: %w", err)
	}
	if !ok {
		j.d.Log.InfoContext(ctx, "another SLA run holds the lease; nothing done")
		return Result{Skipped: true}, nil
	}
	defer func() {
		if err := j.d.Lease.Release(context.WithoutCancel(ctx), FunctionName, owner); err != nil {
			j.d.Log.WarnContext(ctx, "lease not released; it expires on its own", "error", err.Error())
		}
	}()
	end := j.d.Now().UTC().Truncate(time.Minute)
	bs, err := j.d.Buckets.Buckets(ctx, end.Add(-j.span()), end)
	if err != nil {
		return Result{}, fmt.Errorf("sla job: %w", err)
	}
	reports, err := j.Compute(bs, end)
	if err != nil {
		return Result{}, err
	}
	if err := j.d.Reports.PutReports(ctx, reports); err != nil {
		return Result{}, fmt.Errorf("sla job: %w", err)
	}
	if err := j.publish(reports); err != nil {
		return Result{}, fmt.Errorf("sla job: metrics: %w", err)
	}
	for _, r := range reports {
		j.d.Log.InfoContext(ctx, "sla report", "workflow", r.Workflow, "availability", r.Availability,
			"p50ms", r.P50.Milliseconds(), "p99ms", r.P99.Milliseconds(), "budgetRemaining", r.Budget.Remaining, "alerts", len(r.Alerts()))
	}
	return Result{At: end, Buckets: len(bs), Reports: reports}, nil
}

// Compute evaluates every workflow seen, the canary's probes
// (sla.CanaryProbes) and the platform (Overall: every case, no probe) at
// end.
func (j *Job) Compute(bs []*sla.Bucket, end time.Time) ([]sla.Report, error) {
	by := map[string][]*sla.Bucket{}
	var cases []*sla.Bucket // every case's: the canary's probes are a level of their own
	for _, b := range bs {
		by[b.Workflow] = append(by[b.Workflow], b)
		if b.Workflow != sla.CanaryProbes {
			cases = append(cases, b)
		}
	}
	wfs := slices.Sorted(func(yield func(string) bool) {
		for wf := range by {
			if !yield(wf) {
				return
			}
		}
	})
	out := make([]sla.Report, 0, len(wfs)+1)
	all, err := sla.Compute(Overall, j.cfg.Default, cases, end, j.cfg.Rules, j.cfg.Guard)
	if err != nil {
		return nil, err
	}
	out = append(out, all)
	for _, wf := range wfs {
		r, err := sla.Compute(wf, j.objective(wf), by[wf], end, j.cfg.Rules, j.cfg.Guard)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// WindowLabel is the Window dimension of a rule's long or short burn rate,
// stable when the windows are scaled: e.g. "page-1h-long".
func WindowLabel(r sla.Rule, long bool) string {
	if long {
		return r.Name + "-long"
	}
	return r.Name + "-short"
}

// guarded is the long window's burn as published: 0 while the window holds
// fewer ended cases than the guard asks, so that the burn-rate alarms (long
// AND short) respect the guard as the report does.
func (j *Job) guarded(b sla.Burn) float64 {
	if b.LongEvents < j.cfg.Guard.MinEvents {
		return 0
	}
	return b.Long
}

func (j *Job) publish(reports []sla.Report) error {
	for _, r := range reports {
		m := telemetry.NewMetrics(telemetry.Namespace)
		if err := m.SetDimensions(telemetry.Dimension{Name: telemetry.DimWorkflow, Value: r.Workflow}); err != nil {
			return err
		}
		m.Add(telemetry.SLAAvailability, telemetry.None, r.Availability)
		m.Add(telemetry.SLABudgetRemaining, telemetry.None, r.Budget.Remaining)
		if r.Latency {
			m.Add(telemetry.SLALatencyP50, telemetry.Milliseconds, float64(r.P50)/float64(time.Millisecond))
			m.Add(telemetry.SLALatencyP99, telemetry.Milliseconds, float64(r.P99)/float64(time.Millisecond))
			m.Add(telemetry.SLALatencyP999, telemetry.Milliseconds, float64(r.P999)/float64(time.Millisecond))
		}
		breach := 0.0
		if r.LatencyBreach {
			breach = 1
		}
		m.Add(telemetry.SLALatencyBreach, telemetry.None, breach)
		if err := m.Flush(j.d.Out); err != nil {
			return err
		}
		for _, b := range r.Burns {
			for _, w := range []struct {
				long bool
				v    float64
			}{{true, j.guarded(b)}, {false, b.Short}} {
				bm := telemetry.NewMetrics(telemetry.Namespace)
				if err := bm.SetDimensions(telemetry.Dimension{Name: telemetry.DimWorkflow, Value: r.Workflow},
					telemetry.Dimension{Name: telemetry.DimWindow, Value: WindowLabel(b.Rule, w.long)}); err != nil {
					return err
				}
				bm.Add(telemetry.SLABurnRate, telemetry.None, w.v)
				if err := bm.Flush(j.d.Out); err != nil {
					return err
				}
			}
		}
	}
	m := telemetry.NewMetrics(telemetry.Namespace)
	if err := m.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: FunctionName}); err != nil {
		return err
	}
	m.Add(telemetry.SLARuns, telemetry.Count, 1)
	return m.Flush(j.d.Out)
}
