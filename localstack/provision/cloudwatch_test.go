package provision

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/knhk/knhk/shared/localaws"
)

const alarmTemplate = `{"Resources": {
 "Topic": {"Type": "AWS::SNS::Topic"},
 "Depth": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
   "AlarmName": "t-depth", "AlarmDescription": "Messages wait. Runbook: https://x/depth.md",
   "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible", "Statistic": "Maximum",
   "Dimensions": [{"Name": "QueueName", "Value": "dlq"}], "Period": 60, "EvaluationPeriods": "3",
   "DatapointsToAlarm": 2, "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
   "TreatMissingData": "notBreaching", "AlarmActions": [{"Ref": "Topic"}], "OKActions": [{"Ref": "Topic"}]}},
 "Both": {"Type": "AWS::CloudWatch::CompositeAlarm", "Properties": {
   "AlarmName": "t-both", "AlarmDescription": "Both fire.",
   "AlarmRule": {"Fn::Join": ["", ["ALARM(\"", {"Ref": "Depth"}, "\") AND NOT OK(\"", {"Ref": "Depth"}, "\")"]]},
   "AlarmActions": [{"Ref": "Topic"}]}}}}`

// TestDeployAlarms pins that the deploy creates metric and composite alarms
// with their template properties, that a redeploy keeps them (state and
// history survive), and that the endpoint records a StateUpdate history
// item per state change.
func TestDeployAlarms(t *testing.T) {
	tpl, err := ParseTemplate([]byte(alarmTemplate))
	if err != nil {
		t.Fatal(err)
	}
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Apply(ctx, cfg, tpl, Options{StackName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Results {
		if r.Action != Created {
			t.Errorf("%s: %s (%s), want created", r.LogicalID, r.Action, r.Reason)
		}
	}
	cw := localaws.NewCloudWatch(cfg)
	out, err := cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{
		AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.MetricAlarms) != 1 || len(out.CompositeAlarms) != 1 {
		t.Fatalf("alarms: %d metric, %d composite; want 1 and 1", len(out.MetricAlarms), len(out.CompositeAlarms))
	}
	topic := d.Resources["Topic"].PhysicalID
	m := out.MetricAlarms[0]
	if aws.ToString(m.AlarmName) != "t-depth" || aws.ToInt32(m.Period) != 60 || aws.ToInt32(m.EvaluationPeriods) != 3 ||
		aws.ToInt32(m.DatapointsToAlarm) != 2 || aws.ToFloat64(m.Threshold) != 1 || m.Statistic != cwtypes.StatisticMaximum ||
		m.ComparisonOperator != cwtypes.ComparisonOperatorGreaterThanOrEqualToThreshold ||
		aws.ToString(m.TreatMissingData) != "notBreaching" || len(m.Dimensions) != 1 ||
		aws.ToString(m.Dimensions[0].Value) != "dlq" || len(m.AlarmActions) != 1 || m.AlarmActions[0] != topic ||
		len(m.OKActions) != 1 || m.StateValue != cwtypes.StateValueInsufficientData {
		t.Errorf("metric alarm not as the template says: %+v", m)
	}
	c := out.CompositeAlarms[0]
	if aws.ToString(c.AlarmRule) != `ALARM("t-depth") AND NOT OK("t-depth")` || aws.ToString(c.AlarmDescription) != "Both fire." ||
		len(c.AlarmActions) != 1 || c.AlarmActions[0] != topic || c.StateValue != cwtypes.StateValueInsufficientData {
		t.Errorf("composite alarm not as the template says: %+v", c)
	}

	for _, s := range []cwtypes.StateValue{cwtypes.StateValueAlarm, cwtypes.StateValueAlarm, cwtypes.StateValueOk} {
		if _, err := cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("t-depth"), StateValue: s,
			StateReason: aws.String("test " + string(s)), StateReasonData: aws.String(`{"version":"1.0"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	again, err := Apply(ctx, cfg, tpl, Options{StackName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again.Results {
		if r.Action != Kept {
			t.Errorf("redeploy %s: %s, want kept", r.LogicalID, r.Action)
		}
	}
	h, err := cw.DescribeAlarmHistory(ctx, &cloudwatch.DescribeAlarmHistoryInput{AlarmName: aws.String("t-depth"),
		HistoryItemType: cwtypes.HistoryItemTypeStateUpdate, ScanBy: cwtypes.ScanByTimestampAscending})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Alarm updated from INSUFFICIENT_DATA to ALARM", "Alarm updated from ALARM to OK"}
	if len(h.AlarmHistoryItems) != len(want) {
		t.Fatalf("history: %d items, want %d (one per change): %+v", len(h.AlarmHistoryItems), len(want), h.AlarmHistoryItems)
	}
	for i, it := range h.AlarmHistoryItems {
		var data struct {
			NewState struct{ StateValue, StateReason string }
		}
		if err := json.Unmarshal([]byte(aws.ToString(it.HistoryData)), &data); err != nil {
			t.Fatal(err)
		}
		if aws.ToString(it.HistorySummary) != want[i] || aws.ToString(it.AlarmName) != "t-depth" ||
			it.AlarmType != cwtypes.AlarmTypeMetricAlarm || it.Timestamp == nil || data.NewState.StateReason == "" {
			t.Errorf("history item %d: %+v (data %+v)", i, it, data)
		}
	}
	other, err := cw.DescribeAlarmHistory(ctx, &cloudwatch.DescribeAlarmHistoryInput{AlarmName: aws.String("t-both")})
	if err != nil || len(other.AlarmHistoryItems) != 0 {
		t.Errorf("history of an unchanged alarm: %+v, %v", other, err)
	}
}
