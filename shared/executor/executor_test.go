package executor

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/engine"
)

var samples = []struct{ ns, name string }{
	{"payments", "payment-processing"},
	{"payments", "cross-border-payment"},
	{"commerce", "order-routing"},
	{"insurance", "insurance-claim"},
	{"energy", "grid-operations"},
	{"manufacturing", "supply-chain-replenishment"},
}

// runSamples starts every sample once, resumes the insurance claim with
// its adjuster's decision, and pumps until all cases ended. It returns the
// case ids by sample name and every body delivered.
func runSamples(t *testing.T, e *env, x *Executor) (map[string]string, []string) {
	t.Helper()
	ids := map[string]string{}
	for _, s := range samples {
		e.send(startMessage("acme", s.ns, s.name, "run-"+s.name, sampleInput(t, s.name)))
		ids[s.name] = message.CaseID("acme", s.ns, s.name, "run-"+s.name)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, id := range ids {
				rs, _, _ := e.view.Chain(e.ctx, id)
				t.Logf("%s %s: %s", name, id, seqs(rs))
				if len(rs) > 0 && rs[len(rs)-1].Error != nil {
					t.Logf("  error %+v", *rs[len(rs)-1].Error)
				}
			}
		}
	})
	claim := ids["insurance-claim"]
	waiting := func() bool {
		subs, err := e.cases.Subscribers(e.ctx, "acme")
		return err == nil && len(subs) == 1 && subs[0] == claim
	}
	seen := e.pump(x, func() bool {
		for name, id := range ids {
			if name != "insurance-claim" && !e.ended(id) {
				return false
			}
		}
		return waiting()
	}, 2*time.Minute)
	ev := standin.AdjusterDecision(sampleInput(t, "insurance-claim").(map[string]any)["claimId"].(string), "decision-1")
	ev["knhktenant"] = "acme"
	e.send(ev)
	seen = append(seen, e.pump(x, func() bool { return e.ended(claim) }, time.Minute)...)
	return ids, seen
}

// sampleConfig gives the samples' declared secrets.
func sampleConfig() Config {
	cfg := DefaultConfig()
	cfg.Engine.Secrets = map[string]any{}
	for _, name := range []string{"fraudApiToken", "acquirerApiKey", "ledgerCredentials", "supplierPortalToken", "screeningApiToken"} {
		cfg.Engine.Secrets[name] = map[string]any{"token": "t-" + name, "username": "knhk", "password": "p-" + name}
	}
	return cfg
}

func TestSamplesCompleteWithVerifiableChains(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(sampleConfig())
	e.ops.reset()
	ids, seen := runSamples(t, e, x)
	total, limit := 0, 0
	for name, id := range ids {
		rs := e.chain(id)
		total += len(rs)
		limit += externalEffects(rs) + 1
		last := rs[len(rs)-1]
		if last.Type != history.CaseCompleted {
			t.Fatalf("%s ended with %s %+v: %s", name, last.Type, last.Error, seqs(rs))
		}
		if !sameJSON(last.Output, []byte(standin.Outputs[name])) {
			t.Errorf("%s output %s, want %s", name, last.Output, standin.Outputs[name])
		}
		if g := rs[0].Genesis; g == nil || g.Workflow != name || g.Tenant != "acme" || len(g.DescriptorHash) != 64 {
			t.Errorf("%s genesis %+v", name, g)
		}
	}
	// At most one conditional write per external effect plus one per case,
	// and nothing else written to the receipts table.
	if got := e.ops.get("PutItem", e.receipts); got > limit || got == 0 {
		t.Errorf("PutItem on receipts = %d for %d receipts, want at most %d", got, total, limit)
	} else {
		t.Logf("PutItem on receipts = %d for %d receipts in %d cases (at most %d)", got, total, len(ids), limit)
	}
	// One chain read per continuation: a start message of a new case reads
	// no chain (its genesis write is conditional), and CloudEvents (the
	// adjuster's decision and the events the samples emit) read
	// subscriptions, not chains.
	continuations := 0
	for _, b := range seen {
		if strings.Contains(b, `"kind":"continue"`) {
			continuations++
		}
	}
	if got := e.ops.get("Query", e.receipts); got != continuations {
		t.Errorf("Query on receipts = %d for %d continuation messages", got, continuations)
	}
	if subs, _ := e.cases.Subscribers(e.ctx, "acme"); len(subs) != 0 {
		t.Errorf("subscriptions left after the listen task ended: %v", subs)
	}
}

func TestRedeliveryChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(sampleConfig())
	ids, seen := runSamples(t, e, x)
	before := map[string]string{}
	for name, id := range ids {
		rs := e.chain(id)
		before[name] = rs[len(rs)-1].Hash
	}
	// Deliver every message of the run twice more.
	for range 2 {
		for _, b := range seen {
			e.send(b)
		}
	}
	drained := 0
	e.pump(x, func() bool {
		ev := e.receive(0)
		if len(ev.Records) == 0 {
			drained++
			return drained >= 2
		}
		drained = 0
		e.handle(x, ev, 60*time.Second)
		return false
	}, 3*time.Minute)
	for name, id := range ids {
		rs := e.chain(id)
		if rs[len(rs)-1].Hash != before[name] {
			t.Errorf("%s: chain changed by redelivery: %s", name, seqs(rs))
		}
	}
}

// barrier holds the fork's two calls until both arrived, so that two
// executors append their results at the same moment.
type barrier struct {
	mu      sync.Mutex
	arrived int
	release chan struct{}
}

func (b *barrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.arrived++
	if b.arrived%2 == 0 {
		close(b.release)
	}
	ch := b.release
	b.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
	}
	b.mu.Lock()
	if b.arrived%2 == 0 && ch == b.release {
		b.release = make(chan struct{})
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"path":"` + r.URL.Path + `"}`))
}

func TestRacingExecutorsJoinOnce(t *testing.T) {
	b := &barrier{release: make(chan struct{})}
	e := newEnv(t, b)
	x1, m1 := e.executor(DefaultConfig())
	x2, m2 := e.executor(DefaultConfig())
	caseID := message.CaseID("acme", "test", "fork-join", "race-1")
	e.send(startMessage("acme", "test", "fork-join", "race-1", map[string]any{"n": 1}))

	// x1 takes the start: it performs one branch's call and sends the other
	// branch to the queue; x2 takes that message. Both calls are held by
	// the barrier and return together, so both executors append at once.
	start := e.receive(5)
	if len(start.Records) != 1 {
		t.Fatalf("start message not received: %d", len(start.Records))
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.handle(x1, start, 60*time.Second)
	}()
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if ev := e.receive(1); len(ev.Records) > 0 {
				e.handle(x2, ev, 60*time.Second)
				return
			}
		}
		t.Error("branch message never arrived")
	}()
	wg.Wait()
	e.pump(x1, func() bool { return e.ended(caseID) }, time.Minute)

	rs := e.chain(caseID)
	counts := map[history.Type]int{}
	keys := map[string]bool{}
	evs, err := e.chains.Events(e.ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		counts[ev.Type]++
		id := string(ev.Type) + " " + ev.Key + " " + string(rune('0'+ev.Attempt))
		if keys[id] {
			t.Fatalf("event %s recorded twice: %s", id, seqs(rs))
		}
		keys[id] = true
	}
	if counts[history.BranchJoined] != 1 || counts[history.CaseCompleted] != 1 {
		t.Fatalf("joins %d, completions %d, want 1 each: %s", counts[history.BranchJoined], counts[history.CaseCompleted], seqs(rs))
	}
	if !strings.Contains(string(rs[len(rs)-1].Output), `"joined":true`) {
		t.Fatalf("output %s", rs[len(rs)-1].Output)
	}
	// The race really happened: one executor lost it, re-read and decided
	// again.
	var buf bytes.Buffer
	_ = m1.Flush(&buf)
	_ = m2.Flush(&buf)
	if got := emfSum(t, buf.Bytes(), telemetry.AppendConflicts); got < 1 {
		t.Fatalf("AppendConflicts = %v: the two appends did not race", got)
	}
}

func TestBadInputIsDroppedAndNothingElseIsLost(t *testing.T) {
	e := newEnv(t, nil)
	x, m := e.executor(DefaultConfig())
	good := message.CaseID("acme", "commerce", "order-routing", "good-1")
	badExpr := message.CaseID("acme", "test", "bad-expression", "bad-1")
	e.send(
		`{"kind":"start","workflow":`, // malformed JSON
		startMessage("acme", "payments", "no-such-workflow", "x-1", map[string]any{}),
		startMessage("acme", "test", "bad-expression", "bad-1", map[string]any{"amount": 5}),
		startMessage("acme", "commerce", "order-routing", "good-1", sampleInput(t, "order-routing")),
		`{"kind":"continue","tenant":"acme","caseId":"00000000000000000000000000000000","reason":"timer","expectedSeq":3}`,
	)
	e.pump(x, func() bool { return e.ended(good) && e.ended(badExpr) }, time.Minute)

	if rs := e.chain(good); !sameJSON(rs[len(rs)-1].Output, []byte(standin.Outputs["order-routing"])) {
		t.Fatalf("the good case was affected: %s", seqs(rs))
	}
	rs := e.chain(badExpr)
	last := rs[len(rs)-1]
	if last.Type != history.CaseFaulted || last.Error == nil || last.Error.Type != engine.ErrExpression || last.Error.Instance != "/do/0/total" {
		t.Fatalf("expression error recorded as %s %+v", last.Type, last.Error)
	}
	if rs, _, _ := e.chains.Chain(e.ctx, message.CaseID("acme", "payments", "no-such-workflow", "x-1")); len(rs) != 0 {
		t.Fatal("an unknown workflow opened a case")
	}
	// Nothing is left for SQS to retry: permanent errors are dropped.
	if ev := e.receive(3); len(ev.Records) != 0 {
		t.Fatalf("%d messages left on the queue", len(ev.Records))
	}
	var buf bytes.Buffer
	if err := m.Flush(&buf); err != nil {
		t.Fatal(err)
	}
	// Malformed JSON, unknown workflow, unknown case.
	if got := emfSum(t, buf.Bytes(), telemetry.PermanentErrors); got != 3 {
		t.Fatalf("PermanentErrors = %v, want 3", got)
	}
}

func TestDeadlineReturnsUnstartedMessages(t *testing.T) {
	e := newEnv(t, nil)
	cfg := DefaultConfig()
	cfg.Margin = 10 * time.Second
	x, _ := e.executor(cfg)
	for i := range 3 {
		e.send(startMessage("acme", "commerce", "order-routing", "late-"+string(rune('a'+i)), sampleInput(t, "order-routing")))
	}
	ev := events.SQSEvent{}
	for len(ev.Records) < 3 {
		ev.Records = append(ev.Records, e.receive(1).Records...)
	}
	// Less time left than the margin: nothing may start.
	resp := e.handle(x, ev, 2*time.Second)
	if len(resp.BatchItemFailures) != 3 {
		t.Fatalf("failures %d, want all 3 returned", len(resp.BatchItemFailures))
	}
	for i := range 3 {
		id := message.CaseID("acme", "commerce", "order-routing", "late-"+string(rune('a'+i)))
		if rs, _, _ := e.chains.Chain(e.ctx, id); len(rs) != 0 {
			t.Fatalf("case %s started although out of time", id)
		}
	}
}

func TestTamperedChainIsQuarantinedNotExtended(t *testing.T) {
	e := newEnv(t, nil)
	x, m := e.executor(DefaultConfig())
	id := message.CaseID("acme", "insurance", "insurance-claim", "tamper-1")
	e.send(startMessage("acme", "insurance", "insurance-claim", "tamper-1", sampleInput(t, "insurance-claim")))
	e.pump(x, func() bool {
		subs, _ := e.cases.Subscribers(e.ctx, "acme")
		return len(subs) == 1
	}, time.Minute)
	rs := e.chain(id)
	// Change one byte of receipt 1's stored JSON.
	stored, put := e.segmentItem(t, id, 1)
	put(strings.Replace(stored, `"attempt":0`, `"attempt":1`, 1))
	ev := standin.AdjusterDecision("clm_55102", "decision-t")
	ev["knhktenant"] = "acme"
	e.send(ev)
	e.pump(x, func() bool {
		fs, _ := e.cases.Quarantined(e.ctx, id)
		return len(fs) > 0
	}, time.Minute)
	after, _, _ := e.chains.Chain(e.ctx, id)
	if len(after) != len(rs) {
		t.Fatalf("a broken chain was extended: %d -> %d receipts", len(rs), len(after))
	}
	var buf bytes.Buffer
	_ = m.Flush(&buf)
	if emfSum(t, buf.Bytes(), telemetry.IntegrityFindings) < 1 {
		t.Fatal("no IntegrityFindings metric")
	}
}

// A case keeps the version it pinned at genesis while latest moves forward
// and back: a rollback is safe for cases in flight.
func TestRollbackIsSafeForCasesInFlight(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	v1, err := os.ReadFile(filepath.Join("..", "..", "events", "workflows", "insurance-claim.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := bytes.Replace(v1, []byte("version: '1.0.0'"), []byte("version: '2.0.0'"), 1)
	v2 = bytes.Replace(v2, []byte(`status: "paid"`), []byte(`status: "paid-v2"`), 1)
	if bytes.Equal(v1, v2) {
		t.Fatal("could not derive version 2")
	}
	claim := func(key, claimID string) string {
		in := sampleInput(t, "insurance-claim").(map[string]any)
		in["claimId"] = claimID
		e.send(startMessage("acme", "insurance", "insurance-claim", key, in))
		return message.CaseID("acme", "insurance", "insurance-claim", key)
	}
	waiting := func(ids ...string) func() bool {
		return func() bool {
			subs, _ := e.cases.Subscribers(e.ctx, "acme")
			n := 0
			for _, s := range subs {
				for _, id := range ids {
					if s == id {
						n++
					}
				}
			}
			return n == len(ids)
		}
	}
	old := claim("inflight-1", "clm-old")
	e.pump(x, waiting(old), time.Minute)
	if _, res, err := e.reg.Push(e.ctx, v2); err != nil || res != registry.Created {
		t.Fatalf("push v2: %s %v", res, err)
	}
	newer := claim("inflight-2", "clm-new")
	e.pump(x, waiting(old, newer), time.Minute)
	// Roll latest back to 1.0.0 while both cases wait.
	if err := e.reg.SetLatest(e.ctx, "insurance", "insurance-claim", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	rolled := claim("inflight-3", "clm-rolled")
	e.pump(x, waiting(old, newer, rolled), time.Minute)
	for _, c := range []string{"clm-old", "clm-new", "clm-rolled"} {
		ev := standin.AdjusterDecision(c, "decision-"+c)
		ev["knhktenant"] = "acme"
		e.send(ev)
	}
	e.pump(x, func() bool { return e.ended(old) && e.ended(newer) && e.ended(rolled) }, time.Minute)
	for id, want := range map[string]string{old: "1.0.0", newer: "2.0.0", rolled: "1.0.0"} {
		rs := e.chain(id)
		last := rs[len(rs)-1]
		status := "paid"
		if want == "2.0.0" {
			status = "paid-v2"
		}
		if rs[0].Genesis.Version != want || last.Type != history.CaseCompleted || !strings.Contains(string(last.Output), `"status":"`+status+`"`) {
			t.Errorf("case pinned %s ended %s %s, want version %s with status %s", rs[0].Genesis.Version, last.Type, last.Output, want, status)
		}
	}
}
