// Package alarmeval evaluates CloudWatch alarms as CloudWatch does, for an
// endpoint that stores alarms but does not evaluate them: M of N datapoints,
// the comparison operators, missing-data treatment, and composite rules.
// Evaluate and ParseRule are the pure core; Evaluator is the thin loop that
// reads datapoints and alarms through the CloudWatch API, sets states with
// SetAlarmState and publishes the actions' SNS notifications.
package alarmeval

import (
	"fmt"
	"math"
)

// State is an alarm state as CloudWatch names it.
type State string

// Alarm states.
const (
	OK               State = "OK"
	Alarm            State = "ALARM"
	InsufficientData State = "INSUFFICIENT_DATA"
)

// Missing-data treatments (TreatMissingData).
const (
	Missing      = "missing"
	NotBreaching = "notBreaching"
	Breaching    = "breaching"
	Ignore       = "ignore"
)

// Rule is a metric alarm's evaluation configuration.
type Rule struct {
	EvaluationPeriods int
	// DatapointsToAlarm defaults to EvaluationPeriods.
	DatapointsToAlarm int
	Threshold         float64
	// Comparison is a ComparisonOperator of the static-threshold kind.
	Comparison string
	// TreatMissing defaults to missing.
	TreatMissing string
}

// Datapoint is one period's statistic; Missing marks a period without data.
type Datapoint struct {
	Value   float64
	Missing bool
}

// Outcome is an evaluation: the new state and the datapoints that decided it.
type Outcome struct {
	State State
	// Evaluated are the datapoints counted, oldest first; Breaching of them
	// crossed the threshold.
	Evaluated []Datapoint
	Breaching int
	// Retained reports that the state was kept for lack of data (ignore).
	Retained bool
}

// Breaches reports whether v crosses the threshold.
func (r Rule) Breaches(v float64) (bool, error) {
	switch r.Comparison {
	case "GreaterThanOrEqualToThreshold":
		return v >= r.Threshold, nil
	case "GreaterThanThreshold":
		return v > r.Threshold, nil
	case "LessThanThreshold":
		return v < r.Threshold, nil
	case "LessThanOrEqualToThreshold":
		return v <= r.Threshold, nil
	}
	return false, fmt.Errorf("comparison operator %q is not evaluated locally", r.Comparison)
}

func (r Rule) m() int {
	if r.DatapointsToAlarm > 0 {
		return r.DatapointsToAlarm
	}
	return r.EvaluationPeriods
}

// Evaluate decides the state from points, one per period, oldest first; the
// last EvaluationPeriods are the evaluation range and any before it are the
// look-back CloudWatch uses when the range lacks data (treatments missing
// and ignore). current is the alarm's present state.
func Evaluate(r Rule, points []Datapoint, current State) (Outcome, error) {
	n, m := r.EvaluationPeriods, r.m()
	if n < 1 || m < 1 || m > n {
		return Outcome{}, fmt.Errorf("datapoints to alarm %d of %d evaluation periods", m, n)
	}
	if len(points) < n {
		pad := make([]Datapoint, n-len(points))
		for i := range pad {
			pad[i].Missing = true
		}
		points = append(pad, points...)
	}
	window, back := points[len(points)-n:], points[:len(points)-n]
	out := Outcome{}
	count := func(ps []Datapoint) error {
		for _, p := range ps {
			if p.Missing || math.IsNaN(p.Value) {
				continue
			}
			b, err := r.Breaches(p.Value)
			if err != nil {
				return err
			}
			out.Evaluated = append(out.Evaluated, p)
			if b {
				out.Breaching++
			}
		}
		return nil
	}
	if err := count(window); err != nil {
		return Outcome{}, err
	}
	gaps := n - len(out.Evaluated)
	switch r.TreatMissing {
	case Breaching, NotBreaching:
		bad := out.Breaching
		if r.TreatMissing == Breaching {
			bad += gaps
		}
		out.State = map[bool]State{true: Alarm, false: OK}[bad >= m]
		return out, nil
	case "", Missing, Ignore:
	default:
		return Outcome{}, fmt.Errorf("treat missing data %q is not one of missing, notBreaching, breaching, ignore", r.TreatMissing)
	}
	// Fewer real datapoints than M in the range: CloudWatch looks further
	// back for real ones, newest first, until it has M.
	for i := len(back) - 1; i >= 0 && len(out.Evaluated) < m; i-- {
		before := out.Evaluated
		out.Evaluated = nil
		if err := count(back[i : i+1]); err != nil {
			return Outcome{}, err
		}
		out.Evaluated = append(out.Evaluated, before...)
	}
	switch {
	case len(out.Evaluated) == 0 && r.TreatMissing == Ignore:
		out.State, out.Retained = current, true
	case len(out.Evaluated) == 0:
		out.State = InsufficientData
	case len(out.Evaluated) >= m:
		out.State = map[bool]State{true: Alarm, false: OK}[out.Breaching >= m]
	case out.Breaching < len(out.Evaluated):
		out.State = OK
	case r.TreatMissing == Ignore:
		// Every real datapoint breaches but there are fewer than M.
		out.State, out.Retained = current, true
	default:
		out.State = Alarm
	}
	return out, nil
}
