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
)

// ScheduledJob is a function that a schedule runs, with its own role and
// log group.
type ScheduledJob struct {
	Function awslambda.Function
	Role     awsiam.Role
	Logs     awslogs.CfnLogGroup
	Schedule awsevents.Rule
}

// scheduledSpec says what a scheduled job is.
type scheduledSpec struct {
	ID       string // logical id prefix: <ID>, <ID>Role, <ID>LogGroup, <ID>Schedule
	Name     string // function name suffix
	Role     string // the role's description
	Rule     string // the schedule's description
	Every    awscdk.Duration
	Function stackconfig.FunctionConfig
	Env      map[string]*string
}

// newScheduledJob creates the job's role (allowed its log group), log
// group, function and schedule; a missed run is not retried, as the next
// one recomputes.
func newScheduledJob(scope constructs.Construct, cfg stackconfig.Config, s scheduledSpec) ScheduledJob {
	var j ScheduledJob
	j.Role = newFunctionRole(scope, s.ID+"Role", s.Role)
	j.Logs = newLogGroup(scope, s.ID+"LogGroup", cfg, FunctionName(cfg, s.Name))
	j.Function = newFunction(scope, s.ID, cfg, s.Name, s.Function, j.Role, s.Env)
	j.Function.Node().AddDependency(j.Logs)
	allow(j.Role, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, j.Logs.AttrArn())
	j.Schedule = awsevents.NewRule(scope, jsii.String(s.ID+"Schedule"), &awsevents.RuleProps{
		Description: jsii.String(s.Rule),
		Schedule:    awsevents.Schedule_Rate(s.Every),
	})
	j.Schedule.AddTarget(awseventstargets.NewLambdaFunction(j.Function, &awseventstargets.LambdaFunctionProps{
		RetryAttempts: jsii.Number(0),
	}))
	return j
}
