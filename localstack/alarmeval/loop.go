package alarmeval

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// CloudWatch is the part of the CloudWatch API the evaluator uses.
type CloudWatch interface {
	DescribeAlarms(context.Context, *cloudwatch.DescribeAlarmsInput, ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
	GetMetricStatistics(context.Context, *cloudwatch.GetMetricStatisticsInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
	SetAlarmState(context.Context, *cloudwatch.SetAlarmStateInput, ...func(*cloudwatch.Options)) (*cloudwatch.SetAlarmStateOutput, error)
}

// Publisher sends alarm notifications to SNS topics.
type Publisher interface {
	Publish(context.Context, *sns.PublishInput, ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// Evaluator evaluates every alarm of an endpoint that does not.
type Evaluator struct {
	CW     CloudWatch
	SNS    Publisher
	Region string
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run evaluates every interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		began := time.Now()
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.logger().Warn("alarm evaluation", "err", err)
		}
		if took := time.Since(began); took > interval {
			e.logger().Warn("alarm evaluation pass overran its interval", "took", took.Round(time.Millisecond), "interval", interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Evaluator) logger() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// Tick evaluates every metric alarm, then every composite alarm, once;
// it sets each changed state and notifies the new state's actions.
func (e *Evaluator) Tick(ctx context.Context) error {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	var metric []cwtypes.MetricAlarm
	var composite []cwtypes.CompositeAlarm
	p := cloudwatch.NewDescribeAlarmsPaginator(e.CW, &cloudwatch.DescribeAlarmsInput{
		AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe alarms: %w", err)
		}
		metric = append(metric, page.MetricAlarms...)
		composite = append(composite, page.CompositeAlarms...)
	}
	states := map[string]State{}
	var errs []string
	for _, a := range metric {
		s, err := e.metricAlarm(ctx, a, now())
		if err != nil {
			errs = append(errs, err.Error())
		}
		states[aws.ToString(a.AlarmName)] = s
	}
	for _, a := range composite {
		states[aws.ToString(a.AlarmName)] = State(a.StateValue)
	}
	for _, a := range composite {
		s, err := e.compositeAlarm(ctx, a, states, now())
		if err != nil {
			errs = append(errs, err.Error())
		}
		states[aws.ToString(a.AlarmName)] = s
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (e *Evaluator) metricAlarm(ctx context.Context, a cwtypes.MetricAlarm, now time.Time) (State, error) {
	name, current := aws.ToString(a.AlarmName), State(a.StateValue)
	if a.MetricName == nil || len(a.Metrics) > 0 {
		return current, fmt.Errorf("alarm %s: metric-math alarms are not evaluated locally", name)
	}
	period := time.Duration(aws.ToInt32(a.Period)) * time.Second
	n := int(aws.ToInt32(a.EvaluationPeriods))
	if period <= 0 || n <= 0 {
		return current, fmt.Errorf("alarm %s: period %v, %d evaluation periods", name, period, n)
	}
	// The range ends with the period now falls in; as many periods again
	// before it are the look-back.
	end := now.Truncate(period).Add(period)
	start := end.Add(-2 * time.Duration(n) * period)
	in := &cloudwatch.GetMetricStatisticsInput{Namespace: a.Namespace, MetricName: a.MetricName, Dimensions: a.Dimensions,
		StartTime: aws.Time(start), EndTime: aws.Time(end), Period: a.Period, Unit: a.Unit}
	if a.ExtendedStatistic != nil {
		in.ExtendedStatistics = []string{aws.ToString(a.ExtendedStatistic)}
	} else {
		in.Statistics = []cwtypes.Statistic{a.Statistic}
	}
	out, err := e.CW.GetMetricStatistics(ctx, in)
	if err != nil {
		return current, fmt.Errorf("alarm %s: metric statistics: %w", name, err)
	}
	points := make([]Datapoint, 2*n)
	stamps := make([]time.Time, 2*n)
	for i := range points {
		points[i].Missing = true
		stamps[i] = start.Add(time.Duration(i) * period)
	}
	for _, d := range out.Datapoints {
		i := int(aws.ToTime(d.Timestamp).Sub(start) / period)
		if i < 0 || i >= len(points) {
			continue
		}
		v, ok := Value(d, a)
		points[i] = Datapoint{Value: v, Missing: !ok}
	}
	rule := Rule{EvaluationPeriods: n, DatapointsToAlarm: int(aws.ToInt32(a.DatapointsToAlarm)), Threshold: aws.ToFloat64(a.Threshold),
		Comparison: string(a.ComparisonOperator), TreatMissing: aws.ToString(a.TreatMissingData)}
	o, err := Evaluate(rule, points, current)
	if err != nil {
		return current, fmt.Errorf("alarm %s: %w", name, err)
	}
	if o.State == current {
		return current, nil
	}
	reason, data := metricReason(a, rule, o, points, stamps, current, now)
	return o.State, e.transition(ctx, name, aws.ToString(a.AlarmDescription), aws.ToString(a.AlarmArn), current, o.State, reason, data, now,
		actionsFor(o.State, a.AlarmActions, a.OKActions, a.InsufficientDataActions, aws.ToBool(a.ActionsEnabled)), trigger(a))
}

// Value is the alarm's statistic in a GetMetricStatistics datapoint.
func Value(d cwtypes.Datapoint, a cwtypes.MetricAlarm) (float64, bool) {
	if a.ExtendedStatistic != nil {
		v, ok := d.ExtendedStatistics[aws.ToString(a.ExtendedStatistic)]
		return v, ok
	}
	var v *float64
	switch a.Statistic {
	case cwtypes.StatisticSum:
		v = d.Sum
	case cwtypes.StatisticAverage:
		v = d.Average
	case cwtypes.StatisticMaximum:
		v = d.Maximum
	case cwtypes.StatisticMinimum:
		v = d.Minimum
	case cwtypes.StatisticSampleCount:
		v = d.SampleCount
	}
	return aws.ToFloat64(v), v != nil
}

var comparisonWords = map[string]string{
	"GreaterThanOrEqualToThreshold": "greater than or equal to",
	"GreaterThanThreshold":          "greater than",
	"LessThanThreshold":             "less than",
	"LessThanOrEqualToThreshold":    "less than or equal to",
}

// metricReason writes the state reason and reason data as CloudWatch does.
func metricReason(a cwtypes.MetricAlarm, r Rule, o Outcome, points []Datapoint, stamps []time.Time, from State, now time.Time) (string, string) {
	const layout = "02/01/06 15:04:05"
	var shown, recent []string
	var evaluated []map[string]any
	for i := len(points) - r.EvaluationPeriods; i < len(points); i++ {
		if points[i].Missing {
			continue
		}
		shown = append(shown, fmt.Sprintf("%g (%s)", points[i].Value, stamps[i].UTC().Format(layout)))
		recent = append(recent, fmt.Sprint(points[i].Value))
		evaluated = append(evaluated, map[string]any{"timestamp": stamps[i].UTC().Format("2006-01-02T15:04:05.000+0000"), "value": points[i].Value})
	}
	var reason string
	switch {
	case o.State == InsufficientData:
		reason = fmt.Sprintf("Insufficient Data: %d datapoints were unknown.", r.EvaluationPeriods)
	case len(shown) == 0:
		reason = fmt.Sprintf("Threshold Crossed: no datapoints were received for %d periods and %d missing datapoints were treated as [%s].",
			r.EvaluationPeriods, r.EvaluationPeriods, missingWord(r.TreatMissing))
	default:
		verb := "were"
		if o.State == OK {
			verb = "were not"
		}
		reason = fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints [%s] %s %s the threshold (%g) (minimum %d datapoint for %s -> %s transition).",
			o.Breaching, r.EvaluationPeriods, strings.Join(shown, ", "), verb, comparisonWords[r.Comparison], r.Threshold, r.m(), from, o.State)
	}
	data, _ := json.Marshal(map[string]any{
		"version": "1.0", "queryDate": now.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"startDate": stamps[len(stamps)-r.EvaluationPeriods].UTC().Format("2006-01-02T15:04:05.000+0000"),
		"statistic": string(a.Statistic), "period": aws.ToInt32(a.Period), "recentDatapoints": recent,
		"threshold": r.Threshold, "evaluatedDatapoints": evaluated,
	})
	return reason, string(data)
}

func missingWord(t string) string {
	if t == Breaching {
		return "Breaching"
	}
	return "NonBreaching"
}

func (e *Evaluator) compositeAlarm(ctx context.Context, a cwtypes.CompositeAlarm, states map[string]State, now time.Time) (State, error) {
	name, current := aws.ToString(a.AlarmName), State(a.StateValue)
	rule, err := ParseRule(aws.ToString(a.AlarmRule))
	if err != nil {
		return current, fmt.Errorf("composite alarm %s: %w", name, err)
	}
	s := EvaluateComposite(rule, func(n string) (State, bool) { v, ok := states[n]; return v, ok })
	if s == current {
		return current, nil
	}
	var parts []string
	for _, n := range rule.Alarms() {
		parts = append(parts, fmt.Sprintf("%s is %s", n, states[n]))
	}
	reason := fmt.Sprintf("Rule %s evaluated to %s: %s", aws.ToString(a.AlarmRule), s, strings.Join(parts, ", "))
	data, _ := json.Marshal(map[string]any{"version": "1.0", "triggeringAlarms": parts})
	return s, e.transition(ctx, name, aws.ToString(a.AlarmDescription), aws.ToString(a.AlarmArn), current, s, reason, string(data), now,
		actionsFor(s, a.AlarmActions, a.OKActions, a.InsufficientDataActions, aws.ToBool(a.ActionsEnabled)), nil)
}

func actionsFor(s State, alarm, ok, insufficient []string, enabled bool) []string {
	if !enabled {
		return nil
	}
	return map[State][]string{Alarm: alarm, OK: ok, InsufficientData: insufficient}[s]
}

// trigger is the Trigger of a metric alarm's notification.
func trigger(a cwtypes.MetricAlarm) map[string]any {
	var dims []map[string]string
	for _, d := range a.Dimensions {
		dims = append(dims, map[string]string{"name": aws.ToString(d.Name), "value": aws.ToString(d.Value)})
	}
	t := map[string]any{
		"MetricName": aws.ToString(a.MetricName), "Namespace": aws.ToString(a.Namespace),
		"StatisticType": "Statistic", "Statistic": strings.ToUpper(string(a.Statistic)), "Unit": nil,
		"Dimensions": dims, "Period": aws.ToInt32(a.Period), "EvaluationPeriods": aws.ToInt32(a.EvaluationPeriods),
		"ComparisonOperator": string(a.ComparisonOperator), "Threshold": aws.ToFloat64(a.Threshold),
		"TreatMissingData": aws.ToString(a.TreatMissingData), "EvaluateLowSampleCountPercentile": "",
	}
	if a.DatapointsToAlarm != nil {
		t["DatapointsToAlarm"] = aws.ToInt32(a.DatapointsToAlarm)
	}
	if a.ExtendedStatistic != nil {
		t["StatisticType"], t["Statistic"] = "ExtendedStatistic", aws.ToString(a.ExtendedStatistic)
	}
	return t
}

// transition sets the new state and publishes CloudWatch's notification to
// each action topic.
func (e *Evaluator) transition(ctx context.Context, name, desc, arn string, from, to State, reason, data string, now time.Time, actions []string, trig map[string]any) error {
	if _, err := e.CW.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String(name), StateValue: cwtypes.StateValue(to),
		StateReason: aws.String(reason), StateReasonData: aws.String(data)}); err != nil {
		return fmt.Errorf("alarm %s: set state %s: %w", name, to, err)
	}
	msg := map[string]any{
		"AlarmName": name, "AlarmDescription": desc, "AlarmArn": arn, "Region": e.Region,
		"NewStateValue": string(to), "OldStateValue": string(from), "NewStateReason": reason,
		"StateChangeTime": now.UTC().Format("2006-01-02T15:04:05.000+0000"),
	}
	if parts := strings.Split(arn, ":"); len(parts) > 4 {
		msg["AWSAccountId"] = parts[4]
	}
	if trig != nil {
		msg["Trigger"] = trig
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("alarm %s: notification: %w", name, err)
	}
	subject := fmt.Sprintf("%s: %q in %s", to, name, e.Region)
	if len(subject) > 100 {
		subject = subject[:100]
	}
	for _, topic := range actions {
		if !strings.Contains(topic, ":sns:") {
			continue
		}
		if _, err := e.SNS.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Subject: aws.String(subject), Message: aws.String(string(body))}); err != nil {
			return fmt.Errorf("alarm %s: notify %s: %w", name, topic, err)
		}
	}
	return nil
}
