package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Standard OpenTelemetry environment variables the tracing setup reads (the
// exporter and the SDK read the rest of the OTEL_* family themselves:
// headers, timeouts, OTEL_TRACES_SAMPLER and its argument, resource
// attributes).
const (
	EnvOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"        // base URL; /v1/traces is appended
	EnvOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" // full URL of the traces endpoint
	EnvTracesExporter     = "OTEL_TRACES_EXPORTER"               // "none" turns tracing off
	EnvSDKDisabled        = "OTEL_SDK_DISABLED"                  // "true" turns tracing off
	EnvServiceName        = "OTEL_SERVICE_NAME"                  // default: the Lambda function's name
	EnvOTLPProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"        // http/protobuf, the only one the functions speak
	EnvTracesSampler      = "OTEL_TRACES_SAMPLER"                // e.g. parentbased_always_on
	EnvTracesSamplerArg   = "OTEL_TRACES_SAMPLER_ARG"            // e.g. 0.1 for a ratio sampler
	EnvPropagators        = "OTEL_PROPAGATORS"                   // tracecontext
)

// Span attribute names KNHK adds to its spans (the semantic conventions'
// names are used where one exists).
const (
	SpanCaseID         = "knhk.case_id"
	SpanTenant         = "knhk.tenant"
	SpanSeq            = "knhk.seq"
	SpanTask           = "knhk.task"
	SpanEvents         = "knhk.events"
	SpanBreakerState   = "knhk.breaker.state"
	SpanIdempotencyKey = "knhk.idempotency_key"
)

// X-Ray indexes only a segment's annotations. The collector's X-Ray exporter
// turns the attributes that SpanXRayAnnotations lists into annotations,
// with every character but letters, digits and '_' made '_': SpanCaseID
// becomes XRayCaseAnnotation, which a GetTraceSummaries filter can find.
const (
	SpanXRayAnnotations = "aws.xray.annotations"
	XRayCaseAnnotation  = "knhk_case_id"
)

// CaseAttributes are the attributes of a span that is one case's: its id,
// indexed on X-Ray, so that every trace holding a span of the case can be
// found there (a step resumed by a CloudEvent runs in the event's trace).
func CaseAttributes(caseID string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String(SpanCaseID, caseID), attribute.StringSlice(SpanXRayAnnotations, []string{SpanCaseID})}
}

// TracerName is the instrumentation scope of KNHK's own spans.
const TracerName = "github.com/knhk/knhk"

// DefaultFlushTimeout bounds the export at the end of an invocation.
const DefaultFlushTimeout = 2 * time.Second

// Tracing is the tracer provider of one execution environment. A nil
// *Tracing is tracing turned off: its methods do nothing.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// TracingEnabled reports whether the environment asks for spans to be
// exported: an OTLP endpoint is set and neither OTEL_SDK_DISABLED nor
// OTEL_TRACES_EXPORTER=none turns it off.
func TracingEnabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv(EnvSDKDisabled), "true") || strings.EqualFold(getenv(EnvTracesExporter), "none") {
		return false
	}
	return getenv(EnvOTLPEndpoint) != "" || getenv(EnvOTLPTracesEndpoint) != ""
}

// SetupTracing builds the tracer provider from the OTEL_* environment and
// installs it, with the W3C trace-context propagator, as the global one.
// It returns nil (tracing off, the global provider left a no-op) when
// TracingEnabled is false. service names the service when OTEL_SERVICE_NAME
// does not.
func SetupTracing(ctx context.Context, service string, getenv func(string) string) (*Tracing, error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if !TracingEnabled(getenv) {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("cloud.provider", "aws")}
	if getenv(EnvServiceName) == "" {
		attrs = append(attrs, attribute.String("service.name", service))
	}
	if fn := getenv("AWS_LAMBDA_FUNCTION_NAME"); fn != "" {
		attrs = append(attrs, attribute.String("faas.name", fn))
	}
	if r := getenv("AWS_REGION"); r != "" {
		attrs = append(attrs, attribute.String("cloud.region", r))
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return &Tracing{tp: tp}, nil
}

// Flush exports the spans ended so far, waiting at most timeout (a frozen
// execution environment loses spans not exported before the invocation
// returns).
func (t *Tracing) Flush(ctx context.Context, timeout time.Duration) error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return t.tp.ForceFlush(ctx)
}

// Shutdown flushes and stops the provider, waiting at most timeout.
func (t *Tracing) Shutdown(timeout time.Duration) error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.tp.Shutdown(ctx)
}

// InstrumentAWS adds the OpenTelemetry middleware to every client built from
// cfg (one client span per AWS call), when t is tracing.
func (t *Tracing) InstrumentAWS(cfg *aws.Config) {
	if t == nil {
		return
	}
	otelaws.AppendMiddlewares(&cfg.APIOptions, otelaws.WithTracerProvider(t.tp))
}

// HTTPTransport wraps next in an HTTP client span per request, when t is
// tracing. state, when set, names the circuit-breaker state of a host; the
// span records it and the request's Idempotency-Key header.
func (t *Tracing) HTTPTransport(next http.RoundTripper, state func(host string) string) http.RoundTripper {
	if t == nil {
		return next
	}
	return otelhttp.NewTransport(attributed{next: next, state: state}, otelhttp.WithTracerProvider(t.tp))
}

// attributed adds KNHK's attributes to the request's client span.
type attributed struct {
	next  http.RoundTripper
	state func(string) string
}

// RoundTrip implements http.RoundTripper.
func (a attributed) RoundTrip(req *http.Request) (*http.Response, error) {
	span := trace.SpanFromContext(req.Context())
	if a.state != nil && req.URL != nil {
		span.SetAttributes(attribute.String(SpanBreakerState, a.state(req.URL.Host)))
	}
	if k := req.Header.Get("Idempotency-Key"); k != "" {
		span.SetAttributes(attribute.String(SpanIdempotencyKey, k))
	}
	return a.next.RoundTrip(req)
}

// tracer is KNHK's tracer on the global provider (a no-op until
// SetupTracing installs one).
func tracer() trace.Tracer { return otel.Tracer(TracerName) }

// StartSpan starts an internal span named name as a child of ctx's span.
// End it with EndSpan.
func StartSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracer().Start(ctx, name, trace.WithAttributes(attrs...))
}

// EndSpan records err (if any) as the span's status and ends it.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// SpanContextOf parses a W3C traceparent (and tracestate) into a remote
// span context; the result is invalid when traceparent is not one.
func SpanContextOf(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	carrier := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		carrier["tracestate"] = tracestate
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

// TraceParent is the W3C traceparent of ctx's span, or "" when ctx carries
// no valid span context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// LinkTrace links ctx's span to the span context traceparent names, when it
// is valid and of another trace (a case resumed by a message of its own
// trace joins the case's trace this way).
func LinkTrace(ctx context.Context, traceparent string, attrs ...attribute.KeyValue) {
	sc := SpanContextOf(traceparent, "")
	span := trace.SpanFromContext(ctx)
	if !sc.IsValid() || !span.IsRecording() || sc.TraceID() == span.SpanContext().TraceID() {
		return
	}
	span.AddLink(trace.Link{SpanContext: sc, Attributes: attrs})
}
