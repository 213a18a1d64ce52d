package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/knhk/knhk/shared/localaws"
)

// TestListAlarms pins knhk alarms against the real local endpoint: metric
// and composite alarms with state, condition, the latest datapoints of the
// alarm's statistic, the runbook from the description, and the summary.
func TestListAlarms(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cw := localaws.NewCloudWatch(cfg)
	dims := []cwtypes.Dimension{{Name: aws.String("Function"), Value: aws.String("verifier")}}
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("knhk-t-findings"),
		AlarmDescription: aws.String("Chains changed. Runbook: https://example.com/runbooks/integrity-findings.md"),
		Namespace:        aws.String("KNHK"), MetricName: aws.String("IntegrityFindings"), Statistic: cwtypes.StatisticSum, Dimensions: dims,
		Period: aws.Int32(60), EvaluationPeriods: aws.Int32(2), Threshold: aws.Float64(1),
		ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanOrEqualToThreshold, TreatMissingData: aws.String("notBreaching")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutCompositeAlarm(ctx, &cloudwatch.PutCompositeAlarmInput{AlarmName: aws.String("knhk-t-unhealthy"),
		AlarmRule: aws.String(`ALARM("knhk-t-findings")`), AlarmDescription: aws.String("Runbook: u.md")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("other"), Namespace: aws.String("X"),
		MetricName: aws.String("Y"), Statistic: cwtypes.StatisticSum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1),
		Threshold: aws.Float64(1), ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, v := range []float64{2, 3} {
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("KNHK"), MetricData: []cwtypes.MetricDatum{{
			MetricName: aws.String("IntegrityFindings"), Dimensions: dims, Value: aws.Float64(v), Timestamp: aws.Time(now)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("knhk-t-findings"), StateValue: cwtypes.StateValueAlarm,
		StateReason: aws.String("Threshold Crossed")}); err != nil {
		t.Fatal(err)
	}
	views, err := listAlarms(ctx, cw, "knhk-t-", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 {
		t.Fatalf("alarms with the prefix: %+v", views)
	}
	f, u := views[0], views[1]
	if f.Name != "knhk-t-findings" || f.Type != "metric" || f.State != "ALARM" || f.Reason != "Threshold Crossed" ||
		f.Metric != "KNHK/IntegrityFindings{Function=verifier}" || !strings.Contains(f.Condition, "Sum GreaterThanOrEqualToThreshold 1, 2 of 2 x 60s") ||
		len(f.Latest) != 1 || f.Latest[0] != 5 || f.Runbook != "https://example.com/runbooks/integrity-findings.md" {
		t.Errorf("metric alarm: %+v", f)
	}
	if u.Type != "composite" || u.State != "INSUFFICIENT_DATA" || u.Condition != `ALARM("knhk-t-findings")` || u.Runbook != "u.md" {
		t.Errorf("composite alarm: %+v", u)
	}
	if got := alarmStates(views); got != "alarms 0 OK, 1 ALARM, 1 INSUFFICIENT_DATA" {
		t.Errorf("summary %q", got)
	}
	var b strings.Builder
	printAlarms(&b, views)
	if !strings.Contains(b.String(), "knhk-t-findings: Threshold Crossed") {
		t.Errorf("table lacks the reason of the alarm in ALARM:\n%s", b.String())
	}
}
