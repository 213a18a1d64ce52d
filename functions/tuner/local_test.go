package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/tuner"
)

// withGuard copies the synthesized template with the tuner's guardrails
// set, as CDK context "tuner" would set them.
func withGuard(t *testing.T, guard string) string {
	t.Helper()
	src, err := provision.TemplatePath()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("stack template: %v (run `make build synth`)", err)
	}
	var tpl map[string]any
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range tpl["Resources"].(map[string]any) {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		env, _ := props["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		if r["Type"] == "AWS::Lambda::Function" && vars[tuner.EnvMaxConcurrency] != nil {
			vars[tuner.EnvGuard] = guard
			found = true
		}
	}
	if !found {
		t.Fatal("the template has no tuner function (run `make build synth`)")
	}
	out := filepath.Join(filepath.Dir(src), "tuner-test.template.json")
	b, _ = json.Marshal(tpl)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(out) })
	return out
}

// TestTunerOnLocalStack runs the deployed tuner function under the local
// Lambda service: after five slow minutes it lowers the work queue
// mapping's maximum concurrency through the Lambda API, records the change
// in the system chain, and the verifier, reading the receipts stream,
// verifies that chain like any case's.
func TestTunerOnLocalStack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole local stack")
	}
	ctx := context.Background()
	tpl := withGuard(t, `{"enabled":true,"allow":["maxConcurrency"]}`)
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ep := localaws.StartT(t)
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env, err := localrun.Up(ctx, localrun.Config{AWS: cfg, TemplatePath: tpl, StatePath: filepath.Join(dir, "state.json"),
		OutputsPath: filepath.Join(dir, "outputs.json"), LogDir: filepath.Join(dir, "logs"), HostDir: filepath.Join(root, "build", "host"),
		Concurrency: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ddb := dynamodb.NewFromConfig(cfg)
	state, receipts := env.Outputs[stack.OutStateTable], env.Outputs[stack.OutReceiptsTable]
	now := time.Now().UTC().Truncate(time.Minute)
	var bs []*sla.Bucket
	for m := now.Add(-5 * time.Minute); m.Before(now); m = m.Add(time.Minute) {
		b := sla.NewBucket("orders/place", m)
		for range 40 {
			_ = b.Observe(sla.Completed, 2*time.Second)
		}
		bs = append(bs, b)
	}
	if err := store.NewSLIs(ddb, state).PutBuckets(ctx, "test", bs); err != nil {
		t.Fatal(err)
	}
	var fn string
	for name, f := range env.Lambda.Stack().Functions {
		if f.Source == "tuner" {
			fn = name
		}
	}
	if fn == "" {
		t.Fatal("no tuner function runs locally")
	}
	var res tuner.Result
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := env.Lambda.Invoke(ctx, fn, []byte(`{}`))
		if err == nil && !out.Failed() {
			if err := json.Unmarshal(out.Payload, &res); err != nil {
				t.Fatalf("tuner result %s: %v", out.Payload, err)
			}
			if !res.Skipped && (len(res.Applied) > 0 || res.At.After(now.Add(2*time.Minute))) {
				break
			}
			if !res.Skipped && len(res.Applied) == 0 {
				// A scheduled run got there first: the change is recorded.
				st, err := (tuner.Items{DB: ddb, Table: state}).State(ctx)
				if err == nil && st.Trial != nil {
					res.Applied = append(res.Applied, *st.Trial)
					break
				}
			}
		} else if err == nil {
			t.Logf("tuner invocation failed: %s %s", out.FunctionError, out.Payload)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no change applied: %+v, %v", res, err)
		}
		time.Sleep(time.Second)
	}
	if len(res.Applied) != 1 || res.Applied[0].Previous != 20 || res.Applied[0].Value != 15 {
		t.Fatalf("applied %+v, want the mapping's 20 lowered by a step to 15", res.Applied)
	}
	lc := lambda.NewFromConfig(cfg, func(o *lambda.Options) { o.BaseEndpoint = aws.String(env.Lambda.LambdaEndpoint()) })
	ms, err := lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{EventSourceArn: aws.String(env.Outputs[stack.OutWorkQueueArn])})
	if err != nil || len(ms.EventSourceMappings) != 1 || aws.ToInt32(ms.EventSourceMappings[0].ScalingConfig.MaximumConcurrency) != 15 {
		t.Fatalf("work queue mapping after the run: %+v, %v", ms, err)
	}
	rs, bad, err := store.NewReceipts(ddb, receipts).Chain(ctx, tuner.CaseID)
	if err != nil || len(bad)+len(receipt.VerifyChain(rs)) != 0 || len(rs) != 2 {
		t.Fatalf("system chain: %d receipts, %v, %v", len(rs), bad, err)
	}
	// The verifier reaches the chain's tail from the stream, without a finding.
	cases := store.NewCases(ddb, state)
	findings := store.NewFindings(ddb, state)
	for end := time.Now().Add(60 * time.Second); ; {
		ws, err := cases.Watermarks(ctx, []string{tuner.CaseID})
		if err == nil && ws[tuner.CaseID].Seq == rs[len(rs)-1].Seq && ws[tuner.CaseID].Hash == rs[len(rs)-1].Hash {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the verifier did not reach the system chain's tail: %+v, %v", ws, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if fs, err := findings.Case(ctx, tuner.CaseID); err != nil || len(fs) != 0 {
		t.Fatalf("findings on the system chain: %v, %v", fs, err)
	}
}
