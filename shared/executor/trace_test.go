package executor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/telemetry"
)

// A start message's trace context goes on with the case: the branch
// continuation carries it in its body and as the traceparent attribute, and
// every log line of the case names the trace and the correlation id.
func TestTraceContextFollowsTheCase(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	// slog's JSON handler serializes its writes; the buffer is read only
	// after the last batch has been handled.
	var logs bytes.Buffer
	x, _ := e.executor(DefaultConfig())
	x.log = telemetry.NewLogger(&logs, slog.LevelInfo)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent := "00-" + traceID + "-00f067aa0ba902b7-01"
	start := startMessage("acme", "test", "fork-join", "traced-1", map[string]any{"n": 1})
	start["trace"] = map[string]any{"traceparent": traceparent, "correlationId": "order-77"}
	e.send(start)
	caseID := message.CaseID("acme", "test", "fork-join", "traced-1")

	var branches int
	deadline := time.Now().Add(time.Minute)
	for !e.ended(caseID) {
		if time.Now().After(deadline) {
			t.Fatal("case did not end")
		}
		ev := e.receive(1)
		for _, m := range ev.Records {
			var c message.Continue
			if json.Unmarshal([]byte(m.Body), &c) != nil || c.Kind != message.KindContinue {
				continue
			}
			branches++
			if c.Trace == nil || c.Trace.TraceParent != traceparent || c.Trace.CorrelationID != "order-77" {
				t.Errorf("continuation %s carries trace %+v", c.Reason, c.Trace)
			}
			if a, ok := m.MessageAttributes[queue.TraceAttribute]; !ok || a.StringValue == nil || *a.StringValue != traceparent {
				t.Errorf("continuation has traceparent attribute %+v", m.MessageAttributes[queue.TraceAttribute])
			}
		}
		if len(ev.Records) > 0 {
			e.handle(x, ev, time.Minute)
		}
	}
	if branches == 0 {
		t.Fatal("no branch continuation was sent")
	}
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m[telemetry.AttrCaseID] != caseID {
			continue
		}
		lines++
		if m[telemetry.AttrTraceID] != traceID || m[telemetry.AttrCorrelation] != "order-77" {
			t.Errorf("log line without the case's trace: %s", l)
		}
	}
	if lines == 0 {
		t.Fatalf("no log line of the case:\n%s", logs.String())
	}
}

func TestEventTrace(t *testing.T) {
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name string
		ext  map[string]any
		want *message.Trace
	}{
		{"none", map[string]any{}, nil},
		{"traceparent and tracestate", map[string]any{"traceparent": tp, "tracestate": "k=v"}, &message.Trace{TraceParent: tp, TraceState: "k=v"}},
		{"malformed traceparent", map[string]any{"traceparent": "00-zz"}, nil},
		{"not a string", map[string]any{"traceparent": 7}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := eventTrace(tc.ext)
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("eventTrace = %+v, want %+v", got, tc.want)
			}
		})
	}
}
