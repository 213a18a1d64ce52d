package alarmeval

import "testing"

// TestParseRule pins the rule grammar: precedence, NOT, parentheses, quoted
// and unquoted names and ARNs, and what a composite's state is.
func TestParseRule(t *testing.T) {
	states := map[string]State{"a": Alarm, "b": OK, "c": InsufficientData, "long window": Alarm}
	lookup := func(n string) (State, bool) { s, ok := states[n]; return s, ok }
	for rule, want := range map[string]State{
		`ALARM("a")`:                              Alarm,
		`ALARM(b)`:                                OK,
		`ALARM("a") AND ALARM("b")`:               OK,
		`ALARM("a") OR ALARM("b")`:                Alarm,
		`ALARM(a) OR ALARM(b) AND ALARM(c)`:       Alarm, // AND binds tighter
		`(ALARM(a) OR ALARM(b)) AND ALARM(c)`:     OK,
		`NOT OK(b)`:                               OK,
		`not ok(b) or insufficient_data(c)`:       Alarm,
		`ALARM("long window") AND NOT ALARM("b")`: Alarm,
		`ALARM("arn:aws:cloudwatch:us-east-1:123456789012:alarm:a")`: Alarm,
		`TRUE AND NOT FALSE`:          Alarm,
		`ALARM("gone") OR ALARM("a")`: InsufficientData,
	} {
		e, err := ParseRule(rule)
		if err != nil {
			t.Errorf("%s: %v", rule, err)
			continue
		}
		if got := EvaluateComposite(e, lookup); got != want {
			t.Errorf("%s: %s, want %s", rule, got, want)
		}
	}
	for _, bad := range []string{``, `ALARM`, `ALARM(a`, `ALARM(a) AND`, `(ALARM(a)`, `ALARM(a) ALARM(b)`, `ALARM()`, `ALARMS(a)`} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	e, _ := ParseRule(`ALARM(a) AND (OK(b) OR NOT ALARM("c"))`)
	if got := e.Alarms(); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Errorf("alarms of the rule: %v", got)
	}
}
