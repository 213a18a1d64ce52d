package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
)

// metricSum flushes m and adds up one metric.
func metricSum(t *testing.T, m *telemetry.Metrics, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	if err := m.Flush(&buf); err != nil {
		t.Fatal(err)
	}
	return emfSum(t, buf.Bytes(), name)
}

// forged is a continuation built by hand, as anyone who can send to the
// queue could.
func forged(caseID string, reason message.Reason, ref string, seq int64, due time.Time) message.Continue {
	return message.Continue{Kind: message.KindContinue, Tenant: "acme", CaseID: caseID, Reason: reason, Ref: ref, ExpectedSeq: seq, DueAt: due}
}

// sqsEvent turns bodies into one batch as Lambda would deliver it, with an
// optional knhk-case attribute per body.
func sqsEvent(t *testing.T, bodies []any, caseAttrs []string) events.SQSEvent {
	t.Helper()
	var ev events.SQSEvent
	for i, b := range bodies {
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		m := events.SQSMessage{MessageId: "m" + string(rune('0'+i)), Body: string(raw), Attributes: map[string]string{"ApproximateReceiveCount": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{}}
		if i < len(caseAttrs) && caseAttrs[i] != "" {
			m.MessageAttributes[queue.CaseAttribute] = events.SQSMessageAttribute{DataType: "String", StringValue: aws.String(caseAttrs[i])}
		}
		ev.Records = append(ev.Records, m)
	}
	return ev
}

// direct hands a batch built by the test to the executor, as a queue's
// event source mapping would; timeout 0 gives the invocation no deadline.
func (e *env) direct(x *Executor, ev events.SQSEvent, timeout time.Duration) events.SQSEventResponse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(e.ctx, timeout)
	}
	defer cancel()
	resp, err := x.Handle(ctx, ev)
	if err != nil {
		e.t.Fatalf("handler returned an error: %v", err)
	}
	return resp
}

// delayed counts the work queue's delayed messages.
func (e *env) delayed() int {
	e.t.Helper()
	out, err := e.sqs.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &e.queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestForgedDueAtNeverFiresEarly sends timer continuations whose dueAt lies
// in the past for a 10-minute wait and a 5-day workflow deadline: neither
// fires, each is delayed again to the due time the chain recorded; with the
// clock past that time, the same message fires the timer.
func TestForgedDueAtNeverFiresEarly(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	wait := message.CaseID("acme", "test", "wait-ten", "w1")
	deadline := message.CaseID("acme", "test", "deadline", "d1")
	e.send(startMessage("acme", "test", "wait-ten", "w1", map[string]any{}), startMessage("acme", "test", "deadline", "d1", map[string]any{}))
	e.pump(x, func() bool {
		return count(e.chain(wait), history.TimerScheduled) == 1 && count(e.chain(deadline), history.EventAwaited) == 1
	}, time.Minute)
	for _, tc := range []struct {
		id, timer string
		due       time.Duration
	}{{wait, "/0", 10 * time.Minute}, {deadline, "~timeout", 5 * 24 * time.Hour}} {
		before := e.chain(tc.id)
		delayed := e.delayed()
		past := time.Now().Add(-time.Hour)
		resp := e.direct(x, sqsEvent(t, []any{forged(tc.id, message.ReasonTimer, tc.timer, int64(len(before)), past)}, nil), 30*time.Second)
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: forged timer failed: %v", tc.timer, resp.BatchItemFailures)
		}
		after := e.chain(tc.id)
		if len(after) != len(before) {
			t.Fatalf("%s: a forged dueAt in the past advanced the case: %s", tc.timer, seqs(after))
		}
		if got := e.delayed(); got != delayed+1 {
			t.Fatalf("%s: %d delayed messages, want %d (the forged one delayed again)", tc.timer, got, delayed+1)
		}
		// The executor's clock past the recorded due time (and an invocation
		// without deadline, which that clock would otherwise have spent):
		// the same claim fires.
		late, _ := e.executor(DefaultConfig())
		late.now = func() time.Time { return time.Now().Add(tc.due + time.Minute) }
		e.direct(late, sqsEvent(t, []any{forged(tc.id, message.ReasonTimer, tc.timer, int64(len(before)), past)}, nil), 0)
		if n := count(e.chain(tc.id), history.TimerFired); n != 1 {
			t.Fatalf("%s: %d timer.fired receipts once due, want 1", tc.timer, n)
		}
	}
	if rs := e.chain(wait); rs[len(rs)-1].Type != history.CaseCompleted {
		t.Errorf("wait case ended %s, want completed once due", rs[len(rs)-1].Type)
	}
	if rs := e.chain(deadline); rs[len(rs)-1].Type != history.CaseFaulted {
		t.Errorf("deadline case ended %s, want faulted by its timeout once due", rs[len(rs)-1].Type)
	}
}

