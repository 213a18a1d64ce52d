package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/store"
)

// stranger is a second local principal, granted only a tenant of its own:
// the local endpoint reports each access key as a sender of its own.
func stranger(t *testing.T) (send *queue.Sender, tenant string) {
	t.Helper()
	if suite.external {
		t.Skip("needs a second principal: the local endpoint tells access keys apart; on AWS, run it with a producer role")
	}
	key := "mallory-" + suite.run
	tenant = "mallory-" + suite.run
	if err := store.NewGrants(suite.db, suite.res.StateTable).Grant(t.Context(), key, tenant); err != nil {
		t.Fatal(err)
	}
	cfg := suite.cfg.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(key, "test", "")
	return queue.NewSender(sqs.NewFromConfig(cfg), suite.res.WorkQueueURL), tenant
}

// noCase fails when a chain exists for a case.
func noCase(t *testing.T, ctx context.Context, id, why string) {
	t.Helper()
	rs, _, err := suite.chains.Chain(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) > 0 {
		t.Fatalf("%s: case %s exists with %d receipts (%v)", why, id, len(rs), types(rs))
	}
}

// TestTenantEventForAnotherTenantIsRefused: a CloudEvent naming another
// tenant in knhktenant, sent by a principal not granted that tenant, does
// not resume the tenant's waiting case; the same event from a granted
// principal does.
func TestTenantEventForAnotherTenantIsRefused(t *testing.T) {
	noteFailure(t)
	mallory, _ := stranger(t)
	ctx := ctxFor(t, 90*time.Second)
	ticket := "tenant-" + suite.run
	c := newCase("e2e", "listener", "tenant-listener", map[string]any{"ticket": ticket})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitSubscribed(t, ctx, c.ID)
	reply := func(id string, data map[string]any) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id, "source": "https://e2e.knhk.local",
			"type": "com.knhk.e2e.reply.v1", "subject": ticket, "datacontenttype": "application/json",
			message.TenantExtension: suite.tenant, "data": data}
	}
	if err := mallory.Send(ctx, queue.Message{Body: reply("forged-"+suite.run, map[string]any{"answer": "forged"})}); err != nil {
		t.Fatal(err)
	}
	awaitQueueIdle(t, ctx)
	if tail, err := suite.chains.Tail(ctx, c.ID); err != nil || tail.Type != history.EventAwaited {
		t.Fatalf("after the forged event the case's last receipt is %+v (%v), want it still waiting", tail, err)
	}
	if err := suite.work.Send(ctx, queue.Message{Body: reply("owner-"+suite.run, map[string]any{"answer": "yes"})}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{c}, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatal(err)
	}
	rs := readChain(t, ctx, c.ID)
	if got, want := output(t, rs), `{"answer":"yes"}`; got != want {
		t.Errorf("output %s, want %s (the granted sender's event)", got, want)
	}
}

// TestTenantStartNeedsAGrant: a principal not granted a tenant cannot start
// a case of it, nor continue one; it starts cases of its own tenant.
func TestTenantStartNeedsAGrant(t *testing.T) {
	noteFailure(t)
	mallory, own := stranger(t)
	ctx := ctxFor(t, 90*time.Second)
	victim := newCase("e2e", "five-tasks", "tenant-forged-start", map[string]any{"qty": 1, "unitPrice": 10})
	mine := victim
	mine.Tenant, mine.ID = own, message.CaseID(own, victim.Namespace, victim.Workflow, victim.Key)
	if err := localrun.Submit(ctx, mallory, []localrun.Case{victim, mine}); err != nil {
		t.Fatal(err)
	}
	// A continuation for a case of the suite's tenant, forged by the stranger.
	good := newCase("e2e", "five-tasks", "tenant-good", map[string]any{"qty": 2, "unitPrice": 10})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{good}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{good, mine}, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatal(err)
	}
	goodChain := readChain(t, ctx, good.ID)
	if got := output(t, goodChain); got != `{"label":"total 24","total":24}` {
		t.Fatalf("the granted sender's case output %s", got)
	}
	before := len(goodChain)
	if err := mallory.Send(ctx, queue.Message{CaseID: good.ID, Body: message.Continue{Kind: message.KindContinue, Tenant: suite.tenant,
		CaseID: good.ID, Reason: message.ReasonResume, ExpectedSeq: int64(before + 5)}}); err != nil {
		t.Fatal(err)
	}
	awaitQueueIdle(t, ctx)
	noCase(t, ctx, victim.ID, "a start for the suite's tenant from a principal without its grant")
	if fs, err := suite.cases.Quarantined(ctx, good.ID); err != nil || len(fs) > 0 {
		t.Fatalf("a continuation from a principal without the tenant's grant quarantined case %s: %v %v", good.ID, fs, err)
	}
	if after := len(readChain(t, ctx, good.ID)); after != before {
		t.Fatalf("a forged continuation changed the chain: %d -> %d receipts", before, after)
	}
	if outs, err := localrun.Collect(ctx, []localrun.Case{mine}, suite.chains); err != nil || outs[0].Status != history.CaseCompleted {
		t.Fatalf("the stranger's own case: %+v, %v", outs, err)
	}
}

// TestTenantCannotStartAnotherTenantsWorkflow: a namespace claimed by one
// tenant serves only that tenant, even to a principal granted every tenant.
func TestTenantCannotStartAnotherTenantsWorkflow(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	ns := "owned-" + strings.ToLower(suite.run)
	owner := "owner-" + suite.run
	doc := fmt.Sprintf("document:\n  dsl: '1.0.0'\n  namespace: %s\n  name: private\n  version: '1.0.0'\ndo:\n  - echo:\n      set:\n        tenant: owner\n", ns)
	if err := suite.reg.Claim(ctx, ns, owner); err != nil {
		t.Fatal(err)
	}
	if _, _, err := suite.reg.Push(ctx, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	other := newCase(ns, "private", "tenant-other", map[string]any{})
	mine := other
	mine.Tenant, mine.ID = owner, message.CaseID(owner, ns, "private", other.Key)
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{other, mine}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{mine}, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatal(err)
	}
	if got := output(t, readChain(t, ctx, mine.ID)); got != `{"tenant":"owner"}` {
		t.Errorf("owner's case output %s", got)
	}
	awaitQueueIdle(t, ctx)
	noCase(t, ctx, other.ID, "a start of another tenant's workflow")
}

// TestRunWorkflowCompletes publishes a parent and a child workflow and runs
// the parent on the deployed executor: the child's version is pinned in the
// genesis receipt and the chain verifies.
func TestRunWorkflowCompletes(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	lib := "lib-" + strings.ToLower(suite.run)
	child := fmt.Sprintf("document:\n  dsl: '1.0.0'\n  namespace: %s\n  name: child\n  version: '1.0.0'\ndo:\n  - pause:\n      wait: PT1S\n  - inc:\n      set:\n        n: ${ .n + 1 }\n", lib)
	parent := fmt.Sprintf("document:\n  dsl: '1.0.0'\n  namespace: e2e\n  name: parent-%s\n  version: '1.0.0'\ndo:\n  - sub:\n      run:\n        workflow:\n          namespace: %s\n          name: child\n          version: latest\n          input:\n            n: ${ .start }\n  - twice:\n      set:\n        n: ${ .n * 2 }\n", strings.ToLower(suite.run), lib)
	ce, _, err := suite.reg.Push(ctx, []byte(child))
	if err != nil {
		t.Fatal(err)
	}
	if err := suite.reg.Share(ctx, lib, true); err != nil {
		t.Fatal(err)
	}
	pe, _, err := suite.reg.Push(ctx, []byte(parent))
	if err != nil {
		t.Fatal(err)
	}
	c := newCase("e2e", pe.Name, "run-workflow", map[string]any{"start": 20})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{c}, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatal(err)
	}
	rs := readChain(t, ctx, c.ID)
	if got := output(t, rs); got != `{"n":42}` {
		t.Errorf("output %s, want {\"n\":42}", got)
	}
	var data struct {
		Subflows []history.Subflow `json:"subflows"`
	}
	want := history.Subflow{Namespace: lib, Name: "child", Version: "1.0.0", Requested: "latest", Hash: ce.Hash}
	if err := json.Unmarshal(rs[0].Data, &data); err != nil || len(data.Subflows) != 1 || data.Subflows[0] != want {
		t.Fatalf("genesis pins %+v (%v), want %+v", data.Subflows, err, want)
	}
}
