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
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/stack"
)

// CostName is the cost job's function name suffix.
const CostName = costjob.FunctionName

// CostJob is the scheduled cost job and what belongs to it.
type CostJob struct {
	Function awslambda.Function
	Role     awsiam.Role
	Logs     awslogs.CfnLogGroup
	Schedule awsevents.Rule
}

// newCostJob creates the cost job, run every CostEveryHours with the
// budgets of context costConfig: it reads the
// receipts (a Scan), the registry, its lease and budget claims in the state
// table and the work queue's AWS/SQS metrics (the mapping's polling, priced
// as shared and idle cost), writes its lease and claims, publishes budget
// alerts and writes the month's exports to the chargeback bucket, and
// nowhere else.
func newCostJob(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging, buckets Buckets) CostJob {
	var j CostJob
	j.Role = newFunctionRole(scope, "CostRole", "KNHK cost job: prices the month's cases and writes the chargeback exports")
	j.Logs = newLogGroup(scope, "CostLogGroup", cfg, FunctionName(cfg, CostName))
	env := map[string]*string{
		stack.EnvName(stack.OutReceiptsTable):    tables.Receipts.TableName(),
		stack.EnvName(stack.OutStateTable):       tables.State.TableName(),
		stack.EnvName(stack.OutAlertsTopicArn):   msg.Alerts.TopicArn(),
		stack.EnvName(stack.OutChargebackBucket): buckets.Chargeback.BucketName(),
		costjob.EnvPolledQueues:                  msg.Work.QueueName(),
		EnvLogLevel:                              jsii.String(cfg.LogLevel),
	}
	if cfg.CostConfig != "" {
		env[costjob.EnvConfig] = jsii.String(cfg.CostConfig)
	}
	j.Function = newFunction(scope, "Cost", cfg, CostName, cfg.Cost, j.Role, env)
	j.Function.Node().AddDependency(j.Logs)
	allow(j.Role, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, j.Logs.AttrArn())
	allow(j.Role, []string{"dynamodb:Scan"}, tables.Receipts.TableArn())
	allow(j.Role, []string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}, tables.State.TableArn())
	allow(j.Role, []string{"sns:Publish"}, msg.Alerts.TopicArn())
	allow(j.Role, []string{"s3:PutObject"}, buckets.Chargeback.ArnForObjects(jsii.String("chargeback/*")))
	allow(j.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	// GetMetricStatistics supports no resource-level permission.
	allow(j.Role, []string{"cloudwatch:GetMetricStatistics"}, jsii.String("*"))
	suppressXRay(j.Role, ", and for cloudwatch:GetMetricStatistics, which has no resource-level permission either (the job reads the work queue's AWS/SQS metrics; it can write no metric)")
	suppressObjectPrefix(j.Role, "ChargebackBucket", "chargeback", "s3:PutObject on the objects under chargeback/ of the chargeback bucket only: the exports' keys are per month and grouping, chargeback/<YYYY-MM>/by-<key>.{csv,json}.")
	j.Schedule = awsevents.NewRule(scope, jsii.String("CostSchedule"), &awsevents.RuleProps{
		Description: jsii.String("Runs the KNHK cost job"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Hours(jsii.Number(float64(cfg.CostEveryHours)))),
	})
	j.Schedule.AddTarget(awseventstargets.NewLambdaFunction(j.Function, &awseventstargets.LambdaFunctionProps{
		RetryAttempts: jsii.Number(0), // the next run rewrites the month's exports
	}))
	return j
}
