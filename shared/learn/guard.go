package learn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// SettingKind is a kind of setting the loop may change.
type SettingKind string

// The settings the loop tunes.
const (
	// MaxConcurrency is the work queue mapping's maximum concurrency
	// (target: the mapping).
	MaxConcurrency SettingKind = "maxConcurrency"
	// BatchSize is the executor's batch size (target: the mapping).
	BatchSize SettingKind = "batchSize"
	// RetryAttempts overrides a task's maximum attempts (target
	// "workflow/task").
	RetryAttempts SettingKind = "retryAttempts"
	// TimeoutMs overrides a task's timeout in milliseconds (target
	// "workflow/task").
	TimeoutMs SettingKind = "timeoutMs"
	// BreakerThreshold is the consecutive failures that open a dependency's
	// breaker (target: the host).
	BreakerThreshold SettingKind = "breakerThreshold"
)

// Setting names one tunable value.
type Setting struct {
	Kind   SettingKind `json:"kind"`
	Target string      `json:"target"`
}

// Key is the setting's stable name, "kind:target".
func (s Setting) Key() string { return string(s.Kind) + ":" + s.Target }

// Evidence is one observation a recommendation rests on.
type Evidence struct {
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Note      string  `json:"note,omitempty"`
}

// Effect is what a change is expected to do.
type Effect struct {
	Metric string `json:"metric"`
	// Direction is -1 (the metric should fall) or +1 (rise).
	Direction int    `json:"direction"`
	Note      string `json:"note"`
}

// Recommendation is a planned change with its reasons.
type Recommendation struct {
	ID       string     `json:"id"`
	Rule     string     `json:"rule"`
	Setting  Setting    `json:"setting"`
	From     int64      `json:"from"`
	To       int64      `json:"to"`
	Evidence []Evidence `json:"evidence"`
	Expected Effect     `json:"expected"`
	// At is the observation the recommendation was planned from.
	At time.Time `json:"at"`
}

// recommendationID is a digest of what the recommendation changes and when
// it was planned, so that the same plan at the same minute has the same id.
func recommendationID(s Setting, from, to int64, at time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d|%d", s.Key(), from, to, at.UTC().Truncate(time.Minute).Unix()))
	return hex.EncodeToString(h[:6])
}

// Change is an applied change or a rollback: what the system chain records.
type Change struct {
	ID       string  `json:"id"` // the recommendation's id (rollbacks: "rollback-" + the change's)
	Setting  Setting `json:"setting"`
	Previous int64   `json:"previous"`
	Value    int64   `json:"value"`
	// At is when the loop applied it (the loop's clock, recorded by the
	// shell).
	At         time.Time  `json:"at"`
	Rule       string     `json:"rule"`
	Evidence   []Evidence `json:"evidence"`
	Expected   Effect     `json:"expected"`
	RollbackOf string     `json:"rollbackOf,omitempty"`
	Before     Outcome    `json:"before"` // the objective's figures when applied
}

// Bounds limit a setting's value.
type Bounds struct{ Min, Max int64 }

// Guardrails are the limits an operator sets on the loop.
type Guardrails struct {
	// KillSwitch stops every change, rollbacks included: a frozen system
	// is what the operator asked for.
	KillSwitch bool
	// Allow lists what may change: a kind ("maxConcurrency") or a kind and
	// target ("retryAttempts:payments/charge"). Empty allows nothing.
	Allow []string
	// MaxStep bounds one change to this fraction of the current value (at
	// least 1 for small integers); default 0.25.
	MaxStep float64
	// Cooldown is the least time between two changes of one setting
	// (default 1 minute); ReduceCooldown the least time before a setting is
	// lowered after any change of it (default 5 minutes).
	Cooldown, ReduceCooldown time.Duration
	// Bounds per kind; a kind without bounds cannot change.
	Bounds map[SettingKind]Bounds
}

// DefaultBounds are the kinds' limits: concurrency 2..reserved (set by the
// shell from the function's reserved concurrency), SQS batches 1..10, at
// most 10 attempts, timeouts 100 ms..15 min, breaker thresholds 2..100.
func DefaultBounds(reserved int64) map[SettingKind]Bounds {
	return map[SettingKind]Bounds{
		MaxConcurrency:   {2, max(2, reserved)},
		BatchSize:        {1, 10},
		RetryAttempts:    {1, 10},
		TimeoutMs:        {100, 15 * 60 * 1000},
		BreakerThreshold: {2, 100},
	}
}

// The reasons a recommendation is not admitted.
var (
	ErrKillSwitch = errors.New("learn: the kill switch is on")
	ErrNotAllowed = errors.New("learn: setting not on the allow list")
	ErrNoEvidence = errors.New("learn: recommendation without evidence")
	ErrCooldown   = errors.New("learn: setting in cooldown")
	ErrStale      = errors.New("learn: recommendation planned from another value")
	ErrNoChange   = errors.New("learn: nothing to change within the guardrails")
)

func (g Guardrails) allowed(s Setting) bool {
	for _, a := range g.Allow {
		if a == string(s.Kind) || a == s.Key() {
			return true
		}
	}
	return false
}

