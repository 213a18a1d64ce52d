package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
)

// breachCases is how many cases each round of a phase of
// TestSLABreachPagesAndRecovers runs (more than the suite's minimum-events
// guard), and breachRounds bounds a phase's rounds.
const (
	breachCases  = 12
	breachRounds = 4
)

// TestSLABreachPagesAndRecovers drives the service level through a real
// dependency failure, with the suite's burn-rate windows shortened sixty
// times (the page rules' windows become one and six minutes): cases whose
// dependency is down fault (platform faults, from their verified receipts)
// until the SLA report shows the page rule firing, the page-1h composite
// goes to ALARM and CloudWatch's notification reaches a queue subscribed to
// the page topic; cases against the slow but working dependency then
// complete until the burn stops, the report shows the latency objective
// breached, and the composite returns to OK with its notification.
// `knhk alarms` shows each state.
func TestSLABreachPagesAndRecovers(t *testing.T) {
	if suite.external || suite.env == nil {
		t.Skip("needs the self-contained suite's shortened SLA windows")
	}
	noteFailure(t)
	ctx := ctxFor(t, 10*time.Minute)
	rule := sla.WorkbookRules()[0]
	composite := findAlarm(t, ctx, "-sla-burn-"+rule.Name)
	alerts := subscribeTopic(t, ctx, "breach", stackOutput(t, "PageTopicArn"))
	state := func(want cwtypes.StateValue) {
		t.Helper()
		err := poll(ctx, time.Second, func() (bool, error) {
			out, err := suite.cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{composite},
				AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeCompositeAlarm}})
			return err == nil && len(out.CompositeAlarms) == 1 && out.CompositeAlarms[0].StateValue == want, err
		})
		if err != nil {
			t.Fatalf("composite %s never reached %s: %v", composite, want, err)
		}
		out, code := knhkCLI(t, ctx, "alarms")
		if code != 0 || !alarmLine(out, composite, string(want)) {
			t.Fatalf("knhk alarms (exit %d) does not show %s in %s:\n%s", code, composite, want, out)
		}
	}
	state(cwtypes.StateValueOk)

	report := func(wf string) sla.Report {
		t.Helper()
		for _, r := range runSLA(t, ctx).Reports {
			if r.Workflow == wf {
				return r
			}
		}
		t.Fatalf("no SLA report of %s", wf)
		return sla.Report{}
	}
	firing := func(r sla.Report) bool {
		for _, a := range r.Alerts() {
			if a.Rule.Name == rule.Name {
				return true
			}
		}
		return false
	}
	// phase runs rounds of cases against the dependency, down or slow, until
	// the platform's report satisfies done. A round's cases may end in
	// different minutes of the burn-rate series on a loaded machine, and the
	// job reports only ended minutes: so the phase does not rely on one
	// minute holding them all, it keeps the traffic up, as a real outage
	// and recovery would, for at most breachRounds rounds, each followed by
	// the end of its minute.
	phase := func(label string, down bool, done func(sla.Report) bool) sla.Report {
		t.Helper()
		var all sla.Report
		for round := range breachRounds {
			var cs []localrun.Case
			for i := range breachCases {
				cs = append(cs, newCase("e2e", "flaky-dependency", fmt.Sprintf("%s-%d-%d", label, round, i), map[string]any{"down": down}))
			}
			awaitAll(t, ctx, submit(t, ctx, cs...))
			for _, c := range cs {
				rs := readChain(t, ctx, c.ID)
				want := history.CaseCompleted
				if down {
					want = history.CaseFaulted
				}
				if got := rs[len(rs)-1].Type; got != want {
					t.Fatalf("%s case %s ended %s, want %s", label, c.ID, got, want)
				}
				awaitWatermark(t, ctx, c.ID, int64(len(rs)-1))
			}
			// The job reports ended minutes only: wait for this one to end.
			time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 2*time.Second)))
			if all = report(slajob.Overall); done(all) {
				t.Logf("%s: the report holds after %d round(s): %+v", label, round+1, all.Counts)
				return all
			}
		}
		t.Fatalf("%s: after %d rounds of %d cases the platform report is %+v with alerts %+v", label, breachRounds, breachCases, all.Counts, all.Alerts())
		return all
	}

	phase("down", true, func(r sla.Report) bool { return r.Counts.PlatformFaulted >= breachCases && firing(r) })
	state(cwtypes.StateValueAlarm)
	awaitNotification(t, ctx, alerts, composite, "ALARM")

	phase("slow", false, func(r sla.Report) bool { return !firing(r) })
	if wf := report(sla.WorkflowKey("e2e", "flaky-dependency")); !wf.Latency || wf.P99 < time.Second || !wf.LatencyBreach {
		t.Errorf("flaky-dependency report p99 %s breach %v, want the slow dependency's second to breach the 1 s objective", wf.P99, wf.LatencyBreach)
	}
	state(cwtypes.StateValueOk)
	awaitNotification(t, ctx, alerts, composite, "OK")
}

// alarmLine reports whether knhk alarms' output lists the alarm in state.
func alarmLine(out, alarm, state string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, alarm) && strings.Contains(l, state) {
			return true
		}
	}
	return false
}
