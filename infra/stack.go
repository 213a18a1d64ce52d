package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/stack"
)

// StackID is the id of the stack; the template is cdk.out/KnhkStack.template.json.
const StackID = "KnhkStack"

// Outputs a client may need beyond those named in shared/stack.
const (
	OutDeadLetterQueueArn = "DeadLetterQueueArn"
	OutCheckpointKeyArn   = "CheckpointKeyArn"
	OutCheckpointKeyAlias = "CheckpointKeyAlias"
	OutStateTableArn      = "StateTableArn"
	OutReceiptsTableArn   = "ReceiptsTableArn"

	OutExecutorFunctionName    = "ExecutorFunctionName"
	OutVerifierFunctionName    = "VerifierFunctionName"
	OutCheckpointerFunction    = "CheckpointerFunctionName"
	OutSLAFunction             = "SlaFunctionName"
	OutCostFunction            = "CostFunctionName"
	OutCanaryFunction          = "CanaryFunctionName"
	OutTunerFunction           = "TunerFunctionName"
	OutArchiverFunction        = "ArchiverFunctionName"
	OutVerifierFailureQueueURL = "VerifierFailureQueueUrl"
)

// KnhkStack is the deployed stack and the constructs it is made of.
type KnhkStack struct {
	Stack     awscdk.Stack
	Keys      Keys
	Tables    Tables
	Messaging Messaging
	Functions Functions
	SLA       SLAJob
	SLAAlarms SLAAlarms
	Buckets   Buckets
	Cost      CostJob
	Canary    Canary
	Tuner     ScheduledJob
	// Notifications are the page and ticket topics; Health the canary
	// alarm and "KNHK unhealthy"; Dashboard the operations dashboard.
	Notifications Notifications
	Health        HealthAlarms
	Dashboard     awscloudwatch.Dashboard
	// Alarms are by alarm id; AlarmSpecs says what each watches.
	Alarms     map[string]awscloudwatch.Alarm
	AlarmSpecs []AlarmSpec
}