func (g Guardrails) step(from int64) int64 {
	f := g.MaxStep
	if f <= 0 {
		f = 0.25
	}
	return max(1, int64(f*float64(from)))
}

// Admit checks r against the guardrails and the knowledge k at now and
// returns the change to apply: its value clamped to the step and the
// bounds. before is the objective's figures now, kept to judge the change.
func (g Guardrails) Admit(r Recommendation, k *Knowledge, now time.Time, before Outcome) (Change, error) {
	if g.KillSwitch {
		return Change{}, ErrKillSwitch
	}
	if len(r.Evidence) == 0 {
		return Change{}, fmt.Errorf("%w: %s", ErrNoEvidence, r.Setting.Key())
	}
	if !g.allowed(r.Setting) {
		return Change{}, fmt.Errorf("%w: %s", ErrNotAllowed, r.Setting.Key())
	}
	b, ok := g.Bounds[r.Setting.Kind]
	if !ok {
		return Change{}, fmt.Errorf("%w: %s has no bounds", ErrNotAllowed, r.Setting.Key())
	}
	cur, known := k.Value(r.Setting)
	if known && cur != r.From {
		return Change{}, fmt.Errorf("%w: %s is %d, planned from %d", ErrStale, r.Setting.Key(), cur, r.From)
	}
	if last, ok := k.LastChange(r.Setting); ok {
		cd, rcd := g.Cooldown, g.ReduceCooldown
		if cd <= 0 {
			cd = time.Minute
		}
		if rcd <= 0 {
			rcd = 5 * time.Minute
		}
		if now.Sub(last.At) < cd || (r.To < r.From && now.Sub(last.At) < rcd) {
			return Change{}, fmt.Errorf("%w: %s changed at %s", ErrCooldown, r.Setting.Key(), last.At.UTC().Format(time.RFC3339))
		}
	}
	st := g.step(r.From)
	to := min(max(r.To, r.From-st), r.From+st)
	to = min(max(to, b.Min), b.Max)
	if to == r.From {
		return Change{}, fmt.Errorf("%w: %s stays %d", ErrNoChange, r.Setting.Key(), r.From)
	}
	return Change{ID: r.ID, Setting: r.Setting, Previous: r.From, Value: to, At: now, Rule: r.Rule,
		Evidence: r.Evidence, Expected: r.Expected, Before: before}, nil
}

// Rollback is the change that restores exactly what c replaced. It is
// refused only by the kill switch and when the setting has moved on since c.
func (g Guardrails) Rollback(c Change, k *Knowledge, now time.Time, reason Evidence) (Change, error) {
	if g.KillSwitch {
		return Change{}, ErrKillSwitch
	}
	if cur, ok := k.Value(c.Setting); ok && cur != c.Value {
		return Change{}, fmt.Errorf("%w: %s is %d, the change set %d", ErrStale, c.Setting.Key(), cur, c.Value)
	}
	return Change{ID: "rollback-" + c.ID, Setting: c.Setting, Previous: c.Value, Value: c.Previous, At: now,
		Rule: "rollback", Evidence: []Evidence{reason},
		Expected:   Effect{Metric: c.Expected.Metric, Direction: -c.Expected.Direction, Note: "restore " + c.Setting.Key()},
		RollbackOf: c.ID}, nil
}

// Knowledge is what the loop knows: each setting's current value (as first
// observed, then as changed) and every change in order. Replaying the
// changes of the system chain rebuilds it.
type Knowledge struct {
	values  map[string]int64
	Changes []Change
}

// NewKnowledge starts from the observed current values.
func NewKnowledge(observed map[Setting]int64) *Knowledge {
	k := &Knowledge{values: map[string]int64{}}
	for s, v := range observed {
		k.values[s.Key()] = v
	}
	return k
}

// Value is the setting's current value.
func (k *Knowledge) Value(s Setting) (int64, bool) {
	v, ok := k.values[s.Key()]
	return v, ok
}

// Values is every setting's current value by key.
func (k *Knowledge) Values() map[string]int64 {
	out := make(map[string]int64, len(k.values))
	for key, v := range k.values {
		out[key] = v
	}
	return out
}

// LastChange is the setting's latest change.
func (k *Knowledge) LastChange(s Setting) (Change, bool) {
	for i := len(k.Changes) - 1; i >= 0; i-- {
		if k.Changes[i].Setting == s {
			return k.Changes[i], true
		}
	}
	return Change{}, false
}

// Apply records c; a change that does not start from the current value is
// refused.
func (k *Knowledge) Apply(c Change) error {
	if cur, ok := k.values[c.Setting.Key()]; ok && cur != c.Previous {
		return fmt.Errorf("%w: %s is %d, change %s starts from %d", ErrStale, c.Setting.Key(), cur, c.ID, c.Previous)
	}
	k.values[c.Setting.Key()] = c.Value
	k.Changes = append(k.Changes, c)
	return nil
}

