package alarmeval

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/localaws"
)

// TestEvaluatorOnEndpoint pins the loop against the real local endpoint: a
// breaching datapoint takes a metric alarm and the composite over it to
// ALARM, CloudWatch's notification reaches a queue subscribed to the
// action topic, the alarm returns to OK once the data stop (notBreaching),
// and DescribeAlarmHistory shows both transitions.
func TestEvaluatorOnEndpoint(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cw, sn, q := localaws.NewCloudWatch(cfg), sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts")})
	if err != nil {
		t.Fatal(err)
	}
	queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("inbox")})
	if err != nil {
		t.Fatal(err)
	}
	qa, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(qa.Attributes["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	dims := []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: aws.String("dlq")}}
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("depth"),
		AlarmDescription: aws.String("Messages wait. Runbook: r.md"), Namespace: aws.String("AWS/SQS"),
		MetricName: aws.String("ApproximateNumberOfMessagesVisible"), Statistic: cwtypes.StatisticMaximum, Dimensions: dims,
		Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1), DatapointsToAlarm: aws.Int32(1), Threshold: aws.Float64(1),
		ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanOrEqualToThreshold, TreatMissingData: aws.String(NotBreaching),
		AlarmActions: []string{*topic.TopicArn}, OKActions: []string{*topic.TopicArn}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutCompositeAlarm(ctx, &cloudwatch.PutCompositeAlarmInput{AlarmName: aws.String("unhealthy"),
		AlarmRule: aws.String(`ALARM("depth")`)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/SQS"), MetricData: []cwtypes.MetricDatum{{
		MetricName: aws.String("ApproximateNumberOfMessagesVisible"), Dimensions: dims, Value: aws.Float64(3), Timestamp: aws.Time(now)}}}); err != nil {
		t.Fatal(err)
	}
	ev := &Evaluator{CW: cw, SNS: sn, Region: cfg.Region, Now: func() time.Time { return now }}
	states := func() map[string]cwtypes.StateValue {
		out, err := cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]cwtypes.StateValue{}
		for _, a := range out.MetricAlarms {
			m[*a.AlarmName] = a.StateValue
		}
		for _, a := range out.CompositeAlarms {
			m[*a.AlarmName] = a.StateValue
		}
		return m
	}
	if err := ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if s := states(); s["depth"] != cwtypes.StateValueAlarm || s["unhealthy"] != cwtypes.StateValueAlarm {
		t.Fatalf("after a breaching datapoint: %v", s)
	}
	msg := receive(t, q, *queue.QueueUrl)
	if msg["AlarmName"] != "depth" || msg["NewStateValue"] != "ALARM" || msg["OldStateValue"] != "INSUFFICIENT_DATA" ||
		msg["AlarmDescription"] != "Messages wait. Runbook: r.md" || msg["NewStateReason"] == "" || msg["StateChangeTime"] == "" {
		t.Errorf("notification: %v", msg)
	}
	trig, _ := msg["Trigger"].(map[string]any)
	if trig["MetricName"] != "ApproximateNumberOfMessagesVisible" || trig["Namespace"] != "AWS/SQS" || trig["Statistic"] != "MAXIMUM" ||
		trig["Period"] != 60.0 || trig["EvaluationPeriods"] != 1.0 || trig["Threshold"] != 1.0 ||
		trig["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" {
		t.Errorf("trigger: %v", trig)
	}
	// A second tick with nothing new changes nothing and notifies nobody.
	if err := ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Minute)
	if err := ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if s := states(); s["depth"] != cwtypes.StateValueOk || s["unhealthy"] != cwtypes.StateValueOk {
		t.Fatalf("after recovery: %v", s)
	}
	if msg := receive(t, q, *queue.QueueUrl); msg["NewStateValue"] != "OK" || msg["OldStateValue"] != "ALARM" {
		t.Errorf("recovery notification: %v", msg)
	}
	h, err := cw.DescribeAlarmHistory(ctx, &cloudwatch.DescribeAlarmHistoryInput{AlarmName: aws.String("depth"), ScanBy: cwtypes.ScanByTimestampAscending})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range h.AlarmHistoryItems {
		got = append(got, aws.ToString(it.HistorySummary))
	}
	if len(got) != 2 || got[0] != "Alarm updated from INSUFFICIENT_DATA to ALARM" || got[1] != "Alarm updated from ALARM to OK" {
		t.Errorf("history: %q", got)
	}
}

// receive takes one SNS-delivered message off the queue and returns the
// alarm notification inside its envelope.
func receive(t *testing.T, q *sqs.Client, url string) map[string]any {
	t.Helper()
	out, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 5, MaxNumberOfMessages: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	m := out.Messages[0]
	if _, err := q.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	var env struct{ Message string }
	var msg map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(env.Message), &msg); err != nil {
		t.Fatalf("notification %q: %v", env.Message, err)
	}
	return msg
}

// TestEvaluatorAlignsPeriods pins the evaluation to period boundaries: a
// datapoint early in the current minute, after one late in the previous
// minute, is the current minute's, though the endpoint buckets a range's
// data from its first datapoint (the burn-rate gauges of a job scheduled
// every minute arrive exactly so).
func TestEvaluatorAlignsPeriods(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cw := localaws.NewCloudWatch(cfg)
	dims := []cwtypes.Dimension{{Name: aws.String("Window"), Value: aws.String("page-1h-long")}}
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("burn"), Namespace: aws.String("KNHK"),
		MetricName: aws.String("SLABurnRate"), Statistic: cwtypes.StatisticMaximum, Dimensions: dims,
		Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1), DatapointsToAlarm: aws.Int32(1), Threshold: aws.Float64(14.4),
		ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanOrEqualToThreshold, TreatMissingData: aws.String(NotBreaching)}); err != nil {
		t.Fatal(err)
	}
	minute := time.Now().Truncate(time.Minute)
	for _, p := range []struct {
		at time.Duration
		v  float64
	}{{-43 * time.Second, 0}, {2 * time.Second, 923}} {
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("KNHK"), MetricData: []cwtypes.MetricDatum{{
			MetricName: aws.String("SLABurnRate"), Dimensions: dims, Value: aws.Float64(p.v), Timestamp: aws.Time(minute.Add(p.at))}}}); err != nil {
			t.Fatal(err)
		}
	}
	state := func(now time.Time) cwtypes.StateValue {
		t.Helper()
		ev := &Evaluator{CW: cw, Region: cfg.Region, Now: func() time.Time { return now }}
		if err := ev.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"burn"}})
		if err != nil || len(out.MetricAlarms) != 1 {
			t.Fatalf("describe: %v", err)
		}
		return out.MetricAlarms[0].StateValue
	}
	if s := state(minute.Add(-5 * time.Second)); s != cwtypes.StateValueOk {
		t.Errorf("in the previous minute (burn 0): %s, want OK", s)
	}
	if s := state(minute.Add(5 * time.Second)); s != cwtypes.StateValueAlarm {
		t.Errorf("in the minute of the breaching datapoint: %s, want ALARM", s)
	}
	if s := state(minute.Add(65 * time.Second)); s != cwtypes.StateValueOk {
		t.Errorf("a minute without data (notBreaching): %s, want OK", s)
	}
}
