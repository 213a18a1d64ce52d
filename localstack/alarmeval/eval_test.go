package alarmeval

import (
	"strings"
	"testing"
)

// series reads CloudWatch's documentation notation, oldest first: X a
// breaching datapoint, 0 a non-breaching one, - a period without data.
func series(s string) []Datapoint {
	var out []Datapoint
	for _, c := range strings.Fields(s) {
		switch c {
		case "X":
			out = append(out, Datapoint{Value: 5})
		case "0":
			out = append(out, Datapoint{Value: 0})
		default:
			out = append(out, Datapoint{Missing: true})
		}
	}
	return out
}

// TestEvaluateMissingData pins CloudWatch's documented table for an alarm
// of 3 of 3 datapoints under each missing-data treatment (the two oldest
// points are the look-back before the evaluation range); "retain" is the
// current state, here INSUFFICIENT_DATA then OK.
func TestEvaluateMissingData(t *testing.T) {
	rows := []struct {
		points                                   string
		missing, ignore, breaching, notBreaching string
	}{
		{"0 - X - X", "OK", "OK", "ALARM", "OK"},
		{"- - - - 0", "OK", "OK", "OK", "OK"},
		{"- - - - -", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
		{"0 X X - X", "ALARM", "ALARM", "ALARM", "OK"},
		{"- - X - -", "ALARM", "retain", "ALARM", "OK"},
		{"0 0 X X X", "ALARM", "ALARM", "ALARM", "ALARM"},
		{"X X X X 0", "OK", "OK", "OK", "OK"},
	}
	r := Rule{EvaluationPeriods: 3, DatapointsToAlarm: 3, Threshold: 1, Comparison: "GreaterThanOrEqualToThreshold"}
	for _, row := range rows {
		for treat, want := range map[string]string{Missing: row.missing, Ignore: row.ignore, Breaching: row.breaching, NotBreaching: row.notBreaching} {
			for _, current := range []State{InsufficientData, OK} {
				r.TreatMissing = treat
				got, err := Evaluate(r, series(row.points), current)
				if err != nil {
					t.Fatal(err)
				}
				w := State(want)
				if want == "retain" {
					w = current
				}
				if got.State != w || got.Retained != (want == "retain") {
					t.Errorf("%s %s from %s: %s (retained %v), want %s", row.points, treat, current, got.State, got.Retained, want)
				}
			}
		}
	}
}

// TestEvaluateMOfN pins M-of-N counting: M breaching datapoints anywhere in
// the last N periods alarm, fewer do not, and older ones do not count.
func TestEvaluateMOfN(t *testing.T) {
	r := Rule{EvaluationPeriods: 5, DatapointsToAlarm: 3, Threshold: 1, Comparison: "GreaterThanThreshold", TreatMissing: NotBreaching}
	for points, want := range map[string]State{
		"X 0 X 0 X":     Alarm,
		"X X 0 0 0":     OK,
		"X X X 0 0 0 0": OK, // three breaching, but two of them before the range
		"- X - X X":     Alarm,
		"- - - - -":     OK,
	} {
		got, err := Evaluate(r, series(points), InsufficientData)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != want {
			t.Errorf("3 of 5 over %s: %s, want %s", points, got.State, want)
		}
	}
	// DatapointsToAlarm defaults to EvaluationPeriods.
	r = Rule{EvaluationPeriods: 2, Threshold: 1, Comparison: "GreaterThanOrEqualToThreshold", TreatMissing: NotBreaching}
	if got, _ := Evaluate(r, series("0 X"), OK); got.State != OK {
		t.Errorf("2 of 2 with one breaching: %s", got.State)
	}
}

// TestBreaches pins each comparison operator at, above and below the
// threshold, and refuses the anomaly-band operators.
func TestBreaches(t *testing.T) {
	for op, want := range map[string][3]bool{ // below, at, above
		"GreaterThanOrEqualToThreshold": {false, true, true},
		"GreaterThanThreshold":          {false, false, true},
		"LessThanThreshold":             {true, false, false},
		"LessThanOrEqualToThreshold":    {true, true, false},
	} {
		r := Rule{Threshold: 1, Comparison: op}
		for i, v := range []float64{0, 1, 2} {
			if got, err := r.Breaches(v); err != nil || got != want[i] {
				t.Errorf("%s %g: %v %v, want %v", op, v, got, err, want[i])
			}
		}
	}
	if _, err := (Rule{Comparison: "LessThanLowerOrGreaterThanUpperThreshold"}).Breaches(1); err == nil {
		t.Error("anomaly-band operator accepted")
	}
	if _, err := Evaluate(Rule{EvaluationPeriods: 1, Comparison: "GreaterThanThreshold", TreatMissing: "sometimes"}, nil, OK); err == nil {
		t.Error("unknown missing-data treatment accepted")
	}
}
