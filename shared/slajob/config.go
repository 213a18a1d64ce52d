package slajob

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/sla"
)

// The job's environment (set by the stack from CDK context).
const (
	// EnvObjectives is a JSON object of workflow (namespace/name, as
	// sla.WorkflowKey spells it) to objective, e.g.
	// {"billing/payments":{"availability":0.9995,"p50":"200ms","p99":"2s","window":"720h"}};
	// omitted fields take the defaults. The key "*" sets the default.
	EnvObjectives = "KNHK_SLA_OBJECTIVES"
	// EnvWindowDivisor shortens every burn-rate window by this factor (1 or
	// unset: the Workbook's windows), for demonstrations and tests.
	EnvWindowDivisor = "KNHK_SLA_WINDOW_DIVISOR"
	// EnvMinEvents is the minimum-events guard (default DefaultMinEvents).
	EnvMinEvents = "KNHK_SLA_MIN_EVENTS"
)

// DefaultMinEvents keeps a quiet hour's single failure from paging.
const DefaultMinEvents = 10

type objectiveJSON struct {
	Availability float64 `json:"availability"`
	P50          string  `json:"p50"`
	P99          string  `json:"p99"`
	Window       string  `json:"window"`
}

// ConfigFromEnv reads the job's configuration.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{Default: sla.DefaultObjective(), Rules: sla.WorkbookRules(), Guard: sla.Guard{MinEvents: DefaultMinEvents}}
	if v := getenv(EnvWindowDivisor); v != "" {
		div, err := strconv.ParseFloat(v, 64)
		if err != nil || div < 1 {
			return cfg, fmt.Errorf("%s=%q: want a number of at least 1", EnvWindowDivisor, v)
		}
		cfg.Rules = sla.Scaled(cfg.Rules, div)
	}
	if v := getenv(EnvMinEvents); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return cfg, fmt.Errorf("%s=%q: want a non-negative integer", EnvMinEvents, v)
		}
		cfg.Guard.MinEvents = n
	}
	if v := getenv(EnvObjectives); v != "" {
		def, objs, err := ParseObjectives(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvObjectives, err)
		}
		cfg.Default, cfg.Objectives = def, objs
	}
	return cfg, nil
}

// ParseObjectives reads objectives as EnvObjectives spells them: the
// default (the built-in one, overridden by the key "*") and the objective of
// every workflow named (namespace/name).
func ParseObjectives(v string) (sla.Objective, map[string]sla.Objective, error) {
	def := sla.DefaultObjective()
	var raw map[string]objectiveJSON
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return def, nil, err
	}
	if d, ok := raw["*"]; ok {
		o, err := d.apply(def)
		if err != nil {
			return def, nil, fmt.Errorf("default: %w", err)
		}
		def = o
	}
	objs := map[string]sla.Objective{}
	for wf, j := range raw {
		if wf == "*" {
			continue
		}
		if !objectiveKey(wf) {
			return def, nil, fmt.Errorf("objective key %q: want a workflow's namespace/name, %s, %s, or \"*\" for the default",
				wf, sla.CanaryProbes, sla.Unattributed)
		}
		o, err := j.apply(def)
		if err != nil {
			return def, nil, fmt.Errorf("%s: %w", wf, err)
		}
		objs[wf] = o
	}
	return def, objs, nil
}

// objectiveKey reports whether k names a level the job reports: a
// workflow as sla.WorkflowKey spells it, the canary's probes or the
// unattributed dead letters.
func objectiveKey(k string) bool {
	if k == sla.CanaryProbes || k == sla.Unattributed {
		return true
	}
	ns, name, ok := strings.Cut(k, "/")
	return ok && ns != "" && name != "" && !strings.Contains(name, "/")
}

func (j objectiveJSON) apply(o sla.Objective) (sla.Objective, error) {
	if j.Availability != 0 {
		o.Availability = j.Availability
	}
	for _, f := range []struct {
		s   string
		dst *time.Duration
	}{{j.P50, &o.P50}, {j.P99, &o.P99}, {j.Window, &o.Window}} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil {
			return o, err
		}
		*f.dst = d
	}
	return o, o.Validate()
}
