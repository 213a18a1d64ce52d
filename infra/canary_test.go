package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/stack"
)

// TestCanary: the canary runs every minute with the freshness of the
// context, may send to the work queue but reaches neither the checkpoints,
// the signing key nor the topics, and the executor accepts its reserved
// tenant (open) besides the configured open tenants.
func TestCanary(t *testing.T) {
	s := synth(t, "local", envCases[1].ctx)
	res := templateJSON(t, s)["Resources"].(map[string]any)
	var env, execEnv map[string]any
	rate, sends := false, false
	for id, r := range res {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch {
		case r["Type"] == "AWS::Lambda::Function" && strings.HasPrefix(id, "Canary"):
			env = props["Environment"].(map[string]any)["Variables"].(map[string]any)
		case r["Type"] == "AWS::Lambda::Function" && strings.HasPrefix(id, "Executor"):
			execEnv = props["Environment"].(map[string]any)["Variables"].(map[string]any)
		case r["Type"] == "AWS::Events::Rule" && strings.HasPrefix(id, "CanarySchedule"):
			rate = props["ScheduleExpression"] == "rate(1 minute)"
		case r["Type"] == "AWS::IAM::Policy" && strings.HasPrefix(id, "CanaryRole"):
			b, _ := json.Marshal(props)
			sends = strings.Contains(string(b), "sqs:SendMessage") && strings.Contains(string(b), "WorkQueue")
			for _, other := range []string{"CheckpointsTable", "kms:Sign", "sns:", "dynamodb:DeleteItem", "DeadLetterQueue"} {
				if strings.Contains(string(b), other) {
					t.Errorf("canary role policy reaches %s: %s", other, b)
				}
			}
		}
	}
	if env[canary.EnvFreshness] != "3m0s" || env[stack.EnvName(stack.OutWorkQueueURL)] == nil || env[stack.EnvName(stack.OutReceiptsTable)] == nil {
		t.Fatalf("canary environment %v", env)
	}
	if !rate || !sends {
		t.Fatalf("schedule of rate(1 minute) %v, sends to the work queue %v", rate, sends)
	}
	if execEnv[EnvOpenTenants] != "default,"+canary.Tenant {
		t.Fatalf("executor open tenants %q, want the configured ones and %s", execEnv[EnvOpenTenants], canary.Tenant)
	}
	for _, open := range [][]string{{"*"}, {canary.Tenant, "a"}} {
		if got := executorOpenTenants(stackconfig.Config{OpenTenants: open}); strings.Join(got, ",") != strings.Join(open, ",") {
			t.Errorf("open tenants %v became %v", open, got)
		}
	}
}

// TestNotifications: the context's e-mail address is subscribed to both
// severity topics, PagerDuty over HTTPS to page only, the Slack channel
// (AWS Chatbot) to both; without context the topics have no subscribers.
func TestNotifications(t *testing.T) {
	count := func(s *synthesized) (subs map[string][]string, slackTopics int) {
		subs = map[string][]string{}
		for _, r := range templateJSON(t, s)["Resources"].(map[string]any) {
			r := r.(map[string]any)
			p, _ := r["Properties"].(map[string]any)
			switch r["Type"] {
			case "AWS::SNS::Subscription":
				b, _ := json.Marshal(p["TopicArn"])
				topic := "ticket"
				if strings.Contains(string(b), "PageTopic") {
					topic = "page"
				}
				subs[topic] = append(subs[topic], p["Protocol"].(string)+":"+p["Endpoint"].(string))
			case "AWS::Chatbot::SlackChannelConfiguration":
				if p["SlackChannelId"] != "C0123456789" || p["SlackWorkspaceId"] != "T0123456789" {
					t.Errorf("slack channel %v", p)
				}
				slackTopics = len(p["SnsTopicArns"].([]any))
			}
		}
		return subs, slackTopics
	}
	subs, slack := count(synth(t, "local", envCases[1].ctx))
	if strings.Join(subs["page"], " ") != "email:oncall@example.com https:https://events.pagerduty.com/integration/abc/enqueue" &&
		strings.Join(subs["page"], " ") != "https:https://events.pagerduty.com/integration/abc/enqueue email:oncall@example.com" {
		t.Errorf("page subscriptions %v", subs["page"])
	}
	if strings.Join(subs["ticket"], " ") != "email:oncall@example.com" || slack != 2 {
		t.Errorf("ticket subscriptions %v, slack topics %d", subs["ticket"], slack)
	}
	if subs, slack := count(synth(t, "prod", nil)); len(subs) != 0 || slack != 0 {
		t.Errorf("subscriptions without context: %v, slack %d", subs, slack)
	}
}
