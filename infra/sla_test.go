package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
)

// TestSLAJob: the SLA job runs every minute with the objectives, window
// divisor and guard of the context, and its role reaches neither the
// receipts nor the checkpoints nor the signing key.
func TestSLAJob(t *testing.T) {
	s := synth(t, "sla", map[string]any{stackconfig.CtxSLAObjectives: `{"payments":{"availability":0.9995}}`,
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
	if env[slajob.EnvObjectives] != `{"payments":{"availability":0.9995}}` || env[slajob.EnvWindowDivisor] != "60" ||
		env[slajob.EnvMinEvents] != "3" || env[stack.EnvName(stack.OutStateTable)] == nil {
		t.Fatalf("SLA environment %v", env)
	}
	if !rate {
		t.Fatal("no SLA schedule of rate(1 minute)")
	}
}
