package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/telemetry"
)

// forgedContinue is a continuation written by hand, as anyone who can send
// to the work queue could.
func forgedContinue(id string, reason message.Reason, ref string, seq int64, due time.Time) queue.Message {
	return queue.Message{CaseID: id, Body: message.Continue{Kind: message.KindContinue, Tenant: suite.tenant, CaseID: id,
		Reason: reason, Ref: ref, ExpectedSeq: seq, DueAt: due}}
}

// awaitChain polls a case's chain until ok holds.
func awaitChain(t *testing.T, ctx context.Context, id string, ok func([]*receipt.Receipt) bool) []*receipt.Receipt {
	t.Helper()
	var rs []*receipt.Receipt
	err := poll(ctx, 500*time.Millisecond, func() (bool, error) {
		var err error
		rs, _, err = suite.chains.Chain(ctx, id)
		return err == nil && ok(rs), err
	})
	if err != nil {
		t.Fatalf("case %s: %v (chain %v)", id, err, types(rs))
	}
	return rs
}

// TestForgedDueAtDoesNotFireTimers sends timer continuations whose dueAt is
// an hour ago for a 10-minute wait and for a 5-day workflow deadline. Both
// are delayed again to the due time the chain recorded: no timer fires and
// both cases keep waiting, while a 2-second timer case beside them
// completes and verifies.
func TestForgedDueAtDoesNotFireTimers(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	wait := newCase("e2e", "wait-ten", "forged-due-wait", map[string]any{})
	deadline := newCase("e2e", "deadline", "forged-due-deadline", map[string]any{})
	good := newCase("e2e", "timer", "forged-due-good", map[string]any{"n": 1})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{wait, deadline, good}); err != nil {
		t.Fatal(err)
	}
	ws := awaitChain(t, ctx, wait.ID, func(rs []*receipt.Receipt) bool { return count(rs, history.TimerScheduled) == 1 })
	ds := awaitChain(t, ctx, deadline.ID, func(rs []*receipt.Receipt) bool { return count(rs, history.EventAwaited) == 1 })
	past := time.Now().Add(-time.Hour)
	if err := suite.work.Send(ctx, forgedContinue(wait.ID, message.ReasonTimer, "/0", int64(len(ws)), past),
		forgedContinue(deadline.ID, message.ReasonTimer, "~timeout", int64(len(ds)), past)); err != nil {
		t.Fatal(err)
	}
	outs := awaitAll(t, ctx, []localrun.Case{good})
	if outs[0].Status != history.CaseCompleted {
		t.Fatalf("the good timer case ended %+v", outs[0])
	}
	readChain(t, ctx, good.ID)
	awaitQueueIdle(t, ctx)
	for _, c := range []struct {
		id   string
		seen int
	}{{wait.ID, len(ws)}, {deadline.ID, len(ds)}} {
		rs := readChain(t, ctx, c.id)
		if len(rs) != c.seen || count(rs, history.TimerFired) != 0 {
			t.Errorf("case %s advanced on a forged dueAt: %v", c.id, types(rs))
		}
	}
}

// TestForgedExpectedSeqIsDropped sends a continuation claiming 50 more
// receipts than a waiting case has: it is re-read, then dropped and
// counted (ContinuationsInvalid); the case is not quarantined and completes
// on its real event.
func TestForgedExpectedSeqIsDropped(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 120*time.Second)
	since := time.Now()
	c := newCase("e2e", "listener", "forged-seq", map[string]any{"ticket": "t-forged-seq"})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitSubscribed(t, ctx, c.ID)
	rs := readChain(t, ctx, c.ID)
	if err := suite.work.Send(ctx, forgedContinue(c.ID, message.ReasonResume, "", int64(len(rs)+50), time.Time{})); err != nil {
		t.Fatal(err)
	}
	awaitMetricSum(t, ctx, telemetry.ContinuationsInvalid, since, 1)
	if fs, err := suite.cases.Quarantined(ctx, c.ID); err != nil || len(fs) > 0 {
		t.Fatalf("an intact case was quarantined on a message's claim: %v %v", fs, err)
	}
	reply := map[string]any{"specversion": "1.0", "id": "reply-seq-" + suite.run, "source": "https://e2e.knhk.local",
		"type": "com.knhk.e2e.reply.v1", "subject": "t-forged-seq", "datacontenttype": "application/json",
		"knhktenant": suite.tenant, "data": map[string]any{"answer": "yes"}}
	if err := suite.work.Send(ctx, queue.Message{Body: reply}); err != nil {
		t.Fatal(err)
	}
	if out := output(t, awaitChain(t, ctx, c.ID, func(rs []*receipt.Receipt) bool { return rs[len(rs)-1].Type == history.CaseCompleted })); out != `{"answer":"yes"}` {
		t.Errorf("output %s", out)
	}
	readChain(t, ctx, c.ID)
}

