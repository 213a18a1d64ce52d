package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/knhk/knhk/shared/tuner"
)

// TestTuner: the learning loop runs every minute with the context's
// guardrails and the mapping's deployed maximum, may update the work queue
// mapping only (listing has no resource-level permission), and reaches
// neither the checkpoints, the signing key, the topics nor the queues'
// messages.
func TestTuner(t *testing.T) {
	s := synth(t, "tuner", map[string]any{"tuner": `{"enabled":true,"allow":["maxConcurrency"]}`, "executorMaxConcurrency": "12"})
	res := templateJSON(t, s)["Resources"].(map[string]any)
	var env map[string]any
	rate := false
	var policy string
	for id, r := range res {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch {
		case r["Type"] == "AWS::Lambda::Function" && strings.HasPrefix(id, "Tuner"):
			env = props["Environment"].(map[string]any)["Variables"].(map[string]any)
		case r["Type"] == "AWS::Events::Rule" && strings.HasPrefix(id, "TunerSchedule"):
			rate = props["ScheduleExpression"] == "rate(1 minute)"
		case r["Type"] == "AWS::IAM::Policy" && strings.HasPrefix(id, "TunerRole"):
			b, _ := json.Marshal(props)
			policy = string(b)
		}
	}
	if env[tuner.EnvGuard] != `{"enabled":true,"allow":["maxConcurrency"]}` || env[tuner.EnvMaxConcurrency] != "12" ||
		env[tuner.EnvExecutor] == nil || env[tuner.EnvWorkQueueArn] == nil {
		t.Fatalf("tuner environment %v", env)
	}
	if !rate {
		t.Fatal("no rate(1 minute) schedule for the tuner")
	}
	for _, want := range []string{"lambda:UpdateEventSourceMapping", "event-source-mapping:", "lambda:ListEventSourceMappings", "sqs:GetQueueAttributes"} {
		if !strings.Contains(policy, want) {
			t.Errorf("tuner policy lacks %s: %s", want, policy)
		}
	}
	for _, other := range []string{"CheckpointsTable", "kms:Sign", "sns:", "sqs:SendMessage", "sqs:ReceiveMessage", "lambda:InvokeFunction", "DeadLetterQueue"} {
		if strings.Contains(policy, other) {
			t.Errorf("tuner policy reaches %s: %s", other, policy)
		}
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{"functionsDir": fakeFunctions, "env": "local", "tuner": `{"allow":["everything"]}`}})
	if _, err := DefineApp(app); err == nil || !strings.Contains(err.Error(), "unknown setting kind") {
		t.Errorf("guardrails with an unknown setting kind: %v", err)
	}
}
