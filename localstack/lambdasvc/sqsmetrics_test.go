package lambdasvc

import (
	"context"
	"path"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// queueMetrics keeps one Sum per queue, metric and minute; a flush emits
// finished minutes only (all of them when the mapping stopped), every
// minute with all three metrics.
func TestQueueMetricsPerMinute(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	type op struct {
		at       time.Duration
		received int // -1: a delete of deleted
		deleted  int
	}
	type point struct {
		name   string
		minute int
		sum    float64
	}
	for _, c := range []struct {
		name    string
		ops     []op
		flushAt time.Duration
		all     bool
		want    []point
	}{
		{name: "current minute kept", ops: []op{{at: 10 * time.Second}}, flushAt: 50 * time.Second},
		{name: "finished minute", ops: []op{{at: 5 * time.Second}, {at: 6 * time.Second, received: 3}, {at: 7 * time.Second, received: -1, deleted: 3},
			{at: 70 * time.Second}}, flushAt: 80 * time.Second,
			want: []point{{MetricEmptyReceives, 0, 1}, {MetricMessagesReceived, 0, 3}, {MetricMessagesDeleted, 0, 3}}},
		{name: "all at stop", ops: []op{{at: 5 * time.Second, received: 2}, {at: 70 * time.Second}, {at: 75 * time.Second}}, flushAt: 80 * time.Second, all: true,
			want: []point{{MetricEmptyReceives, 0, 0}, {MetricMessagesReceived, 0, 2}, {MetricMessagesDeleted, 0, 0},
				{MetricEmptyReceives, 1, 2}, {MetricMessagesReceived, 1, 0}, {MetricMessagesDeleted, 1, 0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []Metric
			now := t0
			q := newQueueMetrics("http://127.0.0.1:1/000000000000/knhk-work", func(ms ...Metric) { got = append(got, ms...) })
			q.now = func() time.Time { return now }
			for _, o := range c.ops {
				now = t0.Add(o.at)
				if o.received < 0 {
					q.deleted(o.deleted)
				} else {
					q.received(o.received)
				}
			}
			now = t0.Add(c.flushAt)
			q.flush(c.all)
			if len(got) != len(c.want) {
				t.Fatalf("emitted %+v, want %+v", got, c.want)
			}
			for i, w := range c.want {
				g := got[i]
				if g.Namespace != SQSNamespace || g.Name != w.name || g.Unit != "Count" || g.Dimensions[sqsQueueNameDimension] != "knhk-work" ||
					!g.Timestamp.Equal(t0.Add(time.Duration(w.minute)*time.Minute)) || len(g.Values) != 1 || g.Values[0] != w.sum || g.StorageResolution != 60 {
					t.Errorf("metric %d: %+v, want %+v", i, g, w)
				}
			}
			got = nil
			q.flush(true)
			if c.all && len(got) != 0 {
				t.Errorf("a minute emitted twice: %+v", got)
			}
		})
	}
}

// The service publishes, for the queue a mapping polls, what its pollers
// did: every message received and deleted once, and the receives that
// found the queue empty, as AWS/SQS metrics per queue that CloudWatch
// answers.
func TestQueueMappingPublishesSQSMetrics(t *testing.T) {
	h := startHarness(t, onlyQueues)
	work := h.physicalID("WorkQueue")
	h.send(work, "m1", "m2", "m3", "m4", "m5")
	h.eventually(30*time.Second, "5 delivered", func() bool {
		n := 0
		for _, b := range sqsBatches(h.observations()) {
			n += len(b.Records)
		}
		return n >= 5
	})
	time.Sleep(1500 * time.Millisecond) // an empty long poll (MaxWait 1 s) at least
	h.stop()
	cw := NewCloudWatch(h.cfg)
	name := path.Base(work)
	sum := func(metric string) float64 {
		out, err := cw.GetMetricStatistics(context.Background(), &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String(SQSNamespace), MetricName: aws.String(metric),
			Dimensions: []cwtypes.Dimension{{Name: aws.String(sqsQueueNameDimension), Value: aws.String(name)}},
			StartTime:  aws.Time(time.Now().Add(-time.Hour)), EndTime: aws.Time(time.Now().Add(time.Hour)), Period: aws.Int32(60),
			Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
		})
		if err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for _, dp := range out.Datapoints {
			s += aws.ToFloat64(dp.Sum)
		}
		return s
	}
	if got := sum(MetricMessagesReceived); got != 5 {
		t.Errorf("%s = %v, want 5", MetricMessagesReceived, got)
	}
	if got := sum(MetricMessagesDeleted); got != 5 {
		t.Errorf("%s = %v, want 5", MetricMessagesDeleted, got)
	}
	if got := sum(MetricEmptyReceives); got < 1 {
		t.Errorf("%s = %v, want at least one empty receive", MetricEmptyReceives, got)
	}
}
