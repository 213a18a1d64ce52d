package executor

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/message"
)

// BenchmarkBatchOf10FiveTaskCases handles one SQS batch of ten start
// messages of a five-set-task workflow in-process against the local
// endpoint (one op = one batch = ten cases, ~70 receipts).
func BenchmarkBatchOf10FiveTaskCases(b *testing.B) {
	t := &testing.T{}
	e := newEnv(t, nil)
	x, _ := e.executor(DefaultConfig())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var ev events.SQSEvent
		var ids []string
		for j := range 10 {
			key := fmt.Sprintf("bench-%d-%d", i, j)
			body := fmt.Sprintf(`{"kind":"start","tenant":"acme","workflow":{"namespace":"test","name":"five-tasks"},"idempotencyKey":%q,"input":{"qty":3,"unitPrice":9.5}}`, key)
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: key, Body: body})
			ids = append(ids, message.CaseID("acme", "test", "five-tasks", key))
		}
		b.StartTimer()
		ctx, cancel := withTimeout(e, time.Minute)
		resp, err := x.Handle(ctx, ev)
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
}
