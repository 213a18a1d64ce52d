package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
)

// SLAName is the SLA job's function name suffix.
const SLAName = slajob.FunctionName

// SLAJob is the scheduled SLA job and what belongs to it.
type SLAJob struct {
	Function awslambda.Function
	Role     awsiam.Role
	Logs     awslogs.CfnLogGroup
	Schedule awsevents.Rule
}

// newSLAJob creates the SLA job, run every minute: it reads the verifier's
// service-level buckets and writes the SLA reports and its lease, all in the
// state table.
func newSLAJob(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables) SLAJob {
	var j SLAJob
	j.Role = newFunctionRole(scope, "SlaRole", "KNHK SLA job: service levels, error budgets and burn rates from verified receipts")
	j.Logs = newLogGroup(scope, "SlaLogGroup", cfg, FunctionName(cfg, SLAName))
	env := map[string]*string{
		stack.EnvName(stack.OutStateTable): tables.State.TableName(),
		slajob.EnvWindowDivisor:            jsii.String(fmt.Sprint(cfg.SLAWindowDivisor)),
		slajob.EnvMinEvents:                jsii.String(fmt.Sprint(cfg.SLAMinEvents)),
		EnvLogLevel:                        jsii.String(cfg.LogLevel),
	}
	if cfg.SLAObjectives != "" {
		env[slajob.EnvObjectives] = jsii.String(cfg.SLAObjectives)
	}
	j.Function = newFunction(scope, "Sla", cfg, SLAName, cfg.SLA, j.Role, env)
	j.Function.Node().AddDependency(j.Logs)
	allow(j.Role, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, j.Logs.AttrArn())
	allow(j.Role, []string{"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}, tables.State.TableArn())
	allow(j.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	suppressXRay(j.Role, "")
	j.Schedule = awsevents.NewRule(scope, jsii.String("SlaSchedule"), &awsevents.RuleProps{
		Description: jsii.String("Runs the KNHK SLA job"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
	})
	j.Schedule.AddTarget(awseventstargets.NewLambdaFunction(j.Function, &awseventstargets.LambdaFunctionProps{
		RetryAttempts: jsii.Number(0), // the next minute's run recomputes everything
	}))
	return j
}
