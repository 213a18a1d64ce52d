package tuner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/learn"
)

// The tuner's environment.
const (
	// EnvGuard carries the guardrails (Config as JSON, see ParseConfig).
	EnvGuard = "KNHK_TUNER_GUARD"
	// EnvExecutor names the executor function whose work queue mapping
	// the tuner tunes; EnvMaxConcurrency is the mapping's deployed maximum
	// concurrency, the upper bound of the loop's changes.
	EnvExecutor       = "KNHK_EXECUTOR_FUNCTION"
	EnvMaxConcurrency = "KNHK_EXECUTOR_MAX_CONCURRENCY"
	// EnvWorkQueueArn is the work queue's ARN (the mapping's source).
	EnvWorkQueueArn = "KNHK_WORK_QUEUE_ARN"
)

// Config is what an operator sets on the loop (CDK context "tuner", JSON in
// KNHK_TUNER_GUARD). Durations are Go durations ("5m"). The zero Config
// is recommendation-only with nothing allowed.
type Config struct {
	// Enabled false (the default) keeps the loop in recommendation-only
	// mode: it plans and records recommendations and applies only those
	// an operator approves.
	Enabled bool `json:"enabled"`
	// KillSwitch stops every change, rollbacks and approved ones included.
	KillSwitch bool `json:"killSwitch"`
	// Allow lists the settings that may change: a kind (maxConcurrency) or
	// kind:target (retryAttempts:orders/charge).
	Allow []string `json:"allow"`
	// MaxStep bounds one change to this fraction of the current value
	// (default 0.25).
	MaxStep float64 `json:"maxStep"`
	// Cooldown between two changes of a setting (default 1m) and before
	// lowering one (default 5m).
	Cooldown       string `json:"cooldown"`
	ReduceCooldown string `json:"reduceCooldown"`
	// Settle is how long a change runs before it is judged (default 5m);
	// Window how far back each run observes (default 5m).
	Settle string `json:"settle"`
	Window string `json:"window"`
	// TargetAge is the queueing the operator accepts (default 30s);
	// ObjectiveP99 the latency objective the concurrency rule steers by
	// (default 1s, the SLA job's default).
	TargetAge    string `json:"targetAge"`
	ObjectiveP99 string `json:"objectiveP99"`
	// P99Tolerance is the relative rise of p99 after a change that still
	// counts as no worse (default 0.10): a short window's p99 rests on few
	// cases.
	P99Tolerance float64 `json:"p99Tolerance"`
	// Bounds narrow a kind's limits (they never widen learn.DefaultBounds).
	Bounds map[learn.SettingKind]BoundsJSON `json:"bounds"`
}

// BoundsJSON is a kind's [min, max].
type BoundsJSON struct {
	Min int64 `json:"min"`
	Max int64 `json:"max"`
}

// Parsed is a checked Config.
type Parsed struct {
	Config
	Guard        learn.Guardrails
	Settle       time.Duration
	Window       time.Duration
	TargetAge    time.Duration
	ObjectiveP99 time.Duration
	Tolerance    learn.Tolerance
}

var kinds = map[learn.SettingKind]bool{learn.MaxConcurrency: true, learn.BatchSize: true, learn.RetryAttempts: true,
	learn.TimeoutMs: true, learn.BreakerThreshold: true}

// ParseConfig reads and checks the guardrails; reserved is the executor's
// reserved concurrency (the upper bound of the mapping's). Unknown fields,
// unknown kinds, bounds outside the kinds' limits, a step outside (0, 1]
// and negative durations are errors.
func ParseConfig(s string, reserved int64) (Parsed, error) {
	var p Parsed
	if strings.TrimSpace(s) != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.DisallowUnknownFields() // a misspelt guardrail must not pass unnoticed
		if err := dec.Decode(&p.Config); err != nil {
			return p, fmt.Errorf("tuner guardrails: %w", err)
		}
	}
	var errs []error
	dur := func(name, v string, def time.Duration) time.Duration {
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s %q: want a positive duration such as 5m", name, v))
			return def
		}
		return d
	}
	p.Guard = learn.Guardrails{KillSwitch: p.KillSwitch, Allow: p.Allow, MaxStep: p.MaxStep,
		Cooldown: dur("cooldown", p.Config.Cooldown, time.Minute), ReduceCooldown: dur("reduceCooldown", p.Config.ReduceCooldown, 5*time.Minute),
		Bounds: learn.DefaultBounds(reserved)}
	p.Settle = dur("settle", p.Config.Settle, 5*time.Minute)
	p.Window = dur("window", p.Config.Window, 5*time.Minute)
	p.TargetAge = dur("targetAge", p.Config.TargetAge, 30*time.Second)
	p.ObjectiveP99 = dur("objectiveP99", p.Config.ObjectiveP99, time.Second)
	if p.P99Tolerance < 0 || p.P99Tolerance > 1 {
		errs = append(errs, fmt.Errorf("p99Tolerance %v: want a fraction in (0, 1]", p.P99Tolerance))
	}
	p.Tolerance = learn.Tolerance{P99: p.P99Tolerance}
	if p.MaxStep < 0 || p.MaxStep > 1 {
		errs = append(errs, fmt.Errorf("maxStep %v: want a fraction in (0, 1]", p.MaxStep))
	}
	if p.Guard.Cooldown > p.Guard.ReduceCooldown {
		errs = append(errs, fmt.Errorf("cooldown %s exceeds reduceCooldown %s", p.Guard.Cooldown, p.Guard.ReduceCooldown))
	}
	for _, a := range p.Allow {
		kind, _, _ := strings.Cut(a, ":")
		if !kinds[learn.SettingKind(kind)] {
			errs = append(errs, fmt.Errorf("allow %q: unknown setting kind %q", a, kind))
		}
	}
	for k, b := range p.Bounds {
		def, ok := p.Guard.Bounds[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("bounds: unknown setting kind %q", k))
		case b.Min > b.Max:
			errs = append(errs, fmt.Errorf("bounds of %s: min %d exceeds max %d", k, b.Min, b.Max))
		case b.Min < def.Min || b.Max > def.Max:
			errs = append(errs, fmt.Errorf("bounds of %s: [%d, %d] leave the kind's limits [%d, %d]", k, b.Min, b.Max, def.Min, def.Max))
		default:
			p.Guard.Bounds[k] = learn.Bounds{Min: b.Min, Max: b.Max}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return p, fmt.Errorf("tuner guardrails: %w", err)
	}
	return p, nil
}
