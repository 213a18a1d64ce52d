package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/telemetry"
)

// noWaiting answers Await's question about waiting listen tasks with
// none, so that a scenario sends its CloudEvents itself.
type noWaiting struct{}

func (noWaiting) Subscribers(context.Context, string) ([]string, error) { return nil, nil }

// startOf is the start message of a case.
func startOf(c localrun.Case) queue.Message {
	return queue.Message{CaseID: c.ID, Body: message.Start{Kind: message.KindStart, Tenant: c.Tenant,
		Workflow: message.WorkflowRef{Namespace: c.Namespace, Name: c.Workflow}, Input: c.Input, IdempotencyKey: c.Key}}
}

// awaitSubscribed waits until the case's listen task waits for an event.
func awaitSubscribed(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	err := poll(ctx, 500*time.Millisecond, func() (bool, error) {
		ids, err := suite.cases.Subscribers(ctx, suite.tenant)
		return slices.Contains(ids, id), err
	})
	if err != nil {
		t.Fatalf("case %s never waited for its event: %v", id, err)
	}
}

// TestSamplesComplete runs every sample workflow once with its sample
// input: each completes with the expected output and a chain that
// verifies; the insurance claim waits for its adjuster until the test sends
// the decision CloudEvent to the work queue.
func TestSamplesComplete(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	var cases []localrun.Case
	var claim localrun.Case
	for _, s := range suite.samples {
		c := newCase(s.Namespace, s.Name, "sample-"+s.Name, s.Input)
		cases = append(cases, c)
		if s.Name == "insurance-claim" {
			claim = c
		}
	}
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	if claim.ID == "" {
		t.Fatal("no insurance-claim sample")
	}
	awaitSubscribed(t, ctx, claim.ID)
	if tail, err := suite.chains.Tail(ctx, claim.ID); err != nil || tail == nil || tail.Type == history.CaseCompleted {
		t.Fatalf("claim before its decision: tail %+v, %v; want a waiting case", tail, err)
	}
	var in struct {
		ClaimID string `json:"claimId"`
	}
	if err := json.Unmarshal(claim.Input, &in); err != nil {
		t.Fatal(err)
	}
	ev := standin.AdjusterDecision(in.ClaimID, "decision-"+claim.Key)
	ev["knhktenant"] = suite.tenant
	if err := suite.work.Send(ctx, queue.Message{Body: ev}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, cases, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatalf("await samples: %v", err)
	}
	for _, c := range cases {
		rs := readChain(t, ctx, c.ID)
		want, ok := standin.Outputs[c.Workflow]
		if !ok {
			t.Errorf("%s: no expected output known", c.Workflow)
			continue
		}
		if got := output(t, rs); got != canonical(t, []byte(want)) {
			t.Errorf("%s: output %s, want %s", c.Workflow, got, want)
		}
		if d := duplicates(rs); len(d) > 0 {
			t.Errorf("%s: events recorded twice: %v", c.Workflow, d)
		}
	}
	rs := readChain(t, ctx, claim.ID)
	if count(rs, history.EventReceived) != 1 {
		t.Errorf("claim: %d event.received receipts, want 1: %v", count(rs, history.EventReceived), types(rs))
	}
}

// mixTenants is how many tenants share TestMixedLoad200's cases.
const mixTenants = 8

// TestMixedLoad200 runs 200 concurrent cases cycling through the samples:
// all complete, all chains verify, the verifier records no finding for
// them, and the executor's CasesCompleted metric reaches CloudWatch.
// Throughput and latency quantiles are logged, not asserted.
func TestMixedLoad200(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 240*time.Second)
	// Eight tenants of 25 cases: the executor hands every CloudEvent to
	// every waiting case of its tenant, so the adjuster decisions of 33
	// claims in one tenant would make 33 x 33 continuation messages.
	var cases []localrun.Case
	for i := range mixTenants {
		some, err := localrun.Mix(suite.samples, 200/mixTenants, fmt.Sprintf("%s-m%d", suite.tenant, i), suite.run+"-mix")
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, some...)
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
	t.Logf("200 cases in %s: %.1f cases/s, %d receipts, p50 %s, p99 %s, max %s", wall.Round(time.Millisecond),
		float64(len(cases))/wall.Seconds(), sum.Receipts, sum.P50, sum.P99, sum.Max)
	if !sum.OK() {
		t.Fatalf("not every case completed with a verified chain: %+v, findings %v", sum.Rows, sum.Findings)
	}
	for _, o := range outs {
		if o.Case.Workflow == "insurance-claim" {
			continue // its output carries the generated claim id
		}
		rs := readChain(t, ctx, o.Case.ID)
		if got, want := output(t, rs), canonical(t, []byte(standin.Outputs[o.Case.Workflow])); got != want {
			t.Errorf("%s %s: output %s, want %s", o.Case.Workflow, o.Case.ID, got, want)
		}
	}
	// The verifier reads the stream asynchronously: give it until the metric
	// shows up to report anything, then expect nothing for these cases.
	awaitMetricSum(t, ctx, telemetry.CasesCompleted, started, float64(len(cases)))
	ids := map[string]bool{}
	for _, c := range cases {
		ids[c.ID] = true
	}
	found, err := suite.findings.Recent(ctx, started.Add(-time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if ids[f.CaseID] {
			t.Errorf("verifier finding on a clean case: %v", f.Finding)
		}
	}
}

