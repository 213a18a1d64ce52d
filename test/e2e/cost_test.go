package e2e

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/objects"
)

// TestCostJobExportsToS3: the deployed cost function, run under the local
// Lambda service as its schedule runs it, writes the month's chargeback by
// workflow, tenant and department, CSV and JSON, to the stack's chargeback
// bucket, with the suite's completed case priced under its tenant, and
// prices the work queue mapping's polling from the AWS/SQS metrics the
// local Lambda service published (at least what CloudWatch held before the
// run); a second run writes the same objects again and alerts nothing.
func TestCostJobExportsToS3(t *testing.T) {
	if suite.external {
		t.Skip("invokes the cost job through the local Lambda service")
	}
	noteFailure(t)
	ctx := ctxFor(t, 180*time.Second)
	if suite.res.ChargebackBucket == "" {
		t.Fatal("the deployed stack has no chargeback bucket output")
	}
	c := newCase("e2e", "five-tasks", "cost-export", map[string]any{"qty": 2, "unitPrice": 5})
	awaitAll(t, ctx, submit(t, ctx, c))
	queue := path.Base(suite.res.WorkQueueURL)
	var polled float64 // empty receives CloudWatch holds for the month
	if err := poll(ctx, time.Second, func() (bool, error) {
		now := time.Now().UTC()
		out, err := suite.cw.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String("AWS/SQS"), MetricName: aws.String("NumberOfEmptyReceives"),
			Dimensions: []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: aws.String(queue)}},
			StartTime:  aws.Time(time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)), EndTime: aws.Time(now),
			Period: aws.Int32(3600), Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
		})
		if err != nil {
			return false, err
		}
		polled = 0
		for _, dp := range out.Datapoints {
			polled += aws.ToFloat64(dp.Sum)
		}
		return polled > 0, nil // the first finished minute of polling
	}); err != nil {
		t.Fatalf("no AWS/SQS polling metrics of %s: %v", queue, err)
	}
	skipped := func(r costjob.Result) bool { return r.Skipped }
	first := runJob(t, ctx, costjob.FunctionName, skipped)
	period := chargeback.Period(time.Now())
	if first.Period != period || first.Cases < 1 || len(first.Exports) != 6 {
		t.Fatalf("first run %+v", first)
	}
	if len(first.Polling) != 1 || first.Polling[0].Queue != queue || float64(first.Polling[0].EmptyReceives) < polled {
		t.Errorf("polling priced %+v, want %s with at least %v empty receives", first.Polling, queue, polled)
	}
	bucket := objects.New(objects.NewClient(suite.cfg), suite.res.ChargebackBucket)
	read := func() map[string][]byte {
		objs := map[string][]byte{}
		for _, by := range []chargeback.Key{chargeback.ByWorkflow, chargeback.ByTenant, chargeback.ByDepartment} {
			for _, ext := range []string{"csv", "json"} {
				key := costjob.ExportKey(period, by, ext)
				b, err := bucket.Get(ctx, key, 0)
				if err != nil {
					t.Fatalf("export %s: %v", key, err)
				}
				objs[key] = b
			}
		}
		return objs
	}
	before := read()
	var byTenant chargeback.Report
	if err := json.Unmarshal(before[costjob.ExportKey(period, chargeback.ByTenant, "json")], &byTenant); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range byTenant.Lines {
		found = found || (l.Key == suite.tenant && l.Cases >= 1 && l.Direct.Sign() > 0)
	}
	if !found {
		t.Fatalf("tenant %s not priced in the export: %+v", suite.tenant, byTenant.Lines)
	}
	if !bytes.Contains(before[costjob.ExportKey(period, chargeback.ByWorkflow, "csv")], []byte(",e2e/five-tasks,")) {
		t.Errorf("by-workflow CSV lacks e2e/five-tasks:\n%s", before[costjob.ExportKey(period, chargeback.ByWorkflow, "csv")])
	}
	second := runJob(t, ctx, costjob.FunctionName, skipped)
	if len(second.Alerts) != 0 || len(second.Exports) != 6 {
		t.Fatalf("second run %+v", second)
	}
	// Nothing ran in between (this scenario's case is the newest), so the
	// second run prices the same cases to the same amounts; only the idle
	// cost may have grown, by the platform's own runs (the first cost run
	// among them) recorded since.
	if second.Cases == first.Cases {
		for k, v := range read() {
			was, now := withoutIdle(t, k, before[k]), withoutIdle(t, k, v)
			if !bytes.Equal(was, now) {
				t.Errorf("%s changed on a second run:\n%s\n%s", k, was, now)
			}
		}
	}
}

// withoutIdle is an export without its idle cost and the totals that
// include it: the JSON's idle and total members, the CSV's (idle) row.
func withoutIdle(t *testing.T, key string, b []byte) []byte {
	t.Helper()
	if strings.HasSuffix(key, ".json") {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		delete(m, "idle")
		delete(m, "total")
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, ",(idle),") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}
