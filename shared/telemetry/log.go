package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Log attribute names. Every KNHK log line uses these keys, so that one
// CloudWatch Logs Insights query can follow a case across functions.
const (
	AttrTime        = "timestamp"     // RFC 3339 time of the record
	AttrLevel       = "level"         // DEBUG, INFO, WARN, ERROR
	AttrMessage     = "message"       // the log message
	AttrTenant      = "tenant"        // tenant of the case
	AttrCaseID      = "caseId"        // the case
	AttrSeq         = "seq"           // receipt sequence number within the case
	AttrRequestID   = "requestId"     // Lambda request id of the invocation
	AttrTraceID     = "traceId"       // W3C trace id (32 hex digits) of the case's trace
	AttrSpanID      = "spanId"        // OpenTelemetry span id (16 hex digits) the record was logged in
	AttrCorrelation = "correlationId" // the caller's own id for the case, from its start message
	AttrXRayTraceID = "xrayTraceId"   // X-Ray trace header of the invocation, when present
)

// xrayContextKey is the context key under which the Lambda Go runtime stores
// the invocation's X-Ray trace header.
const xrayContextKey = "x-amzn-trace-id"

// NewLogger returns a JSON logger writing one object per line to w, dropping
// records below level. Records logged with a context (InfoContext, ...) carry
// the fields attached to it with WithCase, WithSeq and WithTraceID, and the
// Lambda request id from lambdacontext. A nil w discards the records; a nil
// level means slog.LevelInfo.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				a.Key = AttrTime
			case slog.MessageKey:
				a.Key = AttrMessage
			case slog.LevelKey:
				a.Key = AttrLevel
			}
			return a
		},
	})
	return slog.New(contextHandler{h})
}

// ParseLevel parses a level name (debug, info, warn, error; any case) as used
// in a LOG_LEVEL setting. The empty string is info.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if strings.TrimSpace(s) == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("log level %q: %w", s, err)
	}
	return l, nil
}

// contextHandler adds the fields carried by a record's context.
type contextHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		r.AddAttrs(Attrs(ctx)...)
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler. Context fields of records logged through
// the returned handler are placed inside the group.
func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// fields are the log fields a context carries.
type fields struct {
	tenant, caseID, traceID string
	correlationID           string
	seq                     int64
	hasSeq                  bool
}

type fieldsKey struct{}

func fieldsFrom(ctx context.Context) fields {
	f, _ := ctx.Value(fieldsKey{}).(fields)
	return f
}

// WithCase returns a context whose log records carry tenant and caseId; the
// span ctx carries records them too. Use it where the span is the case's
// own (a message's); LogCase where the span covers several cases.
func WithCase(ctx context.Context, tenant, caseID string) context.Context {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(append(CaseAttributes(caseID), attribute.String(SpanTenant, tenant))...)
	}
	return LogCase(ctx, tenant, caseID)
}

// LogCase returns a context whose log records carry tenant and caseId,
// leaving the span alone: a batch's span (the verifier's) belongs to no
// single case, and naming the last one logged would put it in that case's
// trace.
func LogCase(ctx context.Context, tenant, caseID string) context.Context {
	f := fieldsFrom(ctx)
	f.tenant, f.caseID = tenant, caseID
	return context.WithValue(ctx, fieldsKey{}, f)
}

// WithSeq returns a context whose log records carry the receipt sequence
// number seq.
func WithSeq(ctx context.Context, seq int64) context.Context {
	f := fieldsFrom(ctx)
	f.seq, f.hasSeq = seq, true
	return context.WithValue(ctx, fieldsKey{}, f)
}

// WithTraceID returns a context whose log records carry traceId, the case's
// W3C trace id (see ParseTraceparent).
func WithTraceID(ctx context.Context, traceID string) context.Context {
	f := fieldsFrom(ctx)
	f.traceID = traceID
	return context.WithValue(ctx, fieldsKey{}, f)
}

// WithCorrelationID returns a context whose log records carry
// correlationId, the caller's own id for the case.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	f := fieldsFrom(ctx)
	f.correlationID = id
	return context.WithValue(ctx, fieldsKey{}, f)
}

// Attrs returns the log fields ctx carries: tenant, caseId, seq, traceId and
// correlationId as attached, requestId from the Lambda context, traceId and
// spanId of the span ctx carries (its trace id wins over an attached one)
// and xrayTraceId from the Lambda runtime. Fields that are not set are left
// out.
func Attrs(ctx context.Context) []slog.Attr {
	f := fieldsFrom(ctx)
	attrs := make([]slog.Attr, 0, 8)
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsValid() {
		f.traceID = sc.TraceID().String()
	}
	if f.tenant != "" {
		attrs = append(attrs, slog.String(AttrTenant, f.tenant))
	}
	if f.caseID != "" {
		attrs = append(attrs, slog.String(AttrCaseID, f.caseID))
	}
	if f.hasSeq {
		attrs = append(attrs, slog.Int64(AttrSeq, f.seq))
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc != nil && lc.AwsRequestID != "" {
		attrs = append(attrs, slog.String(AttrRequestID, lc.AwsRequestID))
	}
	if f.traceID != "" {
		attrs = append(attrs, slog.String(AttrTraceID, f.traceID))
	}
	if sc.IsValid() {
		attrs = append(attrs, slog.String(AttrSpanID, sc.SpanID().String()))
	}
	if f.correlationID != "" {
		attrs = append(attrs, slog.String(AttrCorrelation, f.correlationID))
	}
	if x, ok := ctx.Value(xrayContextKey).(string); ok && x != "" {
		attrs = append(attrs, slog.String(AttrXRayTraceID, x))
	}
	return attrs
}
