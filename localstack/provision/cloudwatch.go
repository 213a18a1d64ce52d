package provision

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

func init() {
	register("AWS::CloudWatch::Alarm", metricAlarm{})
	register("AWS::CloudWatch::CompositeAlarm", compositeAlarm{})
}

// alarmProps are the properties of both alarm types.
type alarmProps struct {
	AlarmName               string   `json:"AlarmName"`
	AlarmDescription        string   `json:"AlarmDescription"`
	AlarmActions            []string `json:"AlarmActions"`
	OKActions               []string `json:"OKActions"`
	InsufficientDataActions []string `json:"InsufficientDataActions"`
	ActionsEnabled          flexBool `json:"ActionsEnabled"`
	// Metric alarm.
	Namespace          string      `json:"Namespace"`
	MetricName         string      `json:"MetricName"`
	Statistic          string      `json:"Statistic"`
	ExtendedStatistic  string      `json:"ExtendedStatistic"`
	Unit               string      `json:"Unit"`
	Dimensions         []dimension `json:"Dimensions"`
	Period             flexInt     `json:"Period"`
	EvaluationPeriods  flexInt     `json:"EvaluationPeriods"`
	DatapointsToAlarm  flexInt     `json:"DatapointsToAlarm"`
	Threshold          any         `json:"Threshold"`
	ComparisonOperator string      `json:"ComparisonOperator"`
	TreatMissingData   string      `json:"TreatMissingData"`
	// Composite alarm.
	AlarmRule string `json:"AlarmRule"`
}

type dimension struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

func (p alarmProps) actionsEnabled() *bool {
	if !p.ActionsEnabled.set {
		return aws.Bool(true)
	}
	return aws.Bool(p.ActionsEnabled.v)
}

func optInt32(f flexInt) *int32 {
	if !f.set {
		return nil
	}
	return aws.Int32(int32(f.n))
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// alarmPhysical is the alarm as the template sees it (Ref is
// the alarm name).
func (e *env) alarmPhysical(name string) physical {
	arn := fmt.Sprintf("arn:%s:cloudwatch:%s:%s:alarm:%s", e.partition, e.region, e.account, name)
	return physical{ref: name, attrs: map[string]any{"Arn": arn}}
}

// alarmName is the template's name or a generated one (CloudWatch allows
// 255 characters).
func (e *env) alarmName(id string, p alarmProps) string {
	if p.AlarmName != "" {
		return p.AlarmName
	}
	return e.physicalName(id, 255)
}

// findAlarms describes the deployed alarm of that name, of either type.
func (e *env) findAlarms(ctx context.Context, name string) (*cloudwatch.DescribeAlarmsOutput, error) {
	out, err := e.cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{name},
		AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}})
	if err != nil {
		return nil, fmt.Errorf("find alarm %s: %w", name, err)
	}
	return out, nil
}

type metricAlarm struct{}

func (metricAlarm) honours() []string {
	return []string{"AlarmName", "AlarmDescription", "AlarmActions", "OKActions", "InsufficientDataActions",
		"ActionsEnabled", "Namespace", "MetricName", "Statistic", "ExtendedStatistic", "Unit", "Dimensions",
		"Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData"}
}

func (metricAlarm) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p alarmProps
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	name := e.alarmName(id, p)
	threshold, err := scalarString(p.Threshold)
	if err != nil {
		return physical{}, "", fmt.Errorf("alarm %s Threshold: %w", name, err)
	}
	th, err := strconv.ParseFloat(threshold, 64)
	if err != nil {
		return physical{}, "", fmt.Errorf("alarm %s Threshold: %w", name, err)
	}
	in := &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String(name), AlarmDescription: optString(p.AlarmDescription),
		AlarmActions: p.AlarmActions, OKActions: p.OKActions, InsufficientDataActions: p.InsufficientDataActions,
		ActionsEnabled: p.actionsEnabled(),
		Namespace:      optString(p.Namespace), MetricName: optString(p.MetricName),
		ExtendedStatistic: optString(p.ExtendedStatistic),
		Period:            optInt32(p.Period), EvaluationPeriods: optInt32(p.EvaluationPeriods),
		DatapointsToAlarm: optInt32(p.DatapointsToAlarm), Threshold: aws.Float64(th),
		ComparisonOperator: cwtypes.ComparisonOperator(p.ComparisonOperator),
		TreatMissingData:   optString(p.TreatMissingData),
	}
	if p.Statistic != "" {
		in.Statistic = cwtypes.Statistic(p.Statistic)
	}
	if p.Unit != "" {
		in.Unit = cwtypes.StandardUnit(p.Unit)
	}
	for _, d := range p.Dimensions {
		in.Dimensions = append(in.Dimensions, cwtypes.Dimension{Name: aws.String(d.Name), Value: aws.String(d.Value)})
	}
	have, err := e.findAlarms(ctx, name)
	if err != nil {
		return physical{}, "", err
	}
	action := Created
	if len(have.MetricAlarms) == 1 {
		if sameMetricAlarm(have.MetricAlarms[0], in) {
			return e.alarmPhysical(name), Kept, nil
		}
		action = Updated
	}
	if _, err := e.cw.PutMetricAlarm(ctx, in); err != nil {
		return physical{}, "", fmt.Errorf("put alarm %s: %w", name, err)
	}
	return e.alarmPhysical(name), action, nil
}

