package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/telemetry"
)

// TestAlarmLifecycle pushes a page-level burn rate over both windows of the
// first Workbook rule: the two window alarms and their composite go to
// ALARM as CloudWatch would take them, CloudWatch's notification of the
// composite reaches a queue subscribed to the page topic, the alarms
// return to OK once the burn stops, and the alarm history shows both
// transitions.
func TestAlarmLifecycle(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 4*time.Minute)
	page := stackOutput(t, "PageTopicArn")
	alerts := subscribeTopic(t, ctx, "page", page)
	rule := sla.WorkbookRules()[0]
	composite := findAlarm(t, ctx, "-sla-burn-"+rule.Name)
	await := func(want cwtypes.StateValue) {
		t.Helper()
		err := poll(ctx, time.Second, func() (bool, error) {
			out, err := suite.cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{composite},
				AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeCompositeAlarm}})
			return err == nil && len(out.CompositeAlarms) == 1 && out.CompositeAlarms[0].StateValue == want, err
		})
		if err != nil {
			t.Fatalf("composite %s never reached %s: %v", composite, want, err)
		}
	}
	// Start from OK (an earlier test's data may still be in the window).
	await(cwtypes.StateValueOk)
	var data []cwtypes.MetricDatum
	for _, long := range []bool{true, false} {
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String(telemetry.SLABurnRate), Value: aws.Float64(rule.Factor * 2),
			Timestamp: aws.Time(time.Now()), Dimensions: []cwtypes.Dimension{
				{Name: aws.String(telemetry.DimWorkflow), Value: aws.String(slajob.Overall)},
				{Name: aws.String(telemetry.DimWindow), Value: aws.String(slajob.WindowLabel(rule, long))}}})
	}
	if _, err := suite.cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(telemetry.Namespace), MetricData: data}); err != nil {
		t.Fatal(err)
	}
	await(cwtypes.StateValueAlarm)
	msg := awaitNotification(t, ctx, alerts, composite, "ALARM")
	if msg["OldStateValue"] != "OK" || msg["NewStateReason"] == "" || msg["StateChangeTime"] == "" ||
		!strings.Contains(msg["AlarmDescription"].(string), "Runbook: ") {
		t.Errorf("notification: %v", msg)
	}
	// The burn stops: the minute ends with no breaching datapoint after it.
	await(cwtypes.StateValueOk)
	awaitNotification(t, ctx, alerts, composite, "OK")
	h, err := suite.cw.DescribeAlarmHistory(ctx, &cloudwatch.DescribeAlarmHistoryInput{AlarmName: aws.String(composite),
		ScanBy: cwtypes.ScanByTimestampAscending})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range h.AlarmHistoryItems {
		got = append(got, aws.ToString(it.HistorySummary))
	}
	joined := strings.Join(got, "; ")
	if !strings.Contains(joined, "Alarm updated from OK to ALARM; Alarm updated from ALARM to OK") {
		t.Errorf("history of %s: %q", composite, got)
	}
}

// findAlarm returns the name of the one alarm whose name ends with suffix.
func findAlarm(t *testing.T, ctx context.Context, suffix string) string {
	t.Helper()
	out, err := suite.cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{
		AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}, MaxRecords: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range out.CompositeAlarms {
		names = append(names, aws.ToString(a.AlarmName))
	}
	for _, a := range out.MetricAlarms {
		names = append(names, aws.ToString(a.AlarmName))
	}
	for _, n := range names {
		if strings.HasSuffix(n, suffix) {
			return n
		}
	}
	t.Fatalf("no alarm named *%s among %v", suffix, names)
	return ""
}

// awaitNotification reads the alerts queue until CloudWatch's notification
// of the alarm's change to state arrives, and returns it.
func awaitNotification(t *testing.T, ctx context.Context, queue, alarm, state string) map[string]any {
	t.Helper()
	for ctx.Err() == nil {
		out, err := suite.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var env struct{ Message string }
			var msg map[string]any
			if json.Unmarshal([]byte(aws.ToString(m.Body)), &env) != nil || json.Unmarshal([]byte(env.Message), &msg) != nil {
				continue
			}
			if msg["AlarmName"] == alarm && msg["NewStateValue"] == state {
				return msg
			}
		}
	}
	t.Fatalf("no %s notification of %s: %v", state, alarm, ctx.Err())
	return nil
}

// stackOutput reads one output of the stack under test from its outputs
// file.
func stackOutput(t *testing.T, key string) string {
	t.Helper()
	path := os.Getenv(envOutputs)
	switch {
	case suite.tmp != "":
		path = filepath.Join(suite.tmp, "outputs.json")
	case path == "":
		path = stack.DefaultOutputsFile
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var outs map[string]string
	if err := json.Unmarshal(b, &outs); err != nil || outs[key] == "" {
		t.Skipf("the stack's outputs (%s) name no %s (%v)", path, key, err)
	}
	return outs[key]
}
