package main

import (
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/tuner"
)

// TunerName is the learning loop's function name suffix.
const TunerName = tuner.FunctionName

// newTuner creates the learning loop, run every minute: it reads the
// service-level buckets and writes its state, lease and overrides in the
// state table, appends to the system chain in the receipts table, reads
// the work queue's depth and reads and updates the executor's work queue
// mapping.
func newTuner(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging, f Functions) ScheduledJob {
	env := map[string]*string{
		stack.EnvName(stack.OutStateTable):    tables.State.TableName(),
		stack.EnvName(stack.OutReceiptsTable): tables.Receipts.TableName(),
		stack.EnvName(stack.OutWorkQueueURL):  msg.Work.QueueUrl(),
		tuner.EnvWorkQueueArn:                 msg.Work.QueueArn(),
		tuner.EnvExecutor:                     f.Executor.FunctionName(),
		tuner.EnvMaxConcurrency:               jsii.String(strconv.Itoa(cfg.ExecutorMaxConcurrency)),
		EnvLogLevel:                           jsii.String(cfg.LogLevel),
	}
	if cfg.TunerGuard != "" {
		env[tuner.EnvGuard] = jsii.String(cfg.TunerGuard)
	}
	j := newScheduledJob(scope, cfg, scheduledSpec{ID: "Tuner", Name: TunerName,
		Role: "KNHK learning loop: tunes the work queue mapping and task overrides within guardrails, records every change",
		Rule: "Runs the KNHK learning loop", Every: awscdk.Duration_Minutes(jsii.Number(1)), Function: cfg.Tuner, Env: env})
	allow(j.Role, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"}, tables.State.TableArn())
	allow(j.Role, []string{"dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"}, tables.Receipts.TableArn())
	allow(j.Role, []string{"sqs:GetQueueAttributes"}, msg.Work.QueueArn())
	allow(j.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	mapping := awscdk.Fn_Sub(jsii.String("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:${Id}"),
		&map[string]*string{"Id": f.WorkMapping.EventSourceMappingId()})
	allow(j.Role, []string{"lambda:UpdateEventSourceMapping"}, mapping)
	// ListEventSourceMappings supports no resource-level permission.
	allow(j.Role, []string{"lambda:ListEventSourceMappings"}, jsii.String("*"))
	suppressXRay(j.Role, ", and for lambda:ListEventSourceMappings, which has no resource-level permission either (updates are allowed on the work queue mapping only)")
	return j
}