// awaitMetricSum waits until the sum of a KNHK metric over all its
// dimension sets since `since` reaches at least want.
func awaitMetricSum(t *testing.T, ctx context.Context, name string, since time.Time, want float64) {
	t.Helper()
	var got float64
	err := poll(ctx, 2*time.Second, func() (bool, error) {
		s, err := metricSum(ctx, name, since)
		got = s
		return s >= want, err
	})
	if err != nil {
		t.Fatalf("metric %s/%s: sum %v since %s, want at least %v: %v", telemetry.Namespace, name, got, since.Format(time.RFC3339), want, err)
	}
	t.Logf("metric %s/%s: sum %v", telemetry.Namespace, name, got)
}

func metricSum(ctx context.Context, name string, since time.Time) (float64, error) {
	lm, err := suite.cw.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String(telemetry.Namespace), MetricName: aws.String(name)})
	if err != nil {
		return 0, fmt.Errorf("list metrics: %w", err)
	}
	var total float64
	for _, m := range lm.Metrics {
		st, err := suite.cw.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
			Namespace: m.Namespace, MetricName: m.MetricName, Dimensions: m.Dimensions,
			StartTime: aws.Time(since.Add(-time.Minute).Truncate(time.Minute)), EndTime: aws.Time(time.Now().Add(time.Minute)),
			Period: aws.Int32(60), Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
		})
		if err != nil {
			return 0, fmt.Errorf("metric statistics: %w", err)
		}
		for _, p := range st.Datapoints {
			total += aws.ToFloat64(p.Sum)
		}
	}
	return total, nil
}

