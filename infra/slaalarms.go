package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/telemetry"
)

// AlarmSLALatencyBreach is the platform's latency objective alarm.
const AlarmSLALatencyBreach = "sla-latency-breach"

// SLABurnAlarmID is the id (and runbook name) of a burn-rate rule's
// composite alarm.
func SLABurnAlarmID(r sla.Rule) string { return "sla-burn-" + r.Name }

// SLAAlarms are the service-level alarms: per Workbook rule a metric alarm
// on the long and on the short window's burn rate (no actions of their own)
// and the composite that fires when both do; and the latency breach.
type SLAAlarms struct {
	Windows    map[string]awscloudwatch.Alarm          // by <rule>-long|short, then -<workflow> for a workflow's
	Composites map[string]awscloudwatch.CompositeAlarm // the platform's, by SLABurnAlarmID
	// Workflows are the burn-rate composites of the workflows with an
	// objective of their own, by workflow and SLABurnAlarmID.
	Workflows map[string]map[string]awscloudwatch.CompositeAlarm
	Latency   awscloudwatch.Alarm
}

// SLAAlarmIDs lists the ids of the service-level alarms that notify.
func SLAAlarmIDs() []string {
	ids := []string{AlarmSLALatencyBreach}
	for _, r := range sla.WorkbookRules() {
		ids = append(ids, SLABurnAlarmID(r))
	}
	return ids
}

// camel turns page-1h-long into Page1hLong, for construct ids.
func camel(s string) string {
	var b strings.Builder
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '/' }) {
		b.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	return b.String()
}

func slaMetric(name string, dims map[string]*string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(telemetry.Namespace), MetricName: jsii.String(name), Statistic: jsii.String("Maximum"),
		DimensionsMap: &dims, Period: awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// newSLAAlarms creates the service-level alarms on the platform's (Overall)
// metrics of the SLA job, and the burn-rate alarms of every workflow with
// an objective of its own in slaObjectives: each burn-rate composite
// notifies the topic of its rule's severity, the latency breach the ticket
// topic.
func newSLAAlarms(scope constructs.Construct, cfg stackconfig.Config, n Notifications) SLAAlarms {
	out := SLAAlarms{Windows: map[string]awscloudwatch.Alarm{}, Composites: map[string]awscloudwatch.CompositeAlarm{},
		Workflows: map[string]map[string]awscloudwatch.CompositeAlarm{}}
	out.Composites = burnAlarms(scope, cfg, n, slajob.Overall, out.Windows)
	for _, wf := range objectiveWorkflows(cfg) {
		out.Workflows[wf] = burnAlarms(scope, cfg, n, wf, out.Windows)
	}
	out.Latency = awscloudwatch.NewAlarm(scope, jsii.String("SlaLatencyBreachAlarm"), &awscloudwatch.AlarmProps{
		AlarmName:          jsii.String(cfg.NamePrefix + "-" + AlarmSLALatencyBreach),
		AlarmDescription:   jsii.String("The platform's p50 or p99 case latency over the objective's window exceeds the objective for 5 minutes." + runbookLink(cfg, AlarmSLALatencyBreach)),
		Metric:             slaMetric(telemetry.SLALatencyBreach, map[string]*string{telemetry.DimWorkflow: jsii.String(slajob.Overall)}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(5),
		DatapointsToAlarm:  jsii.Number(5),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	ticket := awscloudwatchactions.NewSnsAction(n.Ticket)
	out.Latency.AddAlarmAction(ticket)
	out.Latency.AddOkAction(ticket)
	return out
}

// objectiveWorkflows lists, sorted, the workflows slaObjectives gives an
// objective of their own (the context was validated when it was read).
func objectiveWorkflows(cfg stackconfig.Config) []string {
	if cfg.SLAObjectives == "" {
		return nil
	}
	_, objs, err := slajob.ParseObjectives(cfg.SLAObjectives)
	if err != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(objs))
}

// burnAlarms creates, for the level wf (slajob.Overall or a workflow), per
// Workbook rule a metric alarm on the long and on the short window's burn
// rate (no actions of their own) and the composite that fires when both do,
// notifying the topic of the rule's severity. The platform's alarms keep
// their names; a workflow's end in -<workflow>.
func burnAlarms(scope constructs.Construct, cfg stackconfig.Config, n Notifications, wf string, windows map[string]awscloudwatch.Alarm) map[string]awscloudwatch.CompositeAlarm {
	suffix, idSuffix, who := "", "", "the platform's"
	if wf != slajob.Overall {
		suffix, idSuffix, who = "-"+wf, "Wf"+camel(wf), "workflow "+wf+"'s"
	}
	out := map[string]awscloudwatch.CompositeAlarm{}
	for _, r := range sla.WorkbookRules() {
		id := SLABurnAlarmID(r)
		var parts []awscloudwatch.IAlarm
		for _, long := range []bool{true, false} {
			w := slajob.WindowLabel(r, long)
			a := awscloudwatch.NewAlarm(scope, jsii.String("SlaBurn"+camel(w)+idSuffix), &awscloudwatch.AlarmProps{
				AlarmName: jsii.String(cfg.NamePrefix + "-sla-burn-" + w + suffix),
				AlarmDescription: jsii.String(fmt.Sprintf("%s error budget burns at %gx or more over the %s window of rule %s (one input of %s-%s%s)."+runbookLink(cfg, id),
					upperFirst(who), r.Factor, map[bool]string{true: "long", false: "short"}[long], r.Name, cfg.NamePrefix, id, suffix)),
				Metric:             slaMetric(telemetry.SLABurnRate, map[string]*string{telemetry.DimWorkflow: jsii.String(wf), telemetry.DimWindow: jsii.String(w)}),
				Threshold:          jsii.Number(r.Factor),
				ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
				EvaluationPeriods:  jsii.Number(1),
				DatapointsToAlarm:  jsii.Number(1),
				TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			})
			windows[w+suffix] = a
			parts = append(parts, a)
		}
		c := awscloudwatch.NewCompositeAlarm(scope, jsii.String("SlaBurn"+camel(r.Name)+idSuffix),
			&awscloudwatch.CompositeAlarmProps{
				CompositeAlarmName: jsii.String(cfg.NamePrefix + "-" + id + suffix),
				AlarmDescription: jsii.String(fmt.Sprintf("%s: %s error budget burns at %gx or more over both %v and %v (SRE Workbook multi-window rule %s)."+runbookLink(cfg, id),
					strings.ToUpper(string(r.Severity)), who, r.Factor, r.Long, r.Short, r.Name)),
				AlarmRule: awscloudwatch.AlarmRule_AllOf(awscloudwatch.AlarmRule_FromAlarm(parts[0], awscloudwatch.AlarmState_ALARM),
					awscloudwatch.AlarmRule_FromAlarm(parts[1], awscloudwatch.AlarmState_ALARM)),
			})
		action := awscloudwatchactions.NewSnsAction(n.Topic(r.Severity))
		c.AddAlarmAction(action)
		c.AddOkAction(action)
		out[id] = c
	}
	return out
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
