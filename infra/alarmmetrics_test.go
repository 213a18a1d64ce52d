package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/sla"
)

// templateDim renders a dimension value of the template as EmittedMetric.Key
// renders a resolved one.
func templateDim(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestEveryAlarmWatchesAnEmittedMetric reads the synthesized template: every
// metric alarm's namespace, metric name and dimensions (names and values)
// are a series that EmittedMetrics declares some function emits (or AWS
// publishes for the stack's own function or queue), and every alarm's
// description links a runbook that exists in docs/runbooks.
func TestEveryAlarmWatchesAnEmittedMetric(t *testing.T) {
	s := synth(t, "prod", nil)
	emitted := map[string]string{}
	for _, m := range EmittedMetrics(s.stack) {
		emitted[m.Key(s.stack.Stack)] = m.Emitter
	}
	link := regexp.MustCompile(`Runbook: docs/runbooks/([a-z0-9-]+\.md)`)
	res := templateJSON(t, s)["Resources"].(map[string]any)
	alarms := 0
	for id, r := range res {
		r := r.(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		if r["Type"] != "AWS::CloudWatch::Alarm" && r["Type"] != "AWS::CloudWatch::CompositeAlarm" {
			continue
		}
		alarms++
		m := link.FindStringSubmatch(templateDim(p["AlarmDescription"]))
		if m == nil {
			t.Errorf("%s: the description links no runbook", id)
		} else if _, err := os.Stat(filepath.Join("..", "docs", "runbooks", m[1])); err != nil {
			t.Errorf("%s: runbook %s: %v", id, m[1], err)
		}
		if r["Type"] == "AWS::CloudWatch::CompositeAlarm" {
			continue
		}
		if p["Metrics"] != nil {
			t.Errorf("%s: metric math alarm; declare its inputs and extend this test", id)
			continue
		}
		var dims []string
		for _, d := range p["Dimensions"].([]any) {
			d := d.(map[string]any)
			dims = append(dims, d["Name"].(string)+"="+templateDim(d["Value"]))
		}
		slices.Sort(dims)
		key := p["Namespace"].(string) + "|" + p["MetricName"].(string) + "|" + strings.Join(dims, ",")
		if _, ok := emitted[key]; !ok {
			t.Errorf("%s watches %s, which no function declares it emits", id, key)
		}
	}
	// 9 alarms, 8 burn windows + latency, 4 burn composites, canary, unhealthy.
	if want := len(AlarmSpecs(s.stack.Functions, s.stack.Messaging)) + 2*len(sla.WorkbookRules()) + 1 + len(sla.WorkbookRules()) + 2; alarms != want {
		t.Errorf("%d alarms in the template, want %d", alarms, want)
	}
}

// TestSeverityRouting: burn-rate composites notify the topic of their
// rule's severity, the canary pages, the latency breach opens a ticket, and
// "unhealthy" is ALARM when any page alarm is.
func TestSeverityRouting(t *testing.T) {
	s := synth(t, "prod", nil)
	res := templateJSON(t, s)["Resources"].(map[string]any)
	topicOf := func(p map[string]any) string {
		b, _ := json.Marshal(p["AlarmActions"])
		switch {
		case strings.Contains(string(b), "PageTopic"):
			return "page"
		case strings.Contains(string(b), "TicketTopic"):
			return "ticket"
		}
		return string(b)
	}
	got := map[string]string{}
	var unhealthy string
	for _, r := range res {
		r := r.(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		switch r["Type"] {
		case "AWS::CloudWatch::CompositeAlarm":
			name := p["AlarmName"].(string)
			if name == "knhk-prod-"+AlarmUnhealthy {
				b, _ := json.Marshal(p["AlarmRule"])
				unhealthy = string(b)
				continue
			}
			got[name] = topicOf(p)
		case "AWS::CloudWatch::Alarm":
			if n, _ := p["AlarmName"].(string); n == "knhk-prod-"+AlarmCanaryFailure || n == "knhk-prod-"+AlarmSLALatencyBreach {
				got[n] = topicOf(p)
			}
		}
	}
	for _, r := range sla.WorkbookRules() {
		if name := "knhk-prod-" + SLABurnAlarmID(r); got[name] != string(r.Severity) {
			t.Errorf("%s notifies %q, want %s", name, got[name], r.Severity)
		}
	}
	if got["knhk-prod-"+AlarmCanaryFailure] != "page" || got["knhk-prod-"+AlarmSLALatencyBreach] != "ticket" {
		t.Errorf("canary %q, latency %q; want page, ticket", got["knhk-prod-"+AlarmCanaryFailure], got["knhk-prod-"+AlarmSLALatencyBreach])
	}
	if strings.Count(unhealthy, "ALARM(") != 3 || !strings.Contains(unhealthy, " OR ") {
		t.Errorf("unhealthy rule %s, want ALARM of the canary OR of each page rule", unhealthy)
	}
}
