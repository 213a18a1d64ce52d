package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/telemetry"
)

// AlarmSpec is one alarm: its id (also the runbook's file name,
// docs/runbooks/<ID>.md), what it watches and when it fires.
type AlarmSpec struct {
	// ID names the alarm (<prefix>-<ID>) and its runbook.
	ID string
	// ConstructID is the alarm's construct id; OutputID the id of the
	// output carrying the alarm's name.
	ConstructID, OutputID string
	// Summary opens the alarm description.
	Summary string
	Metric  MetricSpec
	// Threshold is compared with >=.
	Threshold float64
	// PeriodSecs, EvaluationPeriods and DatapointsToAlarm: the alarm fires
	// when DatapointsToAlarm of the last EvaluationPeriods periods breach.
	PeriodSecs, EvaluationPeriods, DatapointsToAlarm int
	// TreatMissingData is what a period without data counts as.
	TreatMissingData awscloudwatch.TreatMissingData
}

// MetricSpec names a CloudWatch metric and its statistic.
type MetricSpec struct {
	Namespace, Name, Statistic string
	// Dimensions are resolved at synthesis (function names, queue names).
	Dimensions map[string]*string
}

// Alarm ids; each has docs/runbooks/<id>.md.
const (
	AlarmExecutorErrors          = "executor-errors"
	AlarmExecutorThrottles       = "executor-throttles"
	AlarmExecutorPermanentErrors = "executor-permanent-errors"
	AlarmDeadLetterDepth         = "dead-letter-queue-depth"
	AlarmVerifierIteratorAge     = "verifier-iterator-age"
	AlarmVerifierFailuresDepth   = "verifier-failures-depth"
	AlarmIntegrityFindings       = "integrity-findings"
	AlarmCheckpointRefused       = "checkpoint-heads-refused"
	AlarmCheckpointerErrors      = "checkpointer-errors"
	AlarmArchiveRefused          = "archive-refused"
	AlarmArchiverErrors          = "archiver-errors"
)

// IteratorAgeThresholdMs is the verifier's stream lag that alarms: a minute
// behind for three consecutive minutes means the verifier is not keeping
// up, not a momentary burst.
const IteratorAgeThresholdMs = 60_000

