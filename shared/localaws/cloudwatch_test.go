package localaws

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// GetMetricStatistics buckets as CloudWatch does: from StartTime rounded
// down to the minute, one bucket per period, only buckets with data, each
// holding only the datapoints of the dimensions and unit asked for.
func TestMetricStatisticsBucketsAtPeriodBoundaries(t *testing.T) {
	ep := StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cw := NewCloudWatch(cfg)
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	dim := func(v string) []cwtypes.Dimension {
		return []cwtypes.Dimension{{Name: aws.String("Workflow"), Value: aws.String(v)}}
	}
	put := []struct {
		at   time.Duration
		wf   string
		unit cwtypes.StandardUnit
		v    float64
	}{
		{50 * time.Second, "a", cwtypes.StandardUnitCount, 1},  // minute 0, late
		{62 * time.Second, "a", cwtypes.StandardUnitCount, 2},  // minute 1, early
		{119 * time.Second, "a", cwtypes.StandardUnitCount, 4}, // minute 1, late
		{65 * time.Second, "b", cwtypes.StandardUnitCount, 100},
		{70 * time.Second, "a", cwtypes.StandardUnitSeconds, 1000},
		{181 * time.Second, "a", cwtypes.StandardUnitCount, 8}, // minute 3; minute 2 has none
	}
	for _, p := range put {
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("KNHK/Test"), MetricData: []cwtypes.MetricDatum{{
			MetricName: aws.String("Outcomes"), Dimensions: dim(p.wf), Unit: p.unit, Value: aws.Float64(p.v), Timestamp: aws.Time(base.Add(p.at))}}}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cw.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String("KNHK/Test"), MetricName: aws.String("Outcomes"),
		Dimensions: dim("a"), Unit: cwtypes.StandardUnitCount, Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
		StartTime: aws.Time(base.Add(20 * time.Second)), EndTime: aws.Time(base.Add(5 * time.Minute)), Period: aws.Int32(60)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[time.Time]float64{}
	for _, d := range out.Datapoints {
		got[aws.ToTime(d.Timestamp).UTC()] = aws.ToFloat64(d.Sum)
	}
	want := map[time.Time]float64{base.UTC(): 1, base.Add(time.Minute).UTC(): 6, base.Add(3 * time.Minute).UTC(): 8}
	if len(got) != len(want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	for at, sum := range want {
		if got[at] != sum {
			t.Errorf("bucket %s: sum %v, want %v (all: %v)", at.Format(time.TimeOnly), got[at], sum, got)
		}
	}
}
