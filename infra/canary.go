package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/stack"
)

// CanaryName is the health canary's function name suffix.
const CanaryName = canary.FunctionName

// Canary is the scheduled health canary and what belongs to it.
type Canary = ScheduledJob

// newCanary creates the health canary, run every minute: it publishes its
// workflow into the state table's registry, sends a start message to the
// work queue and reads the verifier's watermarks, findings and the canary
// cases' receipts.
func newCanary(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging) Canary {
	c := newScheduledJob(scope, cfg, scheduledSpec{ID: "Canary", Name: CanaryName,
		Role: "KNHK health canary: starts a built-in workflow every minute and checks the previous one's verified completion",
		Rule: "Runs the KNHK health canary", Every: awscdk.Duration_Minutes(jsii.Number(1)), Function: cfg.Canary,
		Env: map[string]*string{
			stack.EnvName(stack.OutStateTable):    tables.State.TableName(),
			stack.EnvName(stack.OutReceiptsTable): tables.Receipts.TableName(),
			stack.EnvName(stack.OutWorkQueueURL):  msg.Work.QueueUrl(),
			canary.EnvFreshness:                   jsii.String(cfg.CanaryFreshness.String()),
			EnvLogLevel:                           jsii.String(cfg.LogLevel),
		}})
	// Registry (publish, claim), probes, watermarks and findings.
	// BatchWriteItem records the probes' verdicts as service-level buckets.
	allow(c.Role, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}, tables.State.TableArn())
	allow(c.Role, []string{"dynamodb:Query"}, tables.Receipts.TableArn())
	allow(c.Role, []string{"sqs:SendMessage"}, msg.Work.QueueArn())
	allow(c.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	suppressXRay(c.Role, "")
	return c
}
