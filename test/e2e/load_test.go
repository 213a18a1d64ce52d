package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/localstack/localrun"
)

// TestThroughput1000 is the load measurement (KNHK_E2E_LOAD=1): 1,000
// cases of a five-task workflow, then the endpoint's raw rate of
// conditional PutItem (16 writers, 10 s, on a scratch table) as the
// ceiling. It logs cases/s, latency quantiles, the ceiling divided by the
// writes each case makes, and the share of that ceiling reached. Only
// completion and verification are asserted.
func TestThroughput1000(t *testing.T) {
	if os.Getenv(envLoad) != "1" {
		t.Skipf("load measurement: set %s=1 to run it", envLoad)
	}
	noteFailure(t)
	ctx := ctxFor(t, 20*time.Minute)
	const n = 1000
	cases := make([]localrun.Case, n)
	for i := range cases {
		cases[i] = newCase("e2e", "five-tasks", fmt.Sprintf("load-%04d", i), map[string]any{"qty": i%7 + 1, "unitPrice": 12.5})
	}
	started := time.Now()
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	// Reading 1,000 chains while they grow would load the endpoint being
	// measured; the work queue's depth costs one request a second.
	awaitQueueIdle(t, ctx)
	outs := awaitAll(t, ctx, cases)
	wall := time.Since(started)
	sum, err := localrun.Summarize(outs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() {
		t.Fatalf("not every case completed with a verified chain: %+v, findings %v", sum.Rows, sum.Findings)
	}
	// Receipts carry the time of the invocation that wrote them, so a case
	// run in one invocation has no genesis-to-end latency of its own; measure
	// from submission to the terminal receipt instead; the wait above polls
	// once a second, so its wall time overstates the run.
	lat := make([]time.Duration, 0, n)
	var last time.Time
	for _, c := range cases {
		rs := readChain(t, ctx, c.ID)
		end := rs[len(rs)-1].Ended
		if end.IsZero() {
			end = rs[len(rs)-1].Started
		}
		if end.After(last) {
			last = end
		}
		lat = append(lat, end.Sub(started))
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	run := last.Sub(started)
	rate := float64(n) / run.Seconds()
	writesPerCase := float64(sum.Receipts) / n
	t.Logf("%d cases: last terminal receipt %s after submission (watched for %s): %.1f cases/s; submission to end p50 %s, p99 %s; %d receipts (%.1f conditional writes per case)",
		n, run.Round(time.Millisecond), wall.Round(time.Millisecond), rate, q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), sum.Receipts, writesPerCase)

	ceiling := conditionalPutRate(t, ctx, 16, 10*time.Second)
	bound := ceiling / writesPerCase
	t.Logf("ceiling: %.0f conditional PutItem/s (16 writers, 10 s); ceiling / writes-per-case = %.1f cases/s; achieved %.1f cases/s = %.0f%% of it",
		ceiling, bound, rate, 100*rate/bound)
}

// conditionalPutRate measures conditional PutItem calls per second on a
// scratch table of the same endpoint, deleted afterwards.
func conditionalPutRate(t *testing.T, ctx context.Context, writers int, d time.Duration) float64 {
	t.Helper()
	table := "knhk-e2e-scratch-" + suite.run
	_, err := suite.db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String(table), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}}})
	if err != nil {
		t.Fatalf("scratch table: %v", err)
	}
	t.Cleanup(func() {
		_, _ = suite.db.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	if err := dynamodb.NewTableExistsWaiter(suite.db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	var ok, failed atomic.Int64
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; wctx.Err() == nil; i++ {
				_, err := suite.db.PutItem(wctx, &dynamodb.PutItemInput{TableName: aws.String(table),
					Item: map[string]ddbtypes.AttributeValue{
						"pk": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("w%02d-%08d", w, i)},
						"r":  &ddbtypes.AttributeValueMemberS{Value: "scratch receipt body of a typical size for a set task's receipt"},
					},
					ConditionExpression: aws.String("attribute_not_exists(pk)")})
				switch {
				case err == nil:
					ok.Add(1)
				case wctx.Err() == nil:
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if f := failed.Load(); f > 0 {
		t.Logf("scratch writes: %d failed", f)
	}
	return float64(ok.Load()) / elapsed.Seconds()
}
