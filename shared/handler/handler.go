// Package handler is the one wrapper every KNHK Lambda handler runs in: a
// span per invocation (parented and linked from the trace contexts its
// records carry), the spans flushed with a bounded timeout before the
// invocation returns and on SIGTERM, metrics flushed, the function's own
// usage recorded as overhead (Overhead), log lines correlated with the
// span, and panics recovered into an error. A function adopts it with one
// line: handler.Start(fn, h).
package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// Func is a Lambda handler of events E answering R.
type Func[E, R any] func(context.Context, E) (R, error)

// Function is what the wrapper needs to know of a function. Every field but
// Name is optional.
type Function struct {
	Name    string             // short name ("executor"): the invocation span's name
	Log     *slog.Logger       // panics and flush failures are logged here
	Metrics *telemetry.Metrics // flushed to Out after every invocation
	Out     io.Writer          // EMF destination (default os.Stdout)
	Tracing *telemetry.Tracing // nil: no spans
	// FlushTimeout bounds the span export at the end of an invocation
	// (default telemetry.DefaultFlushTimeout).
	FlushTimeout time.Duration
	// Overhead records the usage no receipt carries (nil Sink: none).
	Overhead Overhead

	overheads *overheads // set by Wrap, written on SIGTERM by Start
}

// Wrap returns h inside the wrapper.
func Wrap[E, R any](f Function, h Func[E, R]) Func[E, R] {
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
	if f.Out == nil {
		f.Out = os.Stdout
	}
	if f.FlushTimeout <= 0 {
		f.FlushTimeout = telemetry.DefaultFlushTimeout
	}
	over := f.overheads
	if over == nil {
		over = newOverheads(f.Overhead, f.Name)
	}
	return func(ctx context.Context, ev E) (resp R, err error) {
		start := time.Now()
		var span trace.Span
		if f.Tracing != nil {
			trigger, carriers := Carriers(ev)
			ctx, span = telemetry.StartInvocation(ctx, f.Name, trigger, carriers)
		}
		defer func() {
			if p := recover(); p != nil {
				var zero R
				resp, err = zero, fmt.Errorf("%s: panic: %v", f.Name, p)
				f.Log.ErrorContext(ctx, "handler panic recovered", "panic", fmt.Sprint(p))
				if f.Metrics != nil {
					f.Metrics.Add(telemetry.HandlerPanics, telemetry.Count, 1)
				}
			}
			if span != nil {
				if err != nil {
					span.SetStatus(codes.Error, err.Error())
				}
				span.End()
				if ferr := f.Tracing.Flush(ctx, f.FlushTimeout); ferr != nil {
					f.Log.WarnContext(ctx, "span export at the end of the invocation", "error", ferr.Error())
				}
			}
			if f.Metrics != nil {
				if merr := f.Metrics.Flush(f.Out); merr != nil {
					f.Log.ErrorContext(ctx, "metrics flush", "error", merr.Error())
				}
			}
			if oerr := over.invocation(ctx, start, false); oerr != nil {
				f.Log.WarnContext(ctx, "overhead usage not recorded yet", "error", oerr.Error())
			}
		}()
		return h(ctx, ev)
	}
}

// Start runs h, wrapped, as the process's Lambda handler; on SIGTERM (the
// environment shutting down) it exports the spans still buffered.
func Start[E, R any](f Function, h Func[E, R]) {
	f.overheads = newOverheads(f.Overhead, f.Name)
	lambda.StartWithOptions(Wrap(f, h), lambda.WithEnableSIGTERM(func() {
		timeout := f.FlushTimeout
		if timeout <= 0 {
			timeout = telemetry.DefaultFlushTimeout
		}
		_ = f.Tracing.Shutdown(timeout)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = f.overheads.invocation(ctx, time.Time{}, true)
	}))
}

// Carriers names the trigger of an event (the faas.trigger convention) and
// the trace contexts its records carry: SQS messages' traceparent
// attribute (or the trace their body names) and the traceparent the
// receipts table's stream records were written with. Other events carry
// none.
func Carriers(ev any) (string, []trace.SpanContext) {
	switch e := ev.(type) {
	case events.SQSEvent:
		out := make([]trace.SpanContext, len(e.Records))
		for i, m := range e.Records {
			out[i] = MessageContext(m)
		}
		return "pubsub", out
	case events.DynamoDBEvent:
		out := make([]trace.SpanContext, len(e.Records))
		for i, r := range e.Records {
			if a, ok := r.Change.NewImage[store.AttrTraceParent]; ok && a.DataType() == events.DataTypeString {
				out[i] = telemetry.SpanContextOf(a.String(), "")
			}
		}
		return "datasource", out
	default:
		return "other", nil
	}
}

// MessageContext is the trace context an SQS message was sent with: its
// traceparent attribute, else the trace context its body carries (a start
// or continuation message's trace, a CloudEvent's distributed tracing
// extension).
func MessageContext(m events.SQSMessage) trace.SpanContext {
	if a, ok := m.MessageAttributes[queue.TraceAttribute]; ok && a.StringValue != nil {
		if sc := telemetry.SpanContextOf(*a.StringValue, ""); sc.IsValid() {
			return sc
		}
	}
	var body struct {
		Trace *struct {
			TraceParent string `json:"traceparent"`
			TraceState  string `json:"tracestate"`
		} `json:"trace"`
		TraceParent string `json:"traceparent"`
		TraceState  string `json:"tracestate"`
	}
	if json.Unmarshal([]byte(m.Body), &body) != nil {
		return trace.SpanContext{}
	}
	if body.Trace != nil {
		return telemetry.SpanContextOf(body.Trace.TraceParent, body.Trace.TraceState)
	}
	return telemetry.SpanContextOf(body.TraceParent, body.TraceState)
}

// Messages wraps a per-message SQS handler so that each message is
// processed in its own span (see telemetry.StartMessage), named for its
// queue. Without a recording invocation span it adds nothing.
func Messages(h func(context.Context, events.SQSMessage) error) func(context.Context, events.SQSMessage) error {
	return func(ctx context.Context, m events.SQSMessage) error {
		if !telemetry.Recording(ctx) {
			return h(ctx, m)
		}
		queueName := m.EventSourceARN[strings.LastIndexByte(m.EventSourceARN, ':')+1:]
		attrs := []attribute.KeyValue{attribute.String("messaging.system", "aws_sqs"),
			attribute.String("messaging.operation.type", "process"), attribute.String("messaging.message.id", m.MessageId),
			attribute.String("messaging.destination.name", queueName)}
		if a, ok := m.MessageAttributes[queue.CaseAttribute]; ok && a.StringValue != nil {
			attrs = append(attrs, telemetry.CaseAttributes(*a.StringValue)...)
		}
		ctx, span := telemetry.StartMessage(ctx, "process "+queueName, MessageContext(m), attrs...)
		err := h(ctx, m)
		telemetry.EndSpan(span, err)
		return err
	}
}
