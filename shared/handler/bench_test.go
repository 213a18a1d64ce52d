package handler_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.opentelemetry.io/otel/attribute"

	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/telemetry"
)

// spansPerMessage is what one five-task start message records with
// tracing on: its message span, about one append span per receipt and one
// AWS client span per call (the executor benchmark's on run measures it).
const spansPerMessage = 16

// BenchmarkInvocationOverhead is the time tracing adds to one warm
// invocation of a batch of ten messages: span creation, the invocation's
// links and the OTLP export to a loopback receiver before it returns
// (spansPerMessage spans a message, so ~160 an invocation). Off is the
// wrapper without a provider.
func BenchmarkInvocationOverhead(b *testing.B) {
	var ev events.SQSEvent
	for i := range 10 {
		tp := fmt.Sprintf("00-0af7651916cd43dd8448eb211c8031%02d-b7ad6b7169203331-01", i)
		m := msg(fmt.Sprint(i), tp)
		ev.Records = append(ev.Records, m)
	}
	work := func(ctx context.Context, ev events.SQSEvent) (int, error) {
		for _, m := range ev.Records {
			_ = handler.Messages(func(ctx context.Context, m events.SQSMessage) error {
				ctx = telemetry.WithCase(ctx, "acme", "case-"+m.MessageId)
				for j := 0; j < spansPerMessage-1; j++ {
					_, span := telemetry.StartSpan(ctx, "append receipts", attribute.StringSlice(telemetry.SpanEvents, []string{"task.completed"}),
						attribute.Int(telemetry.SpanSeq, j))
					telemetry.EndSpan(span, nil)
				}
				return nil
			})(ctx, m)
		}
		return 0, nil
	}
	run := func(b *testing.B, h handler.Func[events.SQSEvent, int]) {
		took := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			if _, err := h(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms/invocation")
	}
	b.Run("off", func(b *testing.B) { run(b, handler.Wrap(handler.Function{Name: "executor"}, work)) })
	b.Run("on", func(b *testing.B) {
		sink, err := otlpsink.Start("127.0.0.1:0", filepath.Join(b.TempDir(), "spans.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sink.Close() }()
		b.Setenv(telemetry.EnvOTLPEndpoint, sink.Endpoint())
		tr, err := telemetry.SetupTracing(context.Background(), "executor", func(k string) string {
			if k == telemetry.EnvOTLPEndpoint {
				return sink.Endpoint()
			}
			return ""
		})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = tr.Shutdown(time.Second) }()
		run(b, handler.Wrap(handler.Function{Name: "executor", Tracing: tr}, work))
		if sink.Spans() == 0 {
			b.Fatal("no span reached the receiver")
		}
	})
}
