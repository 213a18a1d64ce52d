package e2e

import (
	"context"
	"fmt"
	"maps"
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
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/telemetry"
)

// TestThroughput1000 is the load measurement (KNHK_E2E_LOAD=1): 1,000
// cases of a five-task workflow, then the endpoint's rate of conditional
// PutItem (16 writers, 10 s, on scratch tables) as the ceiling: raw (small
// items, no stream) and receipt-shaped. It logs cases/s, latency
// quantiles, each ceiling divided by the writes each case makes, and the
// share of it reached. Only completion and verification are asserted.
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
	// Each stored item is one conditional write (a segment holds a step's
	// receipts); count them on a sample of the cases.
	items := 0
	const sampled = 50
	for _, c := range cases[:sampled] {
		items += len(caseItems(t, ctx, c.ID))
	}
	writesPerCase := float64(items) / sampled
	t.Logf("%d cases: last terminal receipt %s after submission (watched for %s): %.1f cases/s; submission to end p50 %s, p99 %s; %d receipts (%.1f per case, %.1f conditional writes per case)",
		n, run.Round(time.Millisecond), wall.Round(time.Millisecond), rate, q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), sum.Receipts, float64(sum.Receipts)/n, writesPerCase)

	// Two ceilings: the emulator's raw rate of small conditional puts, and
	// its rate for exactly the writes KNHK must make (this run's receipt
	// items, a stream on the table), both without any KNHK code.
	sample := caseItems(t, ctx, cases[0].ID)
	ceilings := []struct {
		name string
		rate float64
	}{
		{"raw (small item, no stream)", conditionalPutRate(t, ctx, smallScratch(), 16, 10*time.Second)},
		{"receipt-shaped (this run's receipt items, stream on)", conditionalPutRate(t, ctx, receiptScratch(t, sample), 16, 10*time.Second)},
	}
	for _, c := range ceilings {
		bound := c.rate / writesPerCase
		t.Logf("ceiling %s: %.0f conditional PutItem/s (16 writers, 10 s); / writes-per-case = %.1f cases/s; achieved %.1f cases/s = %.0f%% of it",
			c.name, c.rate, bound, rate, 100*rate/bound)
	}
}

// TestMixedLoad1000 is the mixed load (KNHK_E2E_LOAD=1): 1,000 cases
// cycling through every sample workflow, the insurance claims among them
// waiting for their adjuster's decision, which Await sends once a claim is
// subscribed. Every case must complete with a verified chain and every
// claim consume exactly its own decision. It logs the wall time, latency
// quantiles and the event messages sent per external event.
func TestMixedLoad1000(t *testing.T) {
	if os.Getenv(envLoad) != "1" {
		t.Skipf("load measurement: set %s=1 to run it", envLoad)
	}
	noteFailure(t)
	ctx := ctxFor(t, 30*time.Minute)
	const n = 1000
	cases, err := localrun.Mix(suite.samples, n, suite.tenant, suite.run+"-mix")
	if err != nil {
		t.Fatal(err)
	}
	claims := 0
	for _, c := range cases {
		if c.Workflow == "insurance-claim" {
			claims++
		}
	}
	started := time.Now()
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	outs := awaitAll(t, ctx, cases)
	wall := time.Since(started)
	sum, err := localrun.Summarize(outs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() {
		t.Fatalf("not every case completed with a verified chain: %+v, findings %v", sum.Rows, sum.Findings)
	}
	for _, c := range cases {
		if c.Workflow != "insurance-claim" {
			continue
		}
		got := 0
		for _, r := range readChain(t, ctx, c.ID) {
			if r.Type == history.EventReceived {
				got++
			}
		}
		if got != 1 {
			t.Fatalf("claim %s consumed %d events, want its own decision only", c.ID, got)
		}
	}
	t.Logf("%d mixed cases (%d claims) completed and verified in %s: p50 %s, p99 %s, %d receipts",
		n, claims, wall.Round(time.Second), sum.P50.Round(time.Millisecond), sum.P99.Round(time.Millisecond), sum.Receipts)
	delivered, err := metricSum(ctx, telemetry.EventsDelivered, started)
	if err == nil {
		t.Logf("event messages sent: %.0f for %d adjuster decisions (%.2f per decision)", delivered, claims, delivered/float64(claims))
	}
}

// scratch is a table for a ceiling measurement and the items written to it.
type scratch struct {
	table dynamodb.CreateTableInput
	item  func(writer, i int) map[string]ddbtypes.AttributeValue
	cond  string
}

// smallScratch is a hash-keyed table without a stream and a 70-byte item.
func smallScratch() scratch {
	return scratch{
		table: dynamodb.CreateTableInput{
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}}},
		item: func(w, i int) map[string]ddbtypes.AttributeValue {
			return map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("w%02d-%08d", w, i)},
				"r":  &ddbtypes.AttributeValueMemberS{Value: "scratch receipt body of a typical size for a set task's receipt"},
			}
		},
		cond: "attribute_not_exists(pk)",
	}
}

// caseItems reads the stored items of a case's chain.
func caseItems(t *testing.T, ctx context.Context, caseID string) []map[string]ddbtypes.AttributeValue {
	t.Helper()
	out, err := suite.db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(suite.res.ReceiptsTable), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberS{Value: caseID}}})
	if err != nil || len(out.Items) == 0 {
		t.Fatalf("items of %s: %v", caseID, err)
	}
	return out.Items
}

// receiptScratch has the receipts table's keys and stream, and writes the
// given stored receipt items under fresh case ids.
func receiptScratch(t *testing.T, items []map[string]ddbtypes.AttributeValue) scratch {
	t.Helper()
	return scratch{
		table: dynamodb.CreateTableInput{
			AttributeDefinitions: []ddbtypes.AttributeDefinition{
				{AttributeName: aws.String(receipt.AttrCase), AttributeType: ddbtypes.ScalarAttributeTypeS},
				{AttributeName: aws.String(receipt.AttrSeq), AttributeType: ddbtypes.ScalarAttributeTypeN}},
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String(receipt.AttrCase), KeyType: ddbtypes.KeyTypeHash},
				{AttributeName: aws.String(receipt.AttrSeq), KeyType: ddbtypes.KeyTypeRange}},
			StreamSpecification: &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewTypeNewAndOldImages}},
		item: func(w, i int) map[string]ddbtypes.AttributeValue {
			it := maps.Clone(items[i%len(items)])
			it[receipt.AttrCase] = &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("w%02d-%08d", w, i/len(items))}
			return it
		},
		cond: "attribute_not_exists(" + receipt.AttrCase + ")",
	}
}

// conditionalPutRate measures conditional PutItem calls per second on a
// scratch table of the same endpoint, deleted afterwards.
func conditionalPutRate(t *testing.T, ctx context.Context, sc scratch, writers int, d time.Duration) float64 {
	t.Helper()
	table := fmt.Sprintf("knhk-e2e-scratch-%s-%d", suite.run, time.Now().UnixNano())
	in := sc.table
	in.TableName, in.BillingMode = aws.String(table), ddbtypes.BillingModePayPerRequest
	if _, err := suite.db.CreateTable(ctx, &in); err != nil {
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
				_, err := suite.db.PutItem(wctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: sc.item(w, i),
					ConditionExpression: aws.String(sc.cond)})
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
