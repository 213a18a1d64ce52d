package telemetry

import (
	"context"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// StartInvocation starts the span of one Lambda invocation of function.
// carriers are the trace contexts the invocation's records came with (SQS
// messages, stream records): the span links to each of them, as the
// messaging conventions ask for batches, and when all of them belong to one
// trace it is also parented there, so that a batch of one case's messages
// shows in that case's trace. Without carriers the span starts a trace.
func StartInvocation(ctx context.Context, function, trigger string, carriers []trace.SpanContext) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("faas.trigger", trigger), attribute.Int("messaging.batch.message_count", len(carriers)))}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc != nil {
		opts = append(opts, trace.WithAttributes(attribute.String("faas.invocation_id", lc.AwsRequestID)))
	}
	var (
		links []trace.Link
		seen  = map[[24]byte]bool{}
		one   = true
	)
	for _, sc := range carriers {
		if !sc.IsValid() {
			one = false
			continue
		}
		var k [24]byte
		tid, sid := sc.TraceID(), sc.SpanID()
		copy(k[:16], tid[:])
		copy(k[16:], sid[:])
		if seen[k] {
			continue
		}
		seen[k] = true
		if len(links) > 0 && links[0].SpanContext.TraceID() != sc.TraceID() {
			one = false
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	opts = append(opts, trace.WithLinks(links...))
	if one && len(links) > 0 {
		ctx = trace.ContextWithRemoteSpanContext(ctx, links[0].SpanContext)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return tracer().Start(ctx, function, opts...)
}

// StartMessage starts the span of processing one message of an invocation
// (ctx carries the invocation's span). The span is a child of the message's
// own trace context sc, so that every hop of a case lands in the case's
// trace, and links to the invocation; a message without trace context
// starts a new trace, linked likewise.
func StartMessage(ctx context.Context, name string, sc trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	inv := trace.SpanFromContext(ctx).SpanContext()
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	if inv.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: inv}))
	}
	if sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return tracer().Start(ctx, name, opts...)
}

// Recording reports whether ctx's span records (tracing is on and the
// trace sampled), so that callers can skip work that only feeds spans.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }
