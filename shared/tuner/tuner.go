// Package tuner is the shell of the learning loop: under its lease it
// observes the running system (the verifier's service-level buckets, the
// work queue and its mapping, the overrides in force), rebuilds what the
// loop knows from the system chain, runs one iteration of learn.Loop and
// applies what the guardrails admitted through the real APIs: the Lambda
// API for the work queue mapping, the state table's overrides for retry,
// timeout and breaker settings. Every applied change and every rollback is
// first applied, then recorded in the system chain.
package tuner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/sla"
)

// FunctionName is the tuner's short name, its lease and its metrics'
// Function dimension.
const FunctionName = "tuner"

// MappingTarget is the target of the work queue mapping's settings.
const MappingTarget = "work"

// Buckets reads the verifier's service-level buckets (store.SLIs).
type Buckets interface {
	Buckets(ctx context.Context, from, to time.Time) ([]*sla.Bucket, error)
}

// Lease is the runs' mutual exclusion (store.Leases).
type Lease interface {
	Acquire(ctx context.Context, job, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, job, owner string) error
}

// Mapping reads and changes the work queue mapping (LambdaMapping).
type Mapping interface {
	Settings(ctx context.Context) (MappingSettings, error)
	Set(ctx context.Context, kind learn.SettingKind, v int64) error
}

// Queue reads the work queue's depth (SQSDepth).
type Queue interface {
	Depth(ctx context.Context) (waiting, inFlight int64, err error)
}

// Deps are the tuner's collaborators.
type Deps struct {
	Buckets  Buckets
	Lease    Lease
	Mapping  Mapping
	Queue    Queue
	Items    Items
	Chain    *Chain
	Reserved int64 // the executor's reserved concurrency
	Log      *slog.Logger
	Now      func() time.Time
	Owner    func() string
}

// Job is the tuner.
type Job struct {
	cfg Parsed
	d   Deps
}

