package executor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/tenancy"
)

// Local principals of these tests: each signs with its own access key.
const (
	selfKey     = "executor-key" // the executor's own
	producerKey = "producer"     // granted acme
	malloryKey  = "mallory"      // granted mallory only
)

// tenantExecutor builds an executor that authorizes by sender, sends its
// continuations signed with selfKey and knows that key as its own.
func (e *env) tenantExecutor() (*Executor, *telemetry.Metrics, *sqs.Client) {
	e.t.Helper()
	sqsAs := func(key string) *sqs.Client {
		cfg, err := e.ep.ConfigAs(e.ctx, key)
		if err != nil {
			e.t.Fatal(err)
		}
		return sqs.NewFromConfig(cfg)
	}
	grants := store.NewGrants(e.ddb, e.state)
	for principal, tenant := range map[string]string{producerKey: "acme", malloryKey: "mallory"} {
		if err := grants.Grant(e.ctx, principal, tenant); err != nil {
			e.t.Fatal(err)
		}
	}
	m := telemetry.NewMetrics(telemetry.Namespace)
	cfg := DefaultConfig()
	cfg.Tenancy = tenancy.Policy{Self: selfKey}
	x := New(cfg, Deps{
		Chains: e.chains, Descriptors: e.reg, Cases: e.cases,
		Sender:     queue.NewSender(sqsAs(selfKey), e.queueURL),
		Alerts:     alert.NewSNS(e.sns, e.topic),
		HTTP:       standin.Client(e.services),
		Grants:     grants,
		Namespaces: e.reg,
		Metrics:    m,
		Log:        telemetry.NewLogger(testLog{e.t}, slog.LevelInfo),
	})
	return x, m, sqsAs(producerKey)
}

// from is one message as Lambda delivers it, sent by sender.
func from(sender string, body any) events.SQSEvent {
	raw, _ := json.Marshal(body)
	return events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-" + sender, Body: string(raw), EventSource: "aws:sqs",
		Attributes: map[string]string{tenancy.SenderAttribute: sender}}}}
}

// TestSenderDecidesTheTenant runs the tenant model against the real local
// endpoint: only a sender granted a tenant starts, continues or signals
// its cases, only its namespaces' workflows start, and the executor's own
// continuations are trusted.
func TestSenderDecidesTheTenant(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.reg.Claim(e.ctx, "commerce", "acme"); err != nil {
		t.Fatal(err)
	}
	x, metrics, producer := e.tenantExecutor()
	input := sampleInput(t, "order-routing")
	acmeCase := message.CaseID("acme", "commerce", "order-routing", "k1")

	refused := []struct {
		name   string
		sender string
		body   any
	}{
		{"another tenant's grant cannot start acme's case", malloryKey + ":session", startMessage("acme", "commerce", "order-routing", "k1", input)},
		{"no SenderId cannot start", "", startMessage("acme", "commerce", "order-routing", "k1", input)},
		{"own tenant, another tenant's namespace", malloryKey, startMessage("mallory", "commerce", "order-routing", "k2", input)},
		{"the open default tenant, another tenant's namespace", producerKey, startMessage("default", "commerce", "order-routing", "k3", input)},
	}
	for _, c := range refused {
		if resp, err := x.Handle(e.ctx, from(c.sender, c.body)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: refused message reported for retry (%v)", c.name, err)
		}
	}
	for _, key := range []string{"k1", "k2", "k3"} {
		for _, tenant := range []string{"acme", "mallory", "default"} {
			if rs, _, _ := e.view.Chain(e.ctx, message.CaseID(tenant, "commerce", "order-routing", key)); len(rs) > 0 {
				t.Fatalf("a refused start opened case %s/%s", tenant, key)
			}
		}
	}

	// The granted producer starts acme's case; the executor's own
	// continuations (signed with its key) carry it to the end.
	raw, _ := json.Marshal(startMessage("acme", "commerce", "order-routing", "k1", input))
	if _, err := producer.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: &e.queueURL, MessageBody: stringp(string(raw))}); err != nil {
		t.Fatal(err)
	}
	e.pump(x, func() bool { return e.ended(acmeCase) }, 90*time.Second)
	rs := e.chain(acmeCase)
	if last := rs[len(rs)-1]; last.Type != history.CaseCompleted {
		t.Fatalf("acme's case ended with %s %+v", last.Type, last.Error)
	}

	// Continuations and events for acme from a sender not granted acme.
	forged := []events.SQSEvent{
		from(malloryKey, message.Continue{Kind: message.KindContinue, Tenant: "acme", CaseID: acmeCase, Reason: message.ReasonResume, ExpectedSeq: 1}),
		from(malloryKey, map[string]any{"specversion": "1.0", "id": "e1", "source": "https://mallory.example", "type": "com.knhk.reply",
			message.TenantExtension: "acme"}),
		from("", map[string]any{"specversion": "1.0", "id": "e2", "source": "https://mallory.example", "type": "com.knhk.reply",
			message.TenantExtension: "acme"}),
	}
	for _, ev := range forged {
		if resp, err := x.Handle(e.ctx, ev); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("refused message reported for retry (%v)", err)
		}
	}
	var out bytes.Buffer
	if err := metrics.Flush(&out); err != nil {
		t.Fatal(err)
	}
	if got, want := emfSum(t, out.Bytes(), telemetry.Unauthorized), float64(len(refused)+len(forged)); got != want {
		t.Fatalf("Unauthorized = %v, want %v", got, want)
	}
	if after := e.chain(acmeCase); len(after) != len(rs) {
		t.Fatalf("refused messages changed acme's chain: %d -> %d receipts", len(rs), len(after))
	}
}