// sameMetricAlarm reports whether the deployed alarm already has the
// configuration in: a redeploy then keeps its state and history.
func sameMetricAlarm(a cwtypes.MetricAlarm, in *cloudwatch.PutMetricAlarmInput) bool {
	dims := func(ds []cwtypes.Dimension) []string {
		var out []string
		for _, d := range ds {
			out = append(out, aws.ToString(d.Name)+"="+aws.ToString(d.Value))
		}
		slices.Sort(out)
		return out
	}
	return aws.ToString(a.AlarmDescription) == aws.ToString(in.AlarmDescription) &&
		aws.ToString(a.Namespace) == aws.ToString(in.Namespace) && aws.ToString(a.MetricName) == aws.ToString(in.MetricName) &&
		a.Statistic == in.Statistic && aws.ToString(a.ExtendedStatistic) == aws.ToString(in.ExtendedStatistic) &&
		aws.ToInt32(a.Period) == aws.ToInt32(in.Period) && aws.ToInt32(a.EvaluationPeriods) == aws.ToInt32(in.EvaluationPeriods) &&
		aws.ToInt32(a.DatapointsToAlarm) == aws.ToInt32(in.DatapointsToAlarm) &&
		aws.ToFloat64(a.Threshold) == aws.ToFloat64(in.Threshold) && a.ComparisonOperator == in.ComparisonOperator &&
		aws.ToString(a.TreatMissingData) == aws.ToString(in.TreatMissingData) &&
		slices.Equal(a.AlarmActions, in.AlarmActions) && slices.Equal(a.OKActions, in.OKActions) &&
		slices.Equal(a.InsufficientDataActions, in.InsufficientDataActions) &&
		slices.Equal(dims(a.Dimensions), dims(in.Dimensions))
}

type compositeAlarm struct{}

func (compositeAlarm) honours() []string {
	return []string{"AlarmName", "AlarmDescription", "AlarmActions", "OKActions", "InsufficientDataActions",
		"ActionsEnabled", "AlarmRule"}
}

func (compositeAlarm) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p alarmProps
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	name := e.alarmName(id, p)
	if p.AlarmRule == "" {
		return physical{}, "", fmt.Errorf("composite alarm %s has no AlarmRule", name)
	}
	have, err := e.findAlarms(ctx, name)
	if err != nil {
		return physical{}, "", err
	}
	action := Created
	if len(have.CompositeAlarms) == 1 {
		a := have.CompositeAlarms[0]
		if aws.ToString(a.AlarmRule) == p.AlarmRule && aws.ToString(a.AlarmDescription) == p.AlarmDescription &&
			slices.Equal(a.AlarmActions, p.AlarmActions) && slices.Equal(a.OKActions, p.OKActions) &&
			slices.Equal(a.InsufficientDataActions, p.InsufficientDataActions) {
			return e.alarmPhysical(name), Kept, nil
		}
		action = Updated
	}
	if _, err := e.cw.PutCompositeAlarm(ctx, &cloudwatch.PutCompositeAlarmInput{
		AlarmName: aws.String(name), AlarmRule: aws.String(p.AlarmRule), AlarmDescription: optString(p.AlarmDescription),
		AlarmActions: p.AlarmActions, OKActions: p.OKActions, InsufficientDataActions: p.InsufficientDataActions,
		ActionsEnabled: p.actionsEnabled(),
	}); err != nil {
		return physical{}, "", fmt.Errorf("put composite alarm %s: %w", name, err)
	}
	return e.alarmPhysical(name), action, nil
}