// Replay rebuilds knowledge from initial values and the recorded changes.
func Replay(initial map[Setting]int64, changes []Change) (*Knowledge, error) {
	k := NewKnowledge(initial)
	for _, c := range changes {
		if err := k.Apply(c); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Outcome is the objective a change is judged by, over a window.
type Outcome struct {
	Cases        int64         `json:"cases"`
	Availability float64       `json:"availability"`
	P99          time.Duration `json:"p99"`
	CostPerCase  float64       `json:"costPerCase"`
	// QueueAge is the age of the oldest waiting message: the wait before a
	// case starts, which its own latency does not include.
	QueueAge time.Duration `json:"queueAge,omitempty"`
	// QueueDepth is the messages waiting at the window's end.
	QueueDepth int64 `json:"queueDepth,omitempty"`
}

// Tolerance is how much worse a window may be and still count as no worse.
type Tolerance struct {
	Availability float64 // absolute (default 0.001)
	// AvailabilityZ is how far beyond chance a fall in availability must
	// be (a two-proportion z-score, default 2): in a window of a hundred
	// cases one fault is a point of availability.
	AvailabilityZ float64
	P99           float64 // relative (default 0.10)
	Cost          float64 // relative (default 0.10)
	// Age is the relative rise of the queue age that counts as worse
	// (default 0.25) once it also exceeds AgeSlack (default 10 s): a
	// backlog that grows after a change is users waiting longer.
	Age      float64
	AgeSlack time.Duration
	// Throughput is the relative fall of the cases per window that counts
	// as worse while a backlog waits in both windows (default 0.10).
	Throughput float64
	// Backlog is the queue depth from which a window counts as backlogged
	// (default 10 messages).
	Backlog  int64
	MinCases int64 // fewer cases after the change: no verdict (default 20)
}

// fellBeyondChance reports whether after's failure share exceeds before's
// by at least z standard errors of a two-proportion test. Without cases
// before, any fall counts.
func fellBeyondChance(before, after Outcome, z float64) bool {
	if before.Cases <= 0 || after.Cases <= 0 {
		return true
	}
	n1, n2 := float64(before.Cases), float64(after.Cases)
	f1, f2 := math.Round((1-before.Availability)*n1), math.Round((1-after.Availability)*n2)
	p := (f1 + f2) / (n1 + n2)
	se := math.Sqrt(p * (1 - p) * (1/n1 + 1/n2))
	if se == 0 {
		return f2/n2 > f1/n1
	}
	return (f2/n2-f1/n1)/se >= z
}

// Judge compares the window after a change with the one before: worse when
// availability fell, p99 rose, the queue aged or the cost per case rose
// beyond the tolerance. While a backlog waits in both windows the queue's
// age and the cases' p99 (their retries and resumptions queue too) follow
// the arrivals more than the change, so the cases the window ended (the
// throughput, which a backlog makes the capacity) are judged instead. ok is false while the after window holds too few cases.
func Judge(before, after Outcome, t Tolerance) (worse bool, reason string, ok bool) {
	if t.Availability <= 0 {
		t.Availability = 0.001
	}
	if t.P99 <= 0 {
		t.P99 = 0.10
	}
	if t.Cost <= 0 {
		t.Cost = 0.10
	}
	if t.MinCases <= 0 {
		t.MinCases = 20
	}
	if t.Age <= 0 {
		t.Age = 0.25
	}
	if t.AgeSlack <= 0 {
		t.AgeSlack = 10 * time.Second
	}
	if t.AvailabilityZ <= 0 {
		t.AvailabilityZ = 2
	}
	if t.Throughput <= 0 {
		t.Throughput = 0.10
	}
	if t.Backlog <= 0 {
		t.Backlog = 10
	}
	if after.Cases < t.MinCases {
		return false, "", false
	}
	var why []string
	if after.Availability < before.Availability-t.Availability && fellBeyondChance(before, after, t.AvailabilityZ) {
		why = append(why, fmt.Sprintf("availability %.4f → %.4f", before.Availability, after.Availability))
	}
	backlogged := before.QueueDepth >= t.Backlog && after.QueueDepth >= t.Backlog
	if !backlogged && float64(after.P99) > float64(before.P99)*(1+t.P99) {
		why = append(why, fmt.Sprintf("p99 %s → %s", before.P99, after.P99))
	}
	if backlogged && float64(after.Cases) < float64(before.Cases)*(1-t.Throughput) {
		why = append(why, fmt.Sprintf("throughput under backlog %d → %d cases", before.Cases, after.Cases))
	}
	if !backlogged && float64(after.QueueAge) > float64(before.QueueAge)*(1+t.Age) && after.QueueAge-before.QueueAge > t.AgeSlack {
		why = append(why, fmt.Sprintf("queue age %s → %s", before.QueueAge.Round(time.Second), after.QueueAge.Round(time.Second)))
	}
	if before.CostPerCase > 0 && after.CostPerCase > before.CostPerCase*(1+t.Cost) {
		why = append(why, fmt.Sprintf("cost per case %.9f → %.9f", before.CostPerCase, after.CostPerCase))
	}
	return len(why) > 0, strings.Join(why, ", "), true
}