// New returns the tuner.
func New(cfg Parsed, d Deps) (*Job, error) {
	if d.Buckets == nil || d.Lease == nil || d.Mapping == nil || d.Queue == nil || d.Chain == nil || d.Items.DB == nil {
		return nil, errors.New("tuner: buckets, lease, mapping, queue, items and chain are required")
	}
	if d.Reserved < 2 {
		return nil, fmt.Errorf("tuner: reserved concurrency %d: want at least 2", d.Reserved)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Owner == nil {
		d.Owner = func() string { return "run-" + strconv.FormatInt(time.Now().UnixNano(), 36) }
	}
	return &Job{cfg: cfg, d: d}, nil
}

// Result is what one run saw and did.
type Result struct {
	Skipped       bool                   `json:"skipped,omitempty"`
	At            time.Time              `json:"at"`
	Observation   learn.Observation      `json:"observation"`
	KillSwitch    bool                   `json:"killSwitch"`
	RecommendOnly bool                   `json:"recommendOnly"`
	External      []learn.Change         `json:"external,omitempty"` // changes made outside the loop, recorded
	Applied       []learn.Change         `json:"applied,omitempty"`
	RolledBack    []learn.Change         `json:"rolledBack,omitempty"`
	Kept          []learn.Change         `json:"kept,omitempty"`
	Open          []learn.Recommendation `json:"open,omitempty"`
	Refused       []learn.Refusal        `json:"refused,omitempty"`
	Decided       []Decision             `json:"decided,omitempty"`
}

// Handler is the scheduled function's entry point.
func (j *Job) Handler(ctx context.Context, _ struct{}) (Result, error) { return j.Run(ctx) }

// Observe folds the window's buckets (every workflow but the canary's
// probes), the mapping and the queue into an observation at now. The age of
// the oldest message is estimated from the depth and the window's
// throughput (Little's law): the queue's own age metric is CloudWatch's.
func (j *Job) Observe(now time.Time, ms MappingSettings, waiting int64, bs []*sla.Bucket) (learn.Observation, error) {
	end := now.UTC().Truncate(time.Minute)
	all := sla.NewBucket("", end)
	for _, b := range bs {
		if b.Workflow == sla.CanaryProbes || b.Minute.Before(end.Add(-j.cfg.Window)) || !b.Minute.Before(end) {
			continue
		}
		if err := all.Merge(b); err != nil {
			return learn.Observation{}, fmt.Errorf("tuner: merge buckets: %w", err)
		}
	}
	o := learn.Observation{At: now, ObjectiveP99: j.cfg.ObjectiveP99, Objective: sla.DefaultObjective().Availability,
		Availability: 1, Cases: all.Counts.Valid(), QueueDepth: waiting, TargetAge: j.cfg.TargetAge,
		Concurrency: ms.MaxConcurrency, Reserved: j.d.Reserved, BatchSize: ms.BatchSize}
	if o.Concurrency <= 0 {
		o.Concurrency = j.d.Reserved // no maximum set: the function's reserved concurrency bounds it
	}
	if v := all.Counts.Valid(); v > 0 {
		o.Availability = 1 - float64(all.Counts.Bad())/float64(v)
	}
	if q, ok := sla.Quantile(all.Latency, 0.99); ok {
		o.P99 = q
	}
	if waiting > 0 {
		perSecond := float64(o.Cases) / j.cfg.Window.Seconds()
		o.OldestAge = j.cfg.Window
		if perSecond > 0 {
			o.OldestAge = min(j.cfg.Window, time.Duration(float64(waiting)/perSecond*float64(time.Second)))
		}
	}
	return o, nil
}

// apply sets the system to c's value.
func (j *Job) apply(ctx context.Context, s learn.Setting, v int64) error {
	switch s.Kind {
	case learn.MaxConcurrency, learn.BatchSize:
		return j.d.Mapping.Set(ctx, s.Kind, v)
	default:
		return j.d.Items.SetOverride(ctx, s, v)
	}
}

// enact applies c and records it in the system chain; when the record
// fails the system is set back, so that chain and system agree.
func (j *Job) enact(ctx context.Context, c learn.Change) error {
	if err := j.apply(ctx, c.Setting, c.Value); err != nil {
		return err
	}
	if _, err := j.d.Chain.Record(ctx, c); err != nil {
		if uerr := j.apply(context.WithoutCancel(ctx), c.Setting, c.Previous); uerr != nil {
			return errors.Join(err, fmt.Errorf("tuner: undo %s: %w", c.ID, uerr))
		}
		return err
	}
	return nil
}

// Run is one iteration.
func (j *Job) Run(ctx context.Context) (Result, error) {
	owner := j.d.Owner()
	ok, err := j.d.Lease.Acquire(ctx, FunctionName, owner, 5*time.Minute)
	if err != nil {
		return Result{}, fmt.Errorf("tuner: %w", err)
	}
	if !ok {
		return Result{Skipped: true}, nil
	}
	defer func() {
		if err := j.d.Lease.Release(context.WithoutCancel(ctx), FunctionName, owner); err != nil {
			j.d.Log.WarnContext(ctx, "tuner lease not released; it expires on its own", "error", err.Error())
		}
	}()
	now := j.d.Now().UTC()
	res := Result{At: now}
	st, err := j.d.Items.State(ctx)
	if err != nil {
		return res, err
	}
	sw, err := j.d.Items.Switches(ctx)
	if err != nil {
		return res, err
	}
	changes, err := j.d.Chain.Changes(ctx)
	if err != nil {
		return res, err
	}
	ms, err := j.d.Mapping.Settings(ctx)
	if err != nil {
		return res, err
	}
	waiting, _, err := j.d.Queue.Depth(ctx)
	if err != nil {
		return res, err
	}
	end := now.Truncate(time.Minute)
	bs, err := j.d.Buckets.Buckets(ctx, end.Add(-j.cfg.Window), end)
	if err != nil {
		return res, fmt.Errorf("tuner: %w", err)
	}
	o, err := j.Observe(now, ms, waiting, bs)
	if err != nil {
		return res, err
	}
	res.Observation = o
	overrides, _, err := j.d.Items.Overrides(ctx)
	if err != nil {
		return res, err
	}

	// What the system holds now; a setting never seen starts the
	// knowledge at its value.
	observed := map[string]int64{learn.Setting{Kind: learn.MaxConcurrency, Target: MappingTarget}.Key(): o.Concurrency,
		learn.Setting{Kind: learn.BatchSize, Target: MappingTarget}.Key(): o.BatchSize}
	for key, v := range overrides {
		observed[key] = v
	}
	changed := map[string]bool{}
	for _, c := range changes {
		changed[c.Setting.Key()] = true
	}
	for key, v := range observed {
		if _, ok := st.Initial[key]; !ok && !changed[key] {
			st.Initial[key] = v
		}
	}
	initial, err := st.InitialSettings()
	if err != nil {
		return res, err
	}
	k, err := learn.Replay(initial, changes)
	if err != nil {
		return res, fmt.Errorf("tuner: replay the system chain: %w", err)
	}
	// A setting changed outside the loop is recorded as such: the chain
	// keeps replaying into what the system holds.
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for key := range observed {
			if !yield(key) {
				return
			}
		}
	}) {
		s, err := ParseSetting(key)
		if err != nil {
			return res, err
		}
		cur, known := k.Value(s)
		if !known || cur == observed[key] {
			continue
		}
		c := learn.Change{ID: fmt.Sprintf("external-%s-%d", s.Key(), now.Unix()), Setting: s, Previous: cur, Value: observed[key],
			At: now, Rule: "external", Evidence: []learn.Evidence{{Metric: "Observed", Value: float64(observed[key]), Threshold: float64(cur),
				Note: "changed outside the loop"}}}
		if _, err := j.d.Chain.Record(ctx, c); err != nil {
			return res, err
		}
		if err := k.Apply(c); err != nil {
			return res, err
		}
		res.External = append(res.External, c)
		if st.Trial != nil && st.Trial.Setting == s {
			st.Trial = nil // its verdict would be about someone else's change
		}
	}

	guard := j.cfg.Guard
	guard.KillSwitch = j.cfg.KillSwitch || (sw.KillSwitch != nil && *sw.KillSwitch)
	recommendOnly := !j.cfg.Enabled
	if sw.RecommendOnly != nil {
		recommendOnly = *sw.RecommendOnly
	}
	res.KillSwitch, res.RecommendOnly = guard.KillSwitch, recommendOnly

	loop := learn.Loop{Guard: guard, Tolerance: j.cfg.Tolerance, Settle: j.cfg.Settle, RecommendOnly: recommendOnly, Knowledge: k, Trial: st.Trial}
	if err := j.decide(ctx, &st, &loop, o, &res); err != nil {
		return res, err
	}
	before := loop.Trial
	step, err := loop.Step(o)
	if err != nil {
		return res, fmt.Errorf("tuner: %w", err)
	}
	for _, rb := range step.RolledBack {
		if err := j.enact(ctx, rb); err != nil {
			return res, err
		}
		st.Verdicts = append(st.Verdicts, Verdict{ChangeID: rb.RollbackOf, Setting: rb.Setting, Kept: false, At: now,
			Before: before.Before, After: o.Outcome(), Reason: rb.Evidence[0].Note})
	}
	for _, c := range step.Kept {
		st.Verdicts = append(st.Verdicts, Verdict{ChangeID: c.ID, Setting: c.Setting, Kept: true, At: now, Before: c.Before, After: o.Outcome()})
	}
	for _, c := range step.Applied {
		if err := j.enact(ctx, c); err != nil {
			return res, err
		}
	}
	res.Applied = append(res.Applied, step.Applied...)
	res.RolledBack, res.Kept, res.Refused = step.RolledBack, step.Kept, step.Refused
	st.Trial = loop.Trial
	st.Open = mergeOpen(st.Open, step.Open, now, recommendOnly)
	res.Open = st.Open
	st.Refused, st.LastRun, st.LastOutcome = step.Refused, now, o.Outcome()
	st.KillSwitch, st.RecommendOnly = guard.KillSwitch, recommendOnly
	if err := j.d.Items.SaveState(ctx, &st); err != nil {
		return res, err
	}
	j.d.Log.InfoContext(ctx, "tuner run", "cases", o.Cases, "p99ms", o.P99.Milliseconds(), "availability", o.Availability,
		"concurrency", o.Concurrency, "queueDepth", o.QueueDepth, "applied", len(res.Applied), "rolledBack", len(res.RolledBack),
		"open", len(res.Open), "refused", len(res.Refused), "killSwitch", guard.KillSwitch, "recommendOnly", recommendOnly)
	return res, nil
}