func stringp(s string) *string { return &s }

// subflowDoc is a workflow document: a child that waits (so the parent's
// case spans invocations) and reports its version, or a parent that runs
// lib/child at childVersion.
func subflowDoc(ns, name, version, childVersion string) []byte {
	head := "document:\n  dsl: '1.0.0'\n  namespace: " + ns + "\n  name: " + name + "\n  version: '" + version + "'\n"
	if childVersion == "" {
		return []byte(head + "do:\n  - pause:\n      wait: PT1S\n  - inc:\n      set:\n        n: ${ .n + 1 }\n        v: '" + version + "'\n")
	}
	return []byte(head + "do:\n  - sub:\n      run:\n        workflow:\n          namespace: lib\n          name: child\n          version: " +
		childVersion + "\n          input:\n            n: ${ .start }\n")
}

// TestRunWorkflowPinsSubflows runs `run: workflow` through the executor: the
// child version is resolved when the case starts, recorded in its genesis,
// and used by every later invocation even after latest moved.
func TestRunWorkflowPinsSubflows(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	for _, doc := range [][]byte{subflowDoc("lib", "child", "1.0.0", ""), subflowDoc("apps", "parent", "1.0.0", "latest"),
		subflowDoc("apps", "pinned", "1.0.0", "'1.0.0'")} {
		if _, _, err := e.reg.Push(e.ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	first := message.CaseID("acme", "apps", "parent", "p1")
	e.send(startMessage("acme", "apps", "parent", "p1", map[string]any{"start": 1}))
	// Take the start, then publish child 2.0.0 (latest) while the case waits.
	e.pump(x, func() bool { return len(e.chain(first)) > 2 }, 60*time.Second)
	if _, _, err := e.reg.Push(e.ctx, subflowDoc("lib", "child", "2.0.0", "")); err != nil {
		t.Fatal(err)
	}
	second := message.CaseID("acme", "apps", "parent", "p2")
	third := message.CaseID("acme", "apps", "pinned", "p3")
	e.send(startMessage("acme", "apps", "parent", "p2", map[string]any{"start": 10}),
		startMessage("acme", "apps", "pinned", "p3", map[string]any{"start": 20}))
	e.pump(x, func() bool { return e.ended(first) && e.ended(second) && e.ended(third) }, 120*time.Second)

	child1, err := e.reg.Resolve(e.ctx, "lib", "child", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	child2, err := e.reg.Resolve(e.ctx, "lib", "child", "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, output string
		pin        history.Subflow
	}{
		{first, `{"n":2,"v":"1.0.0"}`, history.Subflow{Namespace: "lib", Name: "child", Version: "1.0.0", Requested: "latest", Hash: child1.Hash}},
		{second, `{"n":11,"v":"2.0.0"}`, history.Subflow{Namespace: "lib", Name: "child", Version: "2.0.0", Requested: "latest", Hash: child2.Hash}},
		{third, `{"n":21,"v":"1.0.0"}`, history.Subflow{Namespace: "lib", Name: "child", Version: "1.0.0", Hash: child1.Hash}},
	} {
		rs := e.chain(c.id)
		last := rs[len(rs)-1]
		if last.Type != history.CaseCompleted || !sameJSON(last.Output, []byte(c.output)) {
			t.Fatalf("case %s ended %s with %s %+v, want output %s", c.id, last.Type, last.Output, last.Error, c.output)
		}
		var data struct {
			Subflows []history.Subflow `json:"subflows"`
		}
		if err := json.Unmarshal(rs[0].Data, &data); err != nil || len(data.Subflows) != 1 || data.Subflows[0] != c.pin {
			t.Fatalf("case %s genesis pins %+v (%v), want %+v", c.id, data.Subflows, err, c.pin)
		}
	}
}