// TestStartConflictIsReported reuses an idempotency key with another
// input: the case is unchanged, the conflict is counted and recorded for
// the submitter; the same input again is an ordinary duplicate.
func TestStartConflictIsReported(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	since := time.Now()
	c := newCase("e2e", "five-tasks", "conflict", map[string]any{"qty": 2, "unitPrice": 10})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, []localrun.Case{c})
	before := readChain(t, ctx, c.ID)
	other := c
	other.Input = json.RawMessage(`{"qty":2000,"unitPrice":10}`)
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c, other}); err != nil {
		t.Fatal(err)
	}
	awaitMetricSum(t, ctx, telemetry.StartConflicts, since, 1)
	cs, err := suite.cases.StartConflicts(ctx, c.ID)
	if err != nil || len(cs) != 1 || cs[0].CaseInputHash != before[0].InputHash || cs[0].InputHash == before[0].InputHash {
		t.Fatalf("recorded conflicts %+v (%v)", cs, err)
	}
	awaitQueueIdle(t, ctx)
	if after := readChain(t, ctx, c.ID); len(after) != len(before) {
		t.Fatalf("a conflicting start changed the case: %v", types(after))
	}
}

// TestDuplicateStartsChargeOnce sends one start message 20 times at a
// service that takes a second to answer: every repeated POST carries the
// same Idempotency-Key, so the stand-in performs one charge, and the case
// records it once.
func TestDuplicateStartsChargeOnce(t *testing.T) {
	if suite.external {
		t.Skip("counts requests at the in-process stand-ins")
	}
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	c := newCase("e2e", "slow-charge", "duplicate-charge", map[string]any{"amount": 42})
	good := newCase("e2e", "five-tasks", "duplicate-charge-good", map[string]any{"qty": 1, "unitPrice": 3})
	before := suite.env.Standin.Stats()
	copies := make([]localrun.Case, 20)
	for i := range copies {
		copies[i] = c
	}
	if err := localrun.Submit(ctx, suite.work, append(copies, good)); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, []localrun.Case{c, good})
	awaitQueueIdle(t, ctx)
	for _, id := range []string{c.ID, good.ID} {
		rs := readChain(t, ctx, id)
		if rs[len(rs)-1].Type != history.CaseCompleted || len(duplicates(rs)) > 0 || count(rs, history.CaseStarted) != 1 {
			t.Errorf("case %s: %v", id, types(rs))
		}
	}
	after := suite.env.Standin.Stats()
	t.Logf("20 duplicate starts: %d POSTs, %d effects, %d replayed", after.Requests-before.Requests, after.Effects-before.Effects, after.Replays-before.Replays)
	if n := after.Effects - before.Effects; n != 1 || after.Unkeyed != before.Unkeyed {
		t.Errorf("%d charges performed (%d unkeyed requests), want exactly 1", n, after.Unkeyed-before.Unkeyed)
	}
}

// TestBreakerRejectedReachesCloudWatch runs a case whose eight calls go
// to a failing host: the first five open the executor's breaker, the rest
// are rejected without a request, and BreakerRejected reaches the local
// CloudWatch through the executor's EMF lines.
func TestBreakerRejectedReachesCloudWatch(t *testing.T) {
	if suite.external {
		t.Skip("calls a stand-in host of the local stack")
	}
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	since := time.Now()
	before := suite.env.Standin.Stats()
	c := newCase("e2e", "failing-calls", "breaker", map[string]any{})
	outs := awaitAll(t, ctx, submit(t, ctx, c))
	if outs[0].Status != history.CaseCompleted {
		t.Fatalf("case ended %+v", outs[0])
	}
	readChain(t, ctx, c.ID)
	if n := suite.env.Standin.Stats().Requests - before.Requests; n >= 8 {
		t.Errorf("%d requests reached the failing host: the breaker rejected none", n)
	}
	awaitMetricSum(t, ctx, telemetry.BreakerRejected, since, 1)
	awaitMetricSum(t, ctx, telemetry.BreakerOpened, since, 1)
}

func submit(t *testing.T, ctx context.Context, cs ...localrun.Case) []localrun.Case {
	t.Helper()
	if err := localrun.Submit(ctx, suite.work, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// effectsRequested counts the calls the chains record.
func effectsRequested(t *testing.T, ctx context.Context, cases []localrun.Case) int {
	t.Helper()
	n := 0
	for _, c := range cases {
		n += count(readChain(t, ctx, c.ID), history.EffectRequested)
	}
	return n
}
