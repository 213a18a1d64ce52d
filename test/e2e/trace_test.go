package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/telemetry"
)

// caseTrace waits until the case's trace holds spans that ok accepts, and
// returns the case's traces (its own first, then the linked ones).
func caseTrace(t *testing.T, ctx context.Context, caseID string, ok func([]otlpsink.Trace) bool) []otlpsink.Trace {
	t.Helper()
	if suite.spans == "" {
		t.Skip("no local trace receiver (external stack)")
	}
	var traces []otlpsink.Trace
	err := poll(ctx, 250*time.Millisecond, func() (bool, error) {
		spans, err := otlpsink.Read(suite.spans)
		if err != nil {
			return false, err
		}
		traces = otlpsink.CaseTraces(spans, caseID)
		return ok(traces), nil
	})
	if err != nil {
		for _, tr := range traces {
			for _, s := range tr.Spans {
				t.Logf("%s %s parent %q %s %v", tr.ID, s.SpanID, s.ParentSpanID, s.Name, s.Links)
			}
		}
		t.Fatalf("case %s: %v", caseID, err)
	}
	return traces
}

// has reports whether a span of tr matches.
func has(tr otlpsink.Trace, match func(otlpsink.Span) bool) bool {
	for _, s := range tr.Spans {
		if match(s) {
			return true
		}
	}
	return false
}

func named(prefix string) func(otlpsink.Span) bool {
	return func(s otlpsink.Span) bool { return strings.HasPrefix(s.Name, prefix) }
}

// TestTraceOfForkedCase runs one cross-border payment (a fork of HTTP
// calls): the spans of every hop (executor invocations, queue messages,
// DynamoDB writes, HTTP calls, task steps, the verifier's batch) share one
// trace id, and every span's parent is in that trace but the one root.
func TestTraceOfForkedCase(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	c := newCase("payments", "cross-border-payment", "traced", sampleInput(t, "cross-border-payment"))
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, []localrun.Case{c})
	// The verifier's batch span is in the case's trace, or (a batch that
	// mixed cases' records) links to it.
	verifier := func(s otlpsink.Span) bool { return s.Name == "verifier" }
	verified := func(ts []otlpsink.Trace) bool {
		if len(ts) == 0 || ts[0].Linked {
			return false
		}
		for _, tr := range ts {
			if has(tr, func(s otlpsink.Span) bool {
				if !verifier(s) {
					return false
				}
				for _, l := range s.Links {
					if l.TraceID == ts[0].ID {
						return true
					}
				}
				return !tr.Linked
			}) {
				return true
			}
		}
		return false
	}
	traces := caseTrace(t, ctx, c.ID, verified)
	own := 0
	for _, tr := range traces {
		if !tr.Linked {
			own++
		}
	}
	if own != 1 {
		t.Fatalf("the case's spans are in %d traces, want one", own)
	}
	tr := traces[0]
	for _, want := range []struct {
		what  string
		match func(otlpsink.Span) bool
	}{
		{"an executor invocation", func(s otlpsink.Span) bool { return s.Name == "executor" }},
		{"a queue message", named("process ")},
		{"a DynamoDB write", func(s otlpsink.Span) bool { return s.Attributes["rpc.method"] == "DynamoDB/PutItem" }},
		{"an SQS send", func(s otlpsink.Span) bool { return s.Attributes["rpc.method"] == "SQS/SendMessageBatch" }},
		{"an HTTP call", func(s otlpsink.Span) bool { return s.Kind == "client" && s.Attributes["http.request.method"] != nil }},
		{"a task step", named("task ")},
		{"a receipt append", named("append receipts")},
	} {
		if !has(tr, want.match) {
			t.Errorf("trace %s has no span of %s", tr.ID, want.what)
		}
	}
	if n := len(tr.Tree()); n != 1 {
		var roots []string
		for _, r := range tr.Tree() {
			roots = append(roots, fmt.Sprintf("%s (parent %q)", r.Span.Name, r.Span.ParentSpanID))
		}
		t.Errorf("trace %s has %d roots, want one and no orphan: %v", tr.ID, n, roots)
	}
	if root := tr.Tree()[0].Span; root.ParentSpanID != "" || !strings.HasPrefix(root.Name, "process ") {
		t.Errorf("root %s (parent %q): want the start message's span", root.Name, root.ParentSpanID)
	}
	// The genesis records the case's trace.
	rs := readChain(t, ctx, c.ID)
	if g := rs[0].Genesis; g == nil || len(g.TraceParent) != 55 || g.TraceParent[3:35] != tr.ID {
		t.Errorf("genesis %+v: want the case's trace %s", rs[0].Genesis, tr.ID)
	}
}