// AlarmSpecs lists the stack's alarms. Metrics in the KNHK namespace are the
// functions' EMF metrics and carry exactly one dimension, Function, set to the
// function's short name.
func AlarmSpecs(f Functions, msg Messaging) []AlarmSpec {
	fnDim := func(fn *string) map[string]*string { return map[string]*string{"FunctionName": fn} }
	queueDim := func(q *string) map[string]*string { return map[string]*string{"QueueName": q} }
	knhkDim := func(short string) map[string]*string {
		return map[string]*string{telemetry.DimFunction: jsii.String(short)}
	}
	nb := awscloudwatch.TreatMissingData_NOT_BREACHING
	return []AlarmSpec{
		{ID: AlarmExecutorErrors, ConstructID: "ExecutorErrorsAlarm", OutputID: "ExecutorErrorsAlarmName",
			Summary:   "The executor returned an error or timed out in the last 5 minutes.",
			Metric:    MetricSpec{Namespace: "AWS/Lambda", Name: "Errors", Statistic: "Sum", Dimensions: fnDim(f.Executor.FunctionName())},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmExecutorThrottles, ConstructID: "ExecutorThrottlesAlarm", OutputID: "ExecutorThrottlesAlarmName",
			Summary:   "Executor invocations were throttled in the last 5 minutes.",
			Metric:    MetricSpec{Namespace: "AWS/Lambda", Name: "Throttles", Statistic: "Sum", Dimensions: fnDim(f.Executor.FunctionName())},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmExecutorPermanentErrors, ConstructID: "ExecutorPermanentErrorsAlarm", OutputID: "ExecutorPermanentErrorsAlarmName",
			Summary:   "The executor dropped work messages as not retryable in the last 5 minutes.",
			Metric:    MetricSpec{Namespace: telemetry.Namespace, Name: telemetry.PermanentErrors, Statistic: "Sum", Dimensions: knhkDim(ExecutorName)},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmDeadLetterDepth, ConstructID: "DeadLetterQueueDepthAlarm", OutputID: "DeadLetterQueueDepthAlarmName",
			Summary:   "Work messages are waiting in the dead-letter queue.",
			Metric:    MetricSpec{Namespace: "AWS/SQS", Name: "ApproximateNumberOfMessagesVisible", Statistic: "Maximum", Dimensions: queueDim(msg.DeadLetter.QueueName())},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmVerifierIteratorAge, ConstructID: "VerifierIteratorAgeAlarm", OutputID: "VerifierIteratorAgeAlarmName",
			Summary:   "The verifier has been a minute or more behind the receipts stream for 3 minutes.",
			Metric:    MetricSpec{Namespace: "AWS/Lambda", Name: "IteratorAge", Statistic: "Maximum", Dimensions: fnDim(f.Verifier.FunctionName())},
			Threshold: IteratorAgeThresholdMs, PeriodSecs: 60, EvaluationPeriods: 3, DatapointsToAlarm: 3, TreatMissingData: nb},
		{ID: AlarmVerifierFailuresDepth, ConstructID: "VerifierFailuresDepthAlarm", OutputID: "VerifierFailuresDepthAlarmName",
			Summary:   "Receipts stream batches the verifier could not process are waiting in the verifier failures queue: those receipts are unverified.",
			Metric:    MetricSpec{Namespace: "AWS/SQS", Name: "ApproximateNumberOfMessagesVisible", Statistic: "Maximum", Dimensions: queueDim(f.VerifierFailures.QueueName())},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmIntegrityFindings, ConstructID: "IntegrityFindingsAlarm", OutputID: "IntegrityFindingsAlarmName",
			Summary:   "The verifier found a receipt chain that was changed, broken or deleted.",
			Metric:    MetricSpec{Namespace: telemetry.Namespace, Name: telemetry.IntegrityFindings, Statistic: "Sum", Dimensions: knhkDim(VerifierName)},
			Threshold: 1, PeriodSecs: 60, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmCheckpointRefused, ConstructID: "CheckpointHeadsRefusedAlarm", OutputID: "CheckpointHeadsRefusedAlarmName",
			Summary:   "The checkpointer refused to sign a chain head: the chain no longer extends the signed or verified one.",
			Metric:    MetricSpec{Namespace: telemetry.Namespace, Name: telemetry.CheckpointHeadsRefused, Statistic: "Sum", Dimensions: knhkDim(CheckpointerName)},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmCheckpointerErrors, ConstructID: "CheckpointerErrorsAlarm", OutputID: "CheckpointerErrorsAlarmName",
			Summary:   "A checkpointer run failed (an AWS error, or a stored checkpoint log that does not verify): nothing was signed.",
			Metric:    MetricSpec{Namespace: "AWS/Lambda", Name: "Errors", Statistic: "Sum", Dimensions: fnDim(f.Checkpointer.FunctionName())},
			Threshold: 1, PeriodSecs: 300, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmArchiveRefused, ConstructID: "ArchivesRefusedAlarm", OutputID: "ArchivesRefusedAlarmName",
			Summary:   "The archiver refused to archive an ended case: its stored chain or the archive object read back did not verify; its receipts do not expire.",
			Metric:    MetricSpec{Namespace: telemetry.Namespace, Name: telemetry.ArchivesRefused, Statistic: "Sum", Dimensions: knhkDim(ArchiverName)},
			Threshold: 1, PeriodSecs: 900, EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: nb},
		{ID: AlarmArchiverErrors, ConstructID: "ArchiverErrorsAlarm", OutputID: "ArchiverErrorsAlarmName",
			Summary:   "Archiver runs failed (an AWS error, or a checkpoint log that does not verify) in 2 of the last 3 periods: ended cases are not being archived.",
			Metric:    MetricSpec{Namespace: "AWS/Lambda", Name: "Errors", Statistic: "Sum", Dimensions: fnDim(f.Archiver.Function.FunctionName())},
			Threshold: 1, PeriodSecs: 900, EvaluationPeriods: 3, DatapointsToAlarm: 2, TreatMissingData: nb},
	}
}

// RunbookPath is the repository path of an alarm's runbook.
func RunbookPath(alarmID string) string { return "docs/runbooks/" + alarmID + ".md" }

// NewAlarms creates the alarms, each notifying the alerts topic when it
// fires and when it recovers, and lets CloudWatch publish to the topic.
func NewAlarms(scope constructs.Construct, cfg stackconfig.Config, specs []AlarmSpec, msg Messaging) map[string]awscloudwatch.Alarm {
	msg.Alerts.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{msg.Alerts.TopicArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()}},
	}))
	action := awscloudwatchactions.NewSnsAction(msg.Alerts)
	out := make(map[string]awscloudwatch.Alarm, len(specs))
	for _, s := range specs {
		a := awscloudwatch.NewAlarm(scope, jsii.String(s.ConstructID), &awscloudwatch.AlarmProps{
			AlarmName:        jsii.String(cfg.NamePrefix + "-" + s.ID),
			AlarmDescription: jsii.String(s.Summary + runbookLink(cfg, s.ID)),
			Metric: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace:     jsii.String(s.Metric.Namespace),
				MetricName:    jsii.String(s.Metric.Name),
				Statistic:     jsii.String(s.Metric.Statistic),
				DimensionsMap: &s.Metric.Dimensions,
				Period:        awscdk.Duration_Seconds(jsii.Number(float64(s.PeriodSecs))),
			}),
			Threshold:          jsii.Number(s.Threshold),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			EvaluationPeriods:  jsii.Number(float64(s.EvaluationPeriods)),
			DatapointsToAlarm:  jsii.Number(float64(s.DatapointsToAlarm)),
			TreatMissingData:   s.TreatMissingData,
		})
		a.AddAlarmAction(action)
		a.AddOkAction(action)
		out[s.ID] = a
	}
	return out
}

// runbookLink is the sentence that ends every alarm description: the link
// to the alarm's runbook.
func runbookLink(cfg stackconfig.Config, id string) string {
	return " Runbook: " + cfg.RunbookBaseURL + id + ".md"
}
