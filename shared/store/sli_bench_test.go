package store

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/sla"
)

// BenchmarkSLIRead100kCases measures what the SLA job reads for a 40-day
// span holding 100,000 cases of 5 workflows, on the local endpoint: the
// verifier's batches fold 10 cases on average, so 10,000 bucket items spread
// over 30 days. It reports the Query requests and the read units they cost
// on AWS (eventually consistent, 4 KB per unit, per page), from the items'
// sizes.
func BenchmarkSLIRead100kCases(b *testing.B) {
	const cases, perBatch, workflows = 100_000, 10, 5
	ctx := context.Background()
	cfg, err := endpoint.Config(ctx)
	if err != nil {
		b.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	n := tableSeq.Add(1)
	rt, st := fmt.Sprintf("receipts-%d", n), fmt.Sprintf("state-%d", n)
	if err := CreateTables(ctx, db, rt, st); err != nil {
		b.Fatal(err)
	}
	l := NewSLIs(db, st)
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	items := cases / perBatch
	step := 30 * 24 * time.Hour / time.Duration(items)
	var bs []*sla.Bucket
	for i := range items {
		bk := sla.NewBucket(fmt.Sprintf("wf-%d", i%workflows), end.Add(-time.Duration(i+1)*step))
		for j := range perBatch {
			if err := bk.Observe(sla.Completed, time.Duration(100+j*37)*time.Millisecond); err != nil {
				b.Fatal(err)
			}
		}
		bs = append(bs, bk)
	}
	for i := 0; i < len(bs); i += 500 {
		if err := l.PutBuckets(ctx, fmt.Sprintf("bench%d", i), bs[i:min(i+500, len(bs))]); err != nil {
			b.Fatal(err)
		}
	}
	var queries, units float64
	count := func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, meterPages(&queries, &units))
	}
	reader := NewSLIs(dynamodb.NewFromConfig(cfg, count), st)
	b.ResetTimer()
	for range b.N {
		got, err := reader.Buckets(ctx, end.Add(-40*24*time.Hour), end)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			b.Fatal("no buckets read")
		}
	}
	b.ReportMetric(queries/float64(b.N), "queries/op")
	b.ReportMetric(units/float64(b.N), "RCU/op")
	b.ReportMetric(float64(items), "items")
}

// meterPages counts Query responses and the read units of their items.
func meterPages(queries, units *float64) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("knhk-bench-pages",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if q, ok := out.Result.(*dynamodb.QueryOutput); ok && err == nil {
					*queries++
					size := 0
					for _, it := range q.Items {
						size += meter.ItemSize(it)
					}
					*units += math.Ceil(float64(size)/4096) / 2
				}
				return out, md, err
			}), middleware.After)
	}
}