// TestTraceOfListenResumedByEvent: a CloudEvent that brings a trace of its
// own resumes a listening case; the resumed step is in the event's trace
// and links to the case's trace (recorded in its genesis).
func TestTraceOfListenResumedByEvent(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 60*time.Second)
	ticket := "tr-" + suite.run
	c := newCase("e2e", "listener", "traced-listener", map[string]any{"ticket": ticket})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitSubscribed(t, ctx, c.ID)
	const eventTrace = "5ce0e9a56015fec5aadfa328ae398115"
	ev := map[string]any{"specversion": "1.0", "id": "traced-reply-" + suite.run, "source": "https://e2e.knhk.local",
		"type": "com.knhk.e2e.reply.v1", "subject": ticket, "datacontenttype": "application/json",
		"knhktenant": suite.tenant, "data": map[string]any{"answer": "yes", "by": "e2e"},
		"traceparent": "00-" + eventTrace + "-ab42124a3c573678-01"}
	if err := suite.work.Send(ctx, queue.Message{Body: ev}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{c}, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatal(err)
	}
	rs := readChain(t, ctx, c.ID)
	g := rs[0].Genesis
	if g == nil || len(g.TraceParent) != 55 {
		t.Fatalf("genesis %+v records no trace context", g)
	}
	caseTraceID := g.TraceParent[3:35]
	// The resumed step's spans are in the event's trace (they carry the
	// case id, so it is one of the case's traces, listed for X-Ray to
	// index) and link to the case's.
	indexed := func(s otlpsink.Span) bool {
		keys, _ := s.Attributes[telemetry.SpanXRayAnnotations].([]any)
		return slices.Contains(keys, any(telemetry.SpanCaseID))
	}
	linksCase := func(tr otlpsink.Trace) bool {
		return has(tr, func(s otlpsink.Span) bool {
			for _, l := range s.Links {
				if l.TraceID == caseTraceID && s.Attributes[telemetry.SpanCaseID] == c.ID && indexed(s) {
					return true
				}
			}
			return false
		})
	}
	traces := caseTrace(t, ctx, c.ID, func(ts []otlpsink.Trace) bool {
		for _, tr := range ts {
			if tr.ID == eventTrace && linksCase(tr) {
				return true
			}
		}
		return false
	})
	if traces[0].ID != caseTraceID {
		t.Errorf("first trace %s, want the case's own %s", traces[0].ID, caseTraceID)
	}
}

// TestTraceFlushedBeforeInvocationReturns invokes the executor's real
// bootstrap twice, synchronously, with a message of a known trace: each
// invocation's span is at the receiver when the invocation returns, before
// the next one begins (the SDK's batch delay alone would hold it for
// seconds, and Lambda would freeze the environment with it).
func TestTraceFlushedBeforeInvocationReturns(t *testing.T) {
	noteFailure(t)
	if suite.env == nil || suite.spans == "" {
		t.Skip("needs the self-contained stack")
	}
	ctx := ctxFor(t, 60*time.Second)
	var fn string
	for _, f := range suite.env.Lambda.Stack().Functions {
		if f.Source == "executor" {
			fn = f.Name
		}
	}
	if fn == "" {
		t.Fatal("no executor function")
	}
	for i, traceID := range []string{"7d1e0a2b3c4d5e6f708192a3b4c5d6e7", "8e2f1b3c4d5e6f708192a3b4c5d6e7f8"} {
		// A body that is no message is dropped as a permanent error: a
		// cheap invocation that touches no case.
		payload := fmt.Sprintf(`{"Records":[{"messageId":"flush-%d-%s","body":"not a message","eventSource":"aws:sqs",
			"eventSourceARN":"arn:aws:sqs:us-east-1:000000000000:flush","attributes":{"ApproximateReceiveCount":"1"},
			"messageAttributes":{"traceparent":{"stringValue":"00-%s-0102030405060708-01","dataType":"String"}}}]}`, i, suite.run, traceID)
		res, err := suite.env.Lambda.Invoke(ctx, fn, []byte(payload))
		if err != nil || res.FunctionError != "" {
			t.Fatalf("invoke %d: %v %s %s", i, err, res.FunctionError, res.Payload)
		}
		spans, err := otlpsink.Read(suite.spans)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range spans {
			if s.TraceID == traceID {
				got[s.Name] = true
			}
		}
		if !got["executor"] || !got["process flush"] {
			t.Errorf("invocation %d returned before its spans reached the receiver: %v", i, got)
		}
	}
}
