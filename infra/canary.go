package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/stack"
)

// CanaryName is the health canary's function name suffix.
const CanaryName = canary.FunctionName

// Canary is the scheduled health canary and what belongs to it.
type Canary struct {
	Function awslambda.Function
	Role     awsiam.Role
	Logs     awslogs.CfnLogGroup
	Schedule awsevents.Rule
}

// newCanary creates the health canary, run every minute: it publishes its
// workflow into the state table's registry, sends a start message to the
// work queue and reads the verifier's watermarks, findings and the canary
// cases' receipts.
func newCanary(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging) Canary {
	var c Canary
	c.Role = newFunctionRole(scope, "CanaryRole", "KNHK health canary: starts a built-in workflow every minute and checks the previous one's verified completion")
	c.Logs = newLogGroup(scope, "CanaryLogGroup", cfg, FunctionName(cfg, CanaryName))
	c.Function = newFunction(scope, "Canary", cfg, CanaryName, cfg.Canary, c.Role, map[string]*string{
		stack.EnvName(stack.OutStateTable):    tables.State.TableName(),
		stack.EnvName(stack.OutReceiptsTable): tables.Receipts.TableName(),
		stack.EnvName(stack.OutWorkQueueURL):  msg.Work.QueueUrl(),
		canary.EnvFreshness:                   jsii.String(cfg.CanaryFreshness.String()),
		EnvLogLevel:                           jsii.String(cfg.LogLevel),
	})
	c.Function.Node().AddDependency(c.Logs)
	allow(c.Role, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, c.Logs.AttrArn())
	// Registry (publish, claim), probes, watermarks and findings.
	// BatchWriteItem records the probes' verdicts as service-level buckets.
	allow(c.Role, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}, tables.State.TableArn())
	allow(c.Role, []string{"dynamodb:Query"}, tables.Receipts.TableArn())
	allow(c.Role, []string{"sqs:SendMessage"}, msg.Work.QueueArn())
	allow(c.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	suppressXRay(c.Role, "")
	c.Schedule = awsevents.NewRule(scope, jsii.String("CanarySchedule"), &awsevents.RuleProps{
		Description: jsii.String("Runs the KNHK health canary"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
	})
	c.Schedule.AddTarget(awseventstargets.NewLambdaFunction(c.Function, &awseventstargets.LambdaFunctionProps{
		RetryAttempts: jsii.Number(0), // the next minute's run starts the next probe
	}))
	return c
}
