package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/telemetry"
)

// TestSLAJob: the SLA job runs every minute with the objectives, window
// divisor and guard of the context, and its role reaches neither the
// receipts nor the checkpoints nor the signing key.
func TestSLAJob(t *testing.T) {
	s := synth(t, "sla", map[string]any{stackconfig.CtxSLAObjectives: `{"billing/payments":{"availability":0.9995}}`,
		stackconfig.CtxSLAWindowDivisor: "60", stackconfig.CtxSLAMinEvents: "3"})
	res := templateJSON(t, s)["Resources"].(map[string]any)
	var env map[string]any
	rate := false
	for id, r := range res {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch {
		case r["Type"] == "AWS::Lambda::Function" && strings.HasPrefix(id, "Sla"):
			env = props["Environment"].(map[string]any)["Variables"].(map[string]any)
		case r["Type"] == "AWS::Events::Rule" && strings.HasPrefix(id, "SlaSchedule"):
			rate = props["ScheduleExpression"] == "rate(1 minute)"
		case r["Type"] == "AWS::IAM::Policy" && strings.HasPrefix(id, "SlaRole"):
			b, _ := json.Marshal(props)
			for _, other := range []string{"ReceiptsTable", "CheckpointsTable", "kms:Sign", "sqs:", "sns:"} {
				if strings.Contains(string(b), other) {
					t.Errorf("SLA role policy reaches %s: %s", other, b)
				}
			}
		}
	}
	if env[slajob.EnvObjectives] != `{"billing/payments":{"availability":0.9995}}` || env[slajob.EnvWindowDivisor] != "60" ||
		env[slajob.EnvMinEvents] != "3" || env[stack.EnvName(stack.OutStateTable)] == nil {
		t.Fatalf("SLA environment %v", env)
	}
	if !rate {
		t.Fatal("no SLA schedule of rate(1 minute)")
	}
}

// TestSLAAlarms reads the synthesized template: every service-level metric
// alarm watches a metric the SLA job emits (namespace, name, dimension
// names and values as slajob publishes them), each burn-rate rule has a
// composite of its long AND short window alarms that notifies (the topic
// of its severity: TestSeverityRouting), the window alarms notify nobody, and every description links the
// runbook.
func TestSLAAlarms(t *testing.T) {
	// payments and refunds have objectives of their own: they get burn-rate
	// alarms of their own; "*" (the default) does not.
	s := synth(t, "sla-objectives", map[string]any{stackconfig.CtxSLAObjectives: `{"billing/payments":{"availability":0.9995},"billing/refunds":{"p99":"3s"},"*":{"p50":"200ms"}}`})
	res := templateJSON(t, s)["Resources"].(map[string]any)
	levels := []string{slajob.Overall, "billing/payments", "billing/refunds"}
	emitted := map[string]bool{} // name|dims as the job publishes them
	for _, r := range sla.WorkbookRules() {
		for _, long := range []bool{true, false} {
			for _, wf := range levels {
				emitted[telemetry.SLABurnRate+"|Window="+slajob.WindowLabel(r, long)+",Workflow="+wf] = true
			}
		}
	}
	emitted[telemetry.SLALatencyBreach+"|Workflow="+slajob.Overall] = true
	windows, composites := 0, map[string]string{}
	for id, r := range res {
		r := r.(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		switch {
		case r["Type"] == "AWS::CloudWatch::Alarm" && strings.HasPrefix(id, "SlaBurn"):
			windows++
			if p["AlarmActions"] != nil || p["OKActions"] != nil {
				t.Errorf("%s: a window alarm notifies; only its composite should", id)
			}
			fallthrough
		case r["Type"] == "AWS::CloudWatch::Alarm" && strings.HasPrefix(id, "SlaLatency"):
			var dims []string
			for _, d := range p["Dimensions"].([]any) {
				d := d.(map[string]any)
				dims = append(dims, d["Name"].(string)+"="+d["Value"].(string))
			}
			slices.Sort(dims)
			key := p["MetricName"].(string) + "|" + strings.Join(dims, ",")
			if p["Namespace"] != telemetry.Namespace || !emitted[key] {
				t.Errorf("%s watches %s %s, which the SLA job does not emit", id, p["Namespace"], key)
			}
			if !strings.Contains(p["AlarmDescription"].(string), "Runbook: docs/runbooks/sla-") {
				t.Errorf("%s: no runbook link", id)
			}
		case r["Type"] == "AWS::CloudWatch::CompositeAlarm" && strings.HasPrefix(id, "SlaBurn"):
			b, _ := json.Marshal(p["AlarmRule"])
			composites[p["AlarmName"].(string)] = string(b)
			if p["AlarmActions"] == nil || p["OKActions"] == nil || !strings.Contains(p["AlarmDescription"].(string), "Runbook: docs/runbooks/sla-burn-") {
				t.Errorf("%s: composite without actions or runbook: %v", id, p)
			}
		}
	}
	if want := 2 * len(sla.WorkbookRules()) * len(levels); windows != want {
		t.Errorf("%d window alarms, want %d", windows, want)
	}
	if want := len(sla.WorkbookRules()) * len(levels); len(composites) != want {
		t.Errorf("%d burn-rate composites, want %d: %v", len(composites), want, composites)
	}
	for _, r := range sla.WorkbookRules() {
		for _, name := range []string{"knhk-prod-" + SLABurnAlarmID(r), "knhk-prod-" + SLABurnAlarmID(r) + "-billing/payments", "knhk-prod-" + SLABurnAlarmID(r) + "-billing/refunds"} {
			rule, ok := composites[name]
			if !ok || !strings.Contains(rule, "ALARM(") || !strings.Contains(rule, " AND ") {
				t.Errorf("composite %s: %q, want ALARM(long) AND ALARM(short)", name, rule)
			}
		}
		// A workflow's composite combines that workflow's window alarms.
		if rule := composites["knhk-prod-"+SLABurnAlarmID(r)+"-billing/payments"]; !strings.Contains(rule, camel(slajob.WindowLabel(r, true))+"WfBillingPayments") {
			t.Errorf("payments composite of %s does not watch payments' window alarms: %s", r.Name, rule)
		}
	}
}
