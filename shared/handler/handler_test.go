package handler_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// receiver starts the local OTLP receiver and tracing pointed at it.
func receiver(t *testing.T) (*telemetry.Tracing, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	sink, err := otlpsink.Start("127.0.0.1:0", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	t.Setenv(telemetry.EnvOTLPEndpoint, sink.Endpoint())
	tr, err := telemetry.SetupTracing(context.Background(), "test", os.Getenv)
	if err != nil || tr == nil {
		t.Fatalf("tracing: %v %v", tr, err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(telemetry.DefaultFlushTimeout) })
	return tr, path
}

func read(t *testing.T, path string) []otlpsink.Span {
	t.Helper()
	spans, err := otlpsink.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return spans
}

const (
	tpA1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tpA2 = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
	tpB  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

func msg(id, tp string) events.SQSMessage {
	m := events.SQSMessage{MessageId: id, Body: `{}`, EventSourceARN: "arn:aws:sqs:eu-west-1:000000000000:work"}
	if tp != "" {
		m.MessageAttributes = map[string]events.SQSMessageAttribute{queue.TraceAttribute: {StringValue: &tp, DataType: "String"}}
	}
	return m
}

// The spans of an invocation are at the receiver when it returns, before
// the next invocation begins (the batch processor alone would hold them
// for seconds, and a frozen environment would lose them).
func TestSpansExportedBeforeInvocationReturns(t *testing.T) {
	tr, path := receiver(t)
	h := handler.Wrap(handler.Function{Name: "fn", Tracing: tr}, func(ctx context.Context, ev events.SQSEvent) (string, error) {
		_, span := telemetry.StartSpan(ctx, "work")
		telemetry.EndSpan(span, nil)
		return "ok", nil
	})
	for i := 1; i <= 2; i++ {
		if _, err := h(context.Background(), events.SQSEvent{}); err != nil {
			t.Fatal(err)
		}
		spans := read(t, path)
		if len(spans) != 2*i {
			t.Fatalf("after invocation %d the receiver has %d spans, want %d", i, len(spans), 2*i)
		}
		inv, work := spans[2*i-1], spans[2*i-2]
		if inv.Name != "fn" || work.Name != "work" || work.ParentSpanID != inv.SpanID || work.TraceID != inv.TraceID {
			t.Fatalf("invocation %d: spans %+v", i, spans)
		}
	}
}

func TestInvocationParentAndLinks(t *testing.T) {
	tests := []struct {
		name       string
		msgs       []events.SQSMessage
		wantTrace  string // "" = a new trace
		wantLinks  int
		wantParent string
	}{
		{"one trace", []events.SQSMessage{msg("1", tpA1), msg("2", tpA2)}, "0af7651916cd43dd8448eb211c80319c", 2, "b7ad6b7169203331"},
		{"two traces", []events.SQSMessage{msg("1", tpA1), msg("2", tpB)}, "", 2, ""},
		{"one without context", []events.SQSMessage{msg("1", tpA1), msg("2", "")}, "", 1, ""},
		{"none", []events.SQSMessage{msg("1", "")}, "", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, path := receiver(t)
			h := handler.Wrap(handler.Function{Name: "fn", Tracing: tr}, func(ctx context.Context, ev events.SQSEvent) (int, error) {
				for _, m := range ev.Records {
					_ = handler.Messages(func(context.Context, events.SQSMessage) error { return nil })(ctx, m)
				}
				return 0, nil
			})
			if _, err := h(context.Background(), events.SQSEvent{Records: tc.msgs}); err != nil {
				t.Fatal(err)
			}
			spans := read(t, path)
			var inv otlpsink.Span
			var msgs []otlpsink.Span
			for _, s := range spans {
				if s.Name == "fn" {
					inv = s
				} else {
					msgs = append(msgs, s)
				}
			}
			if tc.wantTrace != "" && inv.TraceID != tc.wantTrace {
				t.Errorf("invocation trace %s, want %s", inv.TraceID, tc.wantTrace)
			}
			if tc.wantTrace == "" && inv.ParentSpanID != "" {
				t.Errorf("invocation parented on %s, want a new trace", inv.ParentSpanID)
			}
			if inv.ParentSpanID != tc.wantParent || len(inv.Links) != tc.wantLinks {
				t.Errorf("invocation parent %q links %d, want %q %d", inv.ParentSpanID, len(inv.Links), tc.wantParent, tc.wantLinks)
			}
			if len(msgs) != len(tc.msgs) {
				t.Fatalf("%d message spans, want %d", len(msgs), len(tc.msgs))
			}
			for _, s := range msgs {
				if s.Name != "process work" || len(s.Links) != 1 || s.Links[0].SpanID != inv.SpanID {
					t.Errorf("message span %+v: want a link to the invocation", s)
				}
				id, _ := s.Attributes["messaging.message.id"].(string)
				tp := ""
				for _, m := range tc.msgs {
					if m.MessageId == id && m.MessageAttributes != nil {
						tp = *m.MessageAttributes[queue.TraceAttribute].StringValue
					}
				}
				if tp != "" && (s.TraceID != tp[3:35] || s.ParentSpanID != tp[36:52]) {
					t.Errorf("message %s span in %s under %s, want the message's context %s", id, s.TraceID, s.ParentSpanID, tp)
				}
				if tp == "" && s.ParentSpanID != "" {
					t.Errorf("message %s without context is parented on %s, want a new trace", id, s.ParentSpanID)
				}
			}
		})
	}
}

func TestPanicRecovered(t *testing.T) {
	tr, path := receiver(t)
	var logs, emf bytes.Buffer
	metrics := telemetry.NewMetrics(telemetry.Namespace)
	h := handler.Wrap(handler.Function{Name: "fn", Tracing: tr, Log: telemetry.NewLogger(&logs, nil), Metrics: metrics, Out: &emf},
		func(ctx context.Context, ev events.SQSEvent) (int, error) { panic("boom") })
	n, err := h(context.Background(), events.SQSEvent{})
	if err == nil || !strings.Contains(err.Error(), "boom") || n != 0 {
		t.Fatalf("got %d, %v; want an error naming the panic", n, err)
	}
	if !strings.Contains(logs.String(), "handler panic recovered") || !strings.Contains(logs.String(), `"spanId"`) {
		t.Errorf("log %q: want the panic logged with the span id", logs.String())
	}
	if !strings.Contains(emf.String(), telemetry.HandlerPanics) {
		t.Errorf("metrics %q: want %s", emf.String(), telemetry.HandlerPanics)
	}
	spans := read(t, path)
	if len(spans) != 1 || spans[0].Status != "ERROR" {
		t.Fatalf("spans %+v: want the invocation with status ERROR", spans)
	}
}

func TestHandlerErrorAndNoTracing(t *testing.T) {
	want := errors.New("down")
	h := handler.Wrap(handler.Function{Name: "fn"}, func(ctx context.Context, ev events.DynamoDBEvent) (int, error) {
		if telemetry.Recording(ctx) {
			t.Error("a span records without tracing")
		}
		return 1, want
	})
	if n, err := h(context.Background(), events.DynamoDBEvent{}); n != 1 || !errors.Is(err, want) {
		t.Fatalf("got %d, %v", n, err)
	}
}

func TestCarriersOfStreamRecords(t *testing.T) {
	rec := func(tp string) events.DynamoDBEventRecord {
		r := events.DynamoDBEventRecord{}
		if tp != "" {
			r.Change.NewImage = map[string]events.DynamoDBAttributeValue{store.AttrTraceParent: events.NewStringAttribute(tp)}
		}
		return r
	}
	trigger, cs := handler.Carriers(events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec(tpA1), rec(""), rec("nonsense")}})
	if trigger != "datasource" || len(cs) != 3 || !cs[0].IsValid() || cs[1].IsValid() || cs[2].IsValid() {
		t.Fatalf("trigger %s carriers %v", trigger, cs)
	}
	if got := cs[0].TraceID().String(); got != tpA1[3:35] {
		t.Errorf("trace %s, want %s", got, tpA1[3:35])
	}
}

func TestMessageContextFromBody(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"kind":"start","trace":{"traceparent":"` + tpA1 + `"}}`, tpA1[3:35]},
		{`{"specversion":"1.0","traceparent":"` + tpB + `"}`, tpB[3:35]},
		{`{"trace":{"traceparent":"00-zz"}}`, ""},
		{`not json`, ""},
	}
	for _, tc := range tests {
		sc := handler.MessageContext(events.SQSMessage{Body: tc.body})
		got := ""
		if sc.IsValid() {
			got = sc.TraceID().String()
		}
		if got != tc.want {
			t.Errorf("%s: trace %q, want %q", tc.body, got, tc.want)
		}
	}
}