// decide carries out the operator's pending answers: a rejected
// recommendation closes; an approved one is admitted by the guardrails like
// any other (while no change is under trial) and applied.
func (j *Job) decide(ctx context.Context, st *State, loop *learn.Loop, o learn.Observation, res *Result) error {
	for i := range st.Decisions {
		d := &st.Decisions[i]
		if d.Outcome != "" {
			continue
		}
		at := slices.IndexFunc(st.Open, func(r learn.Recommendation) bool { return r.ID == d.ID })
		switch {
		case at < 0:
			d.Outcome = "no such open recommendation"
		case !d.Approve:
			d.Outcome = "rejected"
			st.Open = slices.Delete(st.Open, at, at+1)
		case loop.Trial != nil:
			continue // judged first; the approval waits
		default:
			r := st.Open[at]
			c, err := loop.Guard.Admit(r, loop.Knowledge, o.At, o.Outcome())
			if err != nil {
				d.Outcome = "refused: " + err.Error()
			} else {
				if err := loop.Knowledge.Apply(c); err != nil {
					return fmt.Errorf("tuner: %w", err)
				}
				if err := j.enact(ctx, c); err != nil {
					return err
				}
				loop.Trial = &c
				res.Applied = append(res.Applied, c)
				d.Outcome = "applied"
			}
			st.Open = slices.Delete(st.Open, at, at+1)
		}
		res.Decided = append(res.Decided, *d)
	}
	return nil
}

// openTTL is how long a recommendation stays open without being planned
// again.
const openTTL = 15 * time.Minute

// mergeOpen keeps one open recommendation per setting: a new one replaces
// the old unless it proposes the same change (the old id stays, so that an
// operator's apply finds it); one not planned again expires after openTTL.
// Outside recommendation-only mode nothing stays open.
func mergeOpen(old, fresh []learn.Recommendation, now time.Time, recommendOnly bool) []learn.Recommendation {
	if !recommendOnly {
		return nil
	}
	by := map[string]int{}
	var out []learn.Recommendation
	for _, r := range old {
		if now.Sub(r.At) > openTTL {
			continue
		}
		by[r.Setting.Key()] = len(out)
		out = append(out, r)
	}
	for _, r := range fresh {
		i, ok := by[r.Setting.Key()]
		switch {
		case !ok:
			by[r.Setting.Key()] = len(out)
			out = append(out, r)
		case out[i].From != r.From || out[i].To != r.To:
			out[i] = r
		default:
			out[i].At = r.At // planned again: it stays open
		}
	}
	return out
}