func count(rs []*receipt.Receipt, typ history.Type) int {
	n := 0
	for _, r := range rs {
		if r.Type == typ {
			n++
		}
	}
	return n
}

// TestForgedExpectedSeqIsDroppedNotQuarantined sends a continuation that
// claims a longer chain than the table holds: after bounded re-reads it is
// dropped and counted, the case is not quarantined, and it completes when
// its real event arrives.
func TestForgedExpectedSeqIsDroppedNotQuarantined(t *testing.T) {
	e := newEnv(t, nil)
	cfg := DefaultConfig()
	cfg.SeqPause = time.Millisecond
	x, m := e.executor(cfg)
	id := message.CaseID("acme", "insurance", "insurance-claim", "seq-1")
	e.send(startMessage("acme", "insurance", "insurance-claim", "seq-1", sampleInput(t, "insurance-claim")))
	e.pump(x, func() bool { subs, _ := e.cases.Subscribers(e.ctx, "acme"); return len(subs) == 1 }, time.Minute)
	n := len(e.chain(id))
	e.ops.reset()
	resp := e.direct(x, sqsEvent(t, []any{forged(id, message.ReasonResume, "", int64(n+50), time.Time{})}, nil), 30*time.Second)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("forged expectedSeq reported for retry: %v", resp.BatchItemFailures)
	}
	if got := e.ops.get("Query", e.receipts); got != 1+cfg.SeqRereads {
		t.Errorf("%d chain reads, want %d (one, then %d re-reads)", got, 1+cfg.SeqRereads, cfg.SeqRereads)
	}
	if fs, _ := e.cases.Quarantined(e.ctx, id); len(fs) > 0 {
		t.Fatalf("an intact case was quarantined on a message's claim: %v", fs)
	}
	if got := metricSum(t, m, telemetry.ContinuationsInvalid); got != 1 {
		t.Errorf("ContinuationsInvalid %v, want 1", got)
	}
	ev := standin.AdjusterDecision("clm_55102", "decision-seq")
	ev["knhktenant"] = "acme"
	e.send(ev)
	e.pump(x, func() bool { return e.ended(id) }, time.Minute)
	if rs := e.chain(id); rs[len(rs)-1].Type != history.CaseCompleted {
		t.Fatalf("case ended %s after a forged continuation", rs[len(rs)-1].Type)
	}
}

// TestQuarantineRefusesUntilReleased quarantines a case on evidence in its
// chain (a modified receipt), repairs the receipt, and shows that the case
// still refuses every message until it is released; then it completes.
func TestQuarantineRefusesUntilReleased(t *testing.T) {
	e := newEnv(t, nil)
	x, m := e.executor(DefaultConfig())
	id := message.CaseID("acme", "insurance", "insurance-claim", "q-1")
	e.send(startMessage("acme", "insurance", "insurance-claim", "q-1", sampleInput(t, "insurance-claim")))
	e.pump(x, func() bool { subs, _ := e.cases.Subscribers(e.ctx, "acme"); return len(subs) == 1 }, time.Minute)
	n := len(e.chain(id))
	original, put := e.segmentItem(t, id, 1)
	put(strings.Replace(original, `"attempt":0`, `"attempt":1`, 1))
	e.direct(x, sqsEvent(t, []any{forged(id, message.ReasonResume, "", int64(n), time.Time{})}, nil), 30*time.Second)
	if fs, _ := e.cases.Quarantined(e.ctx, id); len(fs) == 0 {
		t.Fatal("a modified receipt did not quarantine the case")
	}
	// Repaired, but still quarantined: every message is refused.
	put(original)
	e.ops.reset()
	resp := e.direct(x, sqsEvent(t, []any{forged(id, message.ReasonResume, "", int64(n), time.Time{}),
		startMessage("acme", "insurance", "insurance-claim", "q-1", sampleInput(t, "insurance-claim"))}, nil), 30*time.Second)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("refused messages reported for retry: %v", resp.BatchItemFailures)
	}
	if got := e.ops.get("Query", e.receipts); got != 0 {
		t.Errorf("a quarantined case's chain was read %d times", got)
	}
	if got := metricSum(t, m, telemetry.QuarantineRefused); got != 2 {
		t.Errorf("QuarantineRefused %v, want 2", got)
	}
	if len(e.chain(id)) != n {
		t.Fatal("a quarantined case was extended")
	}
	released, err := e.cases.Release(e.ctx, id, "arn:aws:iam::000000000000:user/operator", "receipt 1 restored from the archive")
	if err != nil || len(released) == 0 {
		t.Fatalf("release: %v %v", released, err)
	}
	if _, err := e.cases.Release(e.ctx, id, "op", "again"); err == nil {
		t.Error("a second release succeeded")
	}
	ev := standin.AdjusterDecision("clm_55102", "decision-q")
	ev["knhktenant"] = "acme"
	e.send(ev)
	e.pump(x, func() bool { return e.ended(id) }, time.Minute)
	if rs := e.chain(id); rs[len(rs)-1].Type != history.CaseCompleted {
		t.Fatalf("released case ended %s", rs[len(rs)-1].Type)
	}
}