// NewKnhkStack defines the stack. It is environment-agnostic: synthesis needs
// no credentials and performs no lookups. The AwsSolutions checks of cdk-nag
// run on it and fail synthesis on any unsuppressed finding. Each suppression
// goes on its resource (cdknag.NagSuppressions_AddResourceSuppressions) with
// a specific reason; stack_test.go lists them.
func NewKnhkStack(scope constructs.Construct, id string, cfg stackconfig.Config) *KnhkStack {
	st := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Description: jsii.String("KNHK: receipt chains, workflow state, work queues, executor and verifier functions, alarms and keys (env=" + string(cfg.Env) + ")"),
	})
	awscdk.Tags_Of(st).Add(jsii.String("app"), jsii.String("knhk"), nil)
	awscdk.Tags_Of(st).Add(jsii.String("env"), jsii.String(string(cfg.Env)), nil)

	s := &KnhkStack{Stack: st}
	s.Keys = NewKeys(st, cfg)
	s.Tables = NewTables(st, cfg, s.Keys.Data)
	s.Messaging = NewMessaging(st, cfg, s.Keys.Data)
	s.Buckets = NewBuckets(st, cfg, s.Keys)
	s.Functions = NewFunctions(st, cfg, s.Keys, s.Tables, s.Messaging, s.Buckets)
	s.SLA = newSLAJob(st, cfg, s.Keys, s.Tables)
	s.Cost = newCostJob(st, cfg, s.Keys, s.Tables, s.Messaging, s.Buckets)
	s.Canary = newCanary(st, cfg, s.Keys, s.Tables, s.Messaging)
	s.Tuner = newTuner(st, cfg, s.Keys, s.Tables, s.Messaging, s.Functions)
	RestrictSenders(s.Messaging.Work, cfg, s.Functions.Executor.Role(), s.Canary.Role)
	s.AlarmSpecs = AlarmSpecs(s.Functions, s.Messaging)
	s.Alarms = NewAlarms(st, cfg, s.AlarmSpecs, s.Messaging)
	s.Notifications = newNotifications(st, cfg, s.Keys.Data)
	s.SLAAlarms = newSLAAlarms(st, cfg, s.Notifications)
	s.Health = newHealthAlarms(st, cfg, s.Notifications, s.SLAAlarms)
	s.Dashboard = newDashboard(st, cfg, s)

	out := func(id string, v *string, desc string) {
		awscdk.NewCfnOutput(st, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
	}
	out(stack.OutReceiptsTable, s.Tables.Receipts.TableName(), "receipts table name")
	out(OutReceiptsTableArn, s.Tables.Receipts.TableArn(), "receipts table ARN")
	out(stack.OutReceiptsStreamArn, s.Tables.Receipts.TableStreamArn(), "receipts table stream ARN")
	out(stack.OutStateTable, s.Tables.State.TableName(), "state table name")
	out(OutStateTableArn, s.Tables.State.TableArn(), "state table ARN")
	out(stack.OutWorkQueueURL, s.Messaging.Work.QueueUrl(), "work queue URL")
	out(stack.OutWorkQueueArn, s.Messaging.Work.QueueArn(), "work queue ARN")
	out(stack.OutDeadLetterURL, s.Messaging.DeadLetter.QueueUrl(), "dead-letter queue URL")
	out(OutDeadLetterQueueArn, s.Messaging.DeadLetter.QueueArn(), "dead-letter queue ARN")
	out(stack.OutAlertsTopicArn, s.Messaging.Alerts.TopicArn(), "alerts topic ARN")
	out(stack.OutCheckpointKeyID, s.Keys.Checkpoint.KeyId(), "checkpoint signing key id")
	out(OutCheckpointKeyArn, s.Keys.Checkpoint.KeyArn(), "checkpoint signing key ARN")
	out(OutCheckpointKeyAlias, jsii.String(cfg.CheckpointKeyAlias), "checkpoint signing key alias")
	out(stack.OutDataKeyArn, s.Keys.Data.KeyArn(), "data key ARN")
	out(OutExecutorFunctionName, s.Functions.Executor.FunctionName(), "executor function name")
	out(OutVerifierFunctionName, s.Functions.Verifier.FunctionName(), "verifier function name")
	out(OutCheckpointerFunction, s.Functions.Checkpointer.FunctionName(), "checkpointer function name")
	out(stack.OutCheckpointsTable, s.Tables.Checkpoints.TableName(), "checkpoints table name (written only by the checkpointer)")
	out(OutSLAFunction, s.SLA.Function.FunctionName(), "SLA job function name")
	out(OutCostFunction, s.Cost.Function.FunctionName(), "cost job function name")
	out(stack.OutChargebackBucket, s.Buckets.Chargeback.BucketName(), "chargeback exports bucket name")
	out(stack.OutArchiveBucket, s.Buckets.Archive.BucketName(), "archive bucket (Object Lock; written only by the archiver)")
	out(OutArchiverFunction, s.Functions.Archiver.Function.FunctionName(), "archiver function name")
	out(stack.OutPayloadBucket, s.Buckets.Payloads.BucketName(), "bucket of inputs sent by reference (inputs/<sha256>) and detached payloads (blobs/<sha256>)")
	out(OutCanaryFunction, s.Canary.Function.FunctionName(), "health canary function name")
	out(OutTunerFunction, s.Tuner.Function.FunctionName(), "learning loop function name")
	out(OutPageTopicArn, s.Notifications.Page.TopicArn(), "page topic ARN (alarms that wake someone)")
	out(OutTicketTopicArn, s.Notifications.Ticket.TopicArn(), "ticket topic ARN (alarms for office hours)")
	out(OutVerifierFailureQueueURL, s.Functions.VerifierFailures.QueueUrl(), "verifier failures queue URL")
	for _, spec := range s.AlarmSpecs {
		out(spec.OutputID, s.Alarms[spec.ID].AlarmName(), "alarm "+spec.ID+" (runbook "+RunbookPath(spec.ID)+")")
	}

	awscdk.Aspects_Of(st).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return s
}