// TestDuplicateStart sends one start message three times, concurrently for
// one case and one after another (after the case completed) for another:
// each opens exactly one case with one genesis, and its chain has the same
// shape as a case started once.
func TestDuplicateStart(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	in := sampleInput(t, "payment-processing")
	single := newCase("payments", "payment-processing", "dup-single", in)
	concurrent := newCase("payments", "payment-processing", "dup-concurrent", in)
	serial := newCase("payments", "payment-processing", "dup-serial", in)
	if err := suite.work.Send(ctx, startOf(single), startOf(serial)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() { errs <- suite.work.Send(ctx, startOf(concurrent)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all := []localrun.Case{single, concurrent, serial}
	awaitAll(t, ctx, all)
	for range 2 {
		if err := suite.work.Send(ctx, startOf(serial)); err != nil {
			t.Fatal(err)
		}
	}
	awaitQueueIdle(t, ctx)
	want := types(readChain(t, ctx, single.ID))
	for _, c := range all[1:] {
		rs := readChain(t, ctx, c.ID)
		if n := count(rs, history.CaseStarted); n != 1 {
			t.Errorf("%s: %d genesis receipts, want 1", c.Key, n)
		}
		if got := types(rs); !slices.Equal(got, want) {
			t.Errorf("%s: chain %v, want the single run's %v", c.Key, got, want)
		}
		if d := duplicates(rs); len(d) > 0 {
			t.Errorf("%s: events recorded twice: %v", c.Key, d)
		}
	}
}

func sampleInput(t *testing.T, name string) json.RawMessage {
	t.Helper()
	for _, s := range suite.samples {
		if s.Name == name {
			return s.Input
		}
	}
	t.Fatalf("no sample %s", name)
	return nil
}

// awaitQueueIdle waits until the work queue holds no message, visible or
// in flight, for two consecutive reads. Delayed messages do not count:
// timeouts of waiting cases (e.g. the insurance claim's five-day adjuster
// SLA) sit there for the whole suite.
func awaitQueueIdle(t *testing.T, ctx context.Context) {
	t.Helper()
	quiet, n := 0, 0
	err := poll(ctx, time.Second, func() (bool, error) {
		var err error
		n, err = queueDepth(ctx, suite.res.WorkQueueURL)
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
		return quiet >= 2, err
	})
	if err != nil {
		t.Fatalf("work queue never idle (%d messages): %v", n, err)
	}
}

func queueDepth(ctx context.Context, url string) (int, error) {
	out, err := suite.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, fmt.Errorf("queue attributes: %w", err)
	}
	n := 0
	for name, v := range out.Attributes {
		var k int
		if _, err := fmt.Sscan(v, &k); err != nil {
			return 0, fmt.Errorf("queue attribute %s=%q: %w", name, v, err)
		}
		n += k
	}
	return n, nil
}

// TestForkJoinConcurrent runs 20 cross-border payments at once: each chain
// joins every fork exactly once, completes once, and records no event
// identity twice.
func TestForkJoinConcurrent(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	in := sampleInput(t, "cross-border-payment")
	var cases []localrun.Case
	for i := range 20 {
		cases = append(cases, newCase("payments", "cross-border-payment", fmt.Sprintf("fork-%02d", i), in))
	}
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, cases)
	for _, c := range cases {
		rs := readChain(t, ctx, c.ID)
		forks, joins := count(rs, history.BranchForked), count(rs, history.BranchJoined)
		if forks == 0 || joins != forks {
			t.Errorf("%s: %d forks, %d joins; want one join per fork: %v", c.ID, forks, joins, types(rs))
		}
		if n := count(rs, history.CaseCompleted); n != 1 {
			t.Errorf("%s: %d case.completed, want 1", c.ID, n)
		}
		if d := duplicates(rs); len(d) > 0 {
			t.Errorf("%s: events recorded twice: %v", c.ID, d)
		}
	}
}

// TestWaitTimer runs a workflow that waits two seconds (a delayed SQS
// message) and then sets a field: the timer fires once, not before it is
// due, and the case completes.
func TestWaitTimer(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 60*time.Second)
	c := newCase("e2e", "timer", "timer", map[string]any{"order": "o-1"})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, []localrun.Case{c})
	rs := readChain(t, ctx, c.ID)
	if got, want := output(t, rs), `{"order":"o-1","waited":true}`; got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	var scheduled, fired time.Time
	for _, r := range rs {
		switch r.Type {
		case history.TimerScheduled:
			scheduled = r.Started
		case history.TimerFired:
			fired = r.Started
		}
	}
	if count(rs, history.TimerScheduled) != 1 || count(rs, history.TimerFired) != 1 {
		t.Fatalf("want one timer scheduled and fired: %v", types(rs))
	}
	// The executor fires a timer once at most one second remains (less than
	// one SQS delay step); never earlier.
	if fired.Before(scheduled.Add(time.Second)) {
		t.Errorf("timer fired at %s, scheduled at %s: before it was due", fired, scheduled)
	}
}

// TestListenResumedByEvent runs a workflow that listens for a CloudEvent
// correlated on its input: it waits (subscribed) through an event that does
// not match, and completes with the data of the one that does.
func TestListenResumedByEvent(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 60*time.Second)
	ticket := "t-" + suite.run
	c := newCase("e2e", "listener", "listener", map[string]any{"ticket": ticket})
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitSubscribed(t, ctx, c.ID)
	reply := func(subject, id string, data map[string]any) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id, "source": "https://e2e.knhk.local",
			"type": "com.knhk.e2e.reply.v1", "subject": subject, "datacontenttype": "application/json",
			"knhktenant": suite.tenant, "data": data}
	}
	if err := suite.work.Send(ctx, queue.Message{Body: reply("t-other", "reply-0-"+suite.run, map[string]any{"answer": "wrong"})}); err != nil {
		t.Fatal(err)
	}
	// The unmatched event leaves the case waiting.
	awaitQueueIdle(t, ctx)
	if tail, err := suite.chains.Tail(ctx, c.ID); err != nil || tail.Type == history.CaseCompleted {
		t.Fatalf("case ended on an event that does not correlate: %+v, %v", tail, err)
	}
	awaitSubscribed(t, ctx, c.ID)
	if err := suite.work.Send(ctx, queue.Message{Body: reply(ticket, "reply-1-"+suite.run, map[string]any{"answer": "yes", "by": "e2e"})}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{c}, suite.chains, noWaiting{}, suite.work, nil); err != nil {
		t.Fatal(err)
	}
	rs := readChain(t, ctx, c.ID)
	if got, want := output(t, rs), `{"answer":"yes","by":"e2e"}`; got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	if n := count(rs, history.EventReceived); n != 1 {
		t.Errorf("%d event.received, want 1: %v", n, types(rs))
	}
	ids, err := suite.cases.Subscribers(ctx, suite.tenant)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids, c.ID) {
		t.Error("completed case still subscribed")
	}
}