func TestCaseKeyTrustsOnlyValidatedMessages(t *testing.T) {
	victim := message.CaseID("acme", "test", "five-tasks", "victim")
	start := startMessage("acme", "test", "five-tasks", "other", map[string]any{})
	tests := []struct {
		name string
		body any
		attr string
		want string
	}{
		{"malformed body with the victim's attribute", map[string]any{"kind": "start", "workflow": 7}, victim, ""},
		{"not JSON with the victim's attribute", "{", victim, ""},
		{"valid start with the victim's attribute", start, victim, message.CaseID("acme", "test", "five-tasks", "other")},
		{"valid continuation", forged(victim, message.ReasonResume, "", 1, time.Time{}), "", victim},
		{"continuation with another case's attribute", forged(victim, message.ReasonResume, "", 1, time.Time{}), message.CaseID("acme", "x", "y", "z"), victim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := sqsEvent(t, []any{tc.body}, []string{tc.attr})
			if s, ok := tc.body.(string); ok {
				ev.Records[0].Body = s
			}
			if got := caseKey(ev.Records[0]); got != tc.want {
				t.Fatalf("key %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMalformedMessageCannotBlockAnotherCase puts a message that fails on
// every receive (a start whose input blob does not exist), carrying the
// victim's case id in its knhk-case attribute, ahead of the victim's own
// message in one batch: only the bad message is returned for retry.
func TestMalformedMessageCannotBlockAnotherCase(t *testing.T) {
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	victim := message.CaseID("acme", "test", "five-tasks", "victim")
	e.send(startMessage("acme", "test", "five-tasks", "victim", map[string]any{"qty": 2, "unitPrice": 5}))
	e.pump(x, func() bool { return e.ended(victim) }, time.Minute)
	poison := message.Start{Kind: message.KindStart, Tenant: "acme", IdempotencyKey: "poison",
		Workflow: message.WorkflowRef{Namespace: "test", Name: "five-tasks"}, InputRef: "sha256:" + strings.Repeat("ab", 32)}
	invalid := map[string]any{"kind": "continue", "caseId": victim, "reason": "nope"}
	next := startMessage("acme", "test", "five-tasks", "victim-2", map[string]any{"qty": 1, "unitPrice": 1})
	nextID := message.CaseID("acme", "test", "five-tasks", "victim-2")
	ev := sqsEvent(t, []any{poison, invalid, forged(victim, message.ReasonResume, "", 1, time.Time{}), next}, []string{victim, victim, "", victim})
	resp := e.direct(x, ev, 30*time.Second)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].MessageId {
		t.Fatalf("failures %v, want only the poison message %s", resp.BatchItemFailures, ev.Records[0].MessageId)
	}
	if !e.ended(nextID) {
		t.Fatal("a case whose start carried the victim's attribute did not run")
	}
}

// TestStartConflict reuses an idempotency key with another input: the
// message is refused, counted and recorded for the submitter; the case is
// unchanged. The same input again is an ordinary duplicate.
func TestStartConflict(t *testing.T) {
	e := newEnv(t, nil)
	x, m := e.executor(DefaultConfig())
	id := message.CaseID("acme", "test", "five-tasks", "k1")
	e.send(startMessage("acme", "test", "five-tasks", "k1", map[string]any{"qty": 2, "unitPrice": 5}))
	e.pump(x, func() bool { return e.ended(id) }, time.Minute)
	before := e.chain(id)
	same := startMessage("acme", "test", "five-tasks", "k1", map[string]any{"unitPrice": 5, "qty": 2})
	other := startMessage("acme", "test", "five-tasks", "k1", map[string]any{"qty": 200, "unitPrice": 5})
	resp := e.direct(x, sqsEvent(t, []any{same, other}, nil), 30*time.Second)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	if got := metricSum(t, m, telemetry.StartConflicts); got != 1 {
		t.Errorf("StartConflicts %v, want 1 (the same input in another key order is no conflict)", got)
	}
	cs, err := e.cases.StartConflicts(e.ctx, id)
	if err != nil || len(cs) != 1 || cs[0].CaseInputHash != before[0].InputHash || cs[0].InputHash == before[0].InputHash || cs[0].IdempotencyKey != "k1" {
		t.Fatalf("recorded conflicts %+v (%v), want one naming both input hashes", cs, err)
	}
	if after := e.chain(id); len(after) != len(before) {
		t.Fatalf("a conflicting start changed the case: %s", seqs(after))
	}
}

// keyRecorder wraps the stand-ins and records the Idempotency-Key of every
// request by path.
type keyRecorder struct {
	next http.Handler
	mu   sync.Mutex
	keys map[string][]string
	hook func()
}

func (k *keyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.keys[r.Host+r.URL.Path] = append(k.keys[r.Host+r.URL.Path], r.Header.Get(httpcall.IdempotencyKeyHeader))
	hook := k.hook
	k.mu.Unlock()
	if hook != nil {
		hook()
	}
	k.next.ServeHTTP(w, r)
}

// TestDuplicateStartsCallOncePerKey delivers one start message ten times
// to two executors at once against a slow service: every request carries
// the same Idempotency-Key, and the service performs the charge once.
func TestDuplicateStartsCallOncePerKey(t *testing.T) {
	svc := standin.New()
	rec := &keyRecorder{next: svc, keys: map[string][]string{}}
	e := newEnv(t, rec)
	a, _ := e.executor(DefaultConfig())
	b, _ := e.executor(DefaultConfig())
	id := message.CaseID("acme", "test", "slow-charge", "dup-1")
	start := startMessage("acme", "test", "slow-charge", "dup-1", map[string]any{"amount": 42})
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := a
			if i%2 == 1 {
				x = b
			}
			ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
			defer cancel()
			ev := sqsEvent(t, []any{start}, nil)
			ev.Records[0].MessageId = "dup-" + string(rune('0'+i))
			_, _ = x.Handle(ctx, ev)
		}()
	}
	wg.Wait()
	e.pump(a, func() bool { return e.ended(id) }, time.Minute)
	rs := e.chain(id)
	if rs[len(rs)-1].Type != history.CaseCompleted {
		t.Fatalf("case ended %s", rs[len(rs)-1].Type)
	}
	keys := rec.keys["slow.acquirer.knhk.local/charges"]
	want := httpcall.IdempotencyKey(id, "/0")
	for _, k := range keys {
		if k != want {
			t.Fatalf("keys %v, want every request to carry %s", keys, want)
		}
	}
	st := svc.Stats()
	t.Logf("%d requests for one charge, %d effects, %d replays", st.Requests, st.Effects, st.Replays)
	if len(keys) == 0 || st.Effects != 1 || st.Replays != st.Requests-1 {
		t.Fatalf("stand-in stats %+v for %d requests, want one effect", st, len(keys))
	}
}

// TestResultObtainedIsRecordedBeforeTheDeadline: the executor's clock jumps
// past the margin while a call is in flight; the result is recorded anyway,
// so the service is called once.
func TestResultObtainedIsRecordedBeforeTheDeadline(t *testing.T) {
	var offset atomic.Int64
	svc := standin.New()
	rec := &keyRecorder{next: svc, keys: map[string][]string{}, hook: func() { offset.Store(int64(time.Hour)) }}
	e := newEnv(t, rec)
	cfg := DefaultConfig()
	x, _ := e.executor(cfg)
	x.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	id := message.CaseID("acme", "test", "slow-charge", "late-1")
	resp := e.direct(x, sqsEvent(t, []any{startMessage("acme", "test", "slow-charge", "late-1", map[string]any{"amount": 7})}, nil), 2*time.Minute)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	// The result is recorded; what the decision on it needs no call for
	// completes too (before, the result was dropped and the call repeated).
	if rs := e.chain(id); count(rs, history.EffectRequested) != 1 || count(rs, history.TaskCompleted) == 0 {
		t.Fatalf("chain %s: want the call's result recorded", seqs(rs))
	}
	offset.Store(0)
	rec.hook = nil
	y, _ := e.executor(cfg)
	e.pump(y, func() bool { return e.ended(id) }, time.Minute)
	if st := svc.Stats(); st.Requests != 1 {
		t.Fatalf("stand-in stats %+v: the charge was requested again", st)
	}
}

// TestCallTimeoutStaysInsideTheInvocation: an invocation with less time
// left than the call needs cuts the call at its remaining time minus the
// margin, records no result, and hands the case back; the next invocation
// calls again with the same key and the service replays its stored answer.
func TestCallTimeoutStaysInsideTheInvocation(t *testing.T) {
	svc := standin.New()
	rec := &keyRecorder{next: svc, keys: map[string][]string{}}
	e := newEnv(t, rec)
	cfg := DefaultConfig()
	cfg.Margin = time.Second
	x, _ := e.executor(cfg)
	id := message.CaseID("acme", "test", "slow-charge", "cut-1")
	resp := e.direct(x, sqsEvent(t, []any{startMessage("acme", "test", "slow-charge", "cut-1", map[string]any{"amount": 9})}, nil), cfg.Margin+standin.SlowDelay/2)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	if rs := e.chain(id); count(rs, history.TaskCompleted)+count(rs, history.TaskFaulted) != 0 {
		t.Fatalf("chain %s: a call cut by the invocation's time was recorded", seqs(rs))
	}
	y, _ := e.executor(DefaultConfig())
	e.pump(y, func() bool { return e.ended(id) }, time.Minute)
	rs := e.chain(id)
	if rs[len(rs)-1].Type != history.CaseCompleted {
		t.Fatalf("case ended %s", rs[len(rs)-1].Type)
	}
	keys := rec.keys["slow.acquirer.knhk.local/charges"]
	if st := svc.Stats(); len(keys) < 2 || keys[0] != keys[1] || st.Effects != 1 {
		t.Fatalf("keys %v, stats %+v: want the repeat under the same key and one effect", keys, st)
	}
}

// TestNondeterministicHistoryIsQuarantined builds a chain that verifies
// link by link but whose history the engine does not decide on its
// workflow (a task completion recorded under another task, as an engine
// change of its occurrence keys would leave): the case is quarantined with
// the reason, not extended and not faulted.
func TestNondeterministicHistoryIsQuarantined(t *testing.T) {
	e := newEnv(t, nil)
	x, m := e.executor(DefaultConfig())
	src := message.CaseID("acme", "insurance", "insurance-claim", "nd-src")
	e.send(startMessage("acme", "insurance", "insurance-claim", "nd-src", sampleInput(t, "insurance-claim")))
	e.pump(x, func() bool { subs, _ := e.cases.Subscribers(e.ctx, "acme"); return len(subs) == 1 }, time.Minute)
	evs, err := e.chains.Events(e.ctx, e.chain(src))
	if err != nil {
		t.Fatal(err)
	}
	// The same history as another case, with the events of its first task
	// recorded under a task the workflow does not have there.
	id := message.CaseID("acme", "insurance", "insurance-claim", "nd-1")
	altered := 0
	var prev *receipt.Receipt
	first := evs[1].Key
	for _, ev := range evs {
		switch {
		case ev.Type == history.CaseStarted:
			ev.Data = json.RawMessage(strings.Replace(string(ev.Data), src, id, 1))
		case ev.Key == first && ev.Task != "":
			ev.Task = ev.Task + "Renamed"
			altered++
		}
		a, err := e.chains.AppendExact(e.ctx, prev, "acme", id, ev)
		if err != nil {
			t.Fatal(err)
		}
		prev = a.Receipt
	}
	if altered == 0 {
		t.Fatal("the source case completed no task")
	}
	n := len(e.chain(id))
	resp := e.direct(x, sqsEvent(t, []any{forged(id, message.ReasonResume, "", int64(n), time.Time{})}, nil), 30*time.Second)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a nondeterministic case was reported for retry: %v", resp.BatchItemFailures)
	}
	fs, _ := e.cases.Quarantined(e.ctx, id)
	if len(fs) != 1 || fs[0].Kind != receipt.HistoryInvalid || !strings.Contains(fs[0].Detail, "nondeterministic history") || !strings.Contains(fs[0].Detail, "Renamed") {
		t.Fatalf("quarantine findings %+v, want one HistoryInvalid naming the nondeterminism", fs)
	}
	if got := len(e.chain(id)); got != n {
		t.Fatalf("a nondeterministic case was extended: %d -> %d receipts", n, got)
	}
	if metricSum(t, m, telemetry.IntegrityFindings) < 1 {
		t.Fatal("no IntegrityFindings metric")
	}
}
