package executor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// BenchmarkBatchOf10FiveTaskCases handles one SQS batch of ten start
// messages of a five-set-task workflow in-process against the local
// endpoint (one op = one batch = ten cases, ~70 receipts).
func BenchmarkBatchOf10FiveTaskCases(b *testing.B) {
	t := &testing.T{}
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	benchBatches(b, e, x.Handle)
}

// BenchmarkBatchTracing is the same batch as a warm invocation through the
// handler wrapper, with tracing off (no exporter: the functions' default
// without OTEL_EXPORTER_OTLP_ENDPOINT) and on (otelaws on every AWS client,
// spans exported to the local OTLP receiver before the invocation returns).
// Compare p50-ms/batch.
func BenchmarkBatchTracing(b *testing.B) {
	t := &testing.T{}
	e := newEnv(t, nil)
	b.Run("off", func(b *testing.B) {
		x, _ := e.executor(DefaultConfig())
		benchBatches(b, e, handler.Wrap(handler.Function{Name: "executor"}, x.Handle))
	})
	b.Run("on", func(b *testing.B) {
		sink, err := otlpsink.Start("127.0.0.1:0", filepath.Join(b.TempDir(), "spans.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sink.Close() }()
		b.Setenv(telemetry.EnvOTLPEndpoint, sink.Endpoint())
		tr, err := telemetry.SetupTracing(context.Background(), "executor", os.Getenv)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = tr.Shutdown(time.Second) }()
		cfg := e.cfg.Copy()
		tr.InstrumentAWS(&cfg)
		ddb := dynamodb.NewFromConfig(cfg)
		chains, cases := store.NewReceipts(ddb, e.receipts), store.NewCases(ddb, e.state)
		chains.Blobs = cases.State
		x := New(DefaultConfig(), Deps{Chains: chains, Descriptors: registry.New(ddb, e.state), Cases: cases,
			Sender: queue.NewSender(sqs.NewFromConfig(cfg), e.queueURL), Alerts: alert.NewSNS(sns.NewFromConfig(cfg), e.topic),
			HTTP: &http.Client{Transport: tr.HTTPTransport(standin.Client(e.services).Transport, nil)}})
		benchBatches(b, e, handler.Wrap(handler.Function{Name: "executor", Tracing: tr}, x.Handle))
		if sink.Spans() == 0 {
			b.Fatal("no span reached the receiver")
		}
		b.ReportMetric(float64(sink.Spans())/float64(b.N), "spans/batch")
	})
}

// benchBatches times h on b.N batches of ten new five-task cases and
// reports the mean per case and the median per batch.
func benchBatches(b *testing.B, e *env, h func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)) {
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var ev events.SQSEvent
		var ids []string
		for j := range 10 {
			key := fmt.Sprintf("bench-%s-%d-%d", b.Name(), i, j)
			body := fmt.Sprintf(`{"kind":"start","tenant":"acme","workflow":{"namespace":"test","name":"five-tasks"},"idempotencyKey":%q,"input":{"qty":3,"unitPrice":9.5}}`, key)
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: key, Body: body})
			ids = append(ids, message.CaseID("acme", "test", "five-tasks", key))
		}
		b.StartTimer()
		ctx, cancel := withTimeout(e, time.Minute)
		start := time.Now()
		resp, err := h(ctx, ev)
		took = append(took, time.Since(start))
		cancel()
		if err != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("batch: %v %v", resp, err)
		}
		b.StopTimer()
		for _, id := range ids {
			if !e.ended(id) {
				b.Fatalf("case %s did not end", id)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/10, "ms/case")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms/batch")
}

// BenchmarkChargeLost is what every receipt flush now adds: charging what
// the append lost (nothing, the common case; a failed write and its read
// after a lost race) to the case's step meter.
func BenchmarkChargeLost(b *testing.B) {
	s := &step{now: time.Now}
	ctx := context.WithValue(context.Background(), stepKey{}, s)
	for _, c := range []struct {
		name string
		u    cost.Usage
	}{{"nothing lost", cost.Usage{}}, {"lost race", cost.Usage{DynamoRequests: 2, WriteUnits: 4, ReadUnits: 1}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				chargeLost(ctx, c.u)
			}
		})
	}
}
