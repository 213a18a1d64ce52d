package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
)

// SLAName is the SLA job's function name suffix.
const SLAName = slajob.FunctionName

// SLAJob is the scheduled SLA job and what belongs to it.
type SLAJob = ScheduledJob

// newSLAJob creates the SLA job, run every minute: it reads the verifier's
// service-level buckets and writes the SLA reports and its lease, all in the
// state table.
func newSLAJob(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables) SLAJob {
	env := map[string]*string{
		stack.EnvName(stack.OutStateTable): tables.State.TableName(),
		slajob.EnvWindowDivisor:            jsii.String(fmt.Sprint(cfg.SLAWindowDivisor)),
		slajob.EnvMinEvents:                jsii.String(fmt.Sprint(cfg.SLAMinEvents)),
		EnvLogLevel:                        jsii.String(cfg.LogLevel),
	}
	if cfg.SLAObjectives != "" {
		env[slajob.EnvObjectives] = jsii.String(cfg.SLAObjectives)
	}
	j := newScheduledJob(scope, cfg, scheduledSpec{ID: "Sla", Name: SLAName,
		Role: "KNHK SLA job: service levels, error budgets and burn rates from verified receipts",
		Rule: "Runs the KNHK SLA job", Every: awscdk.Duration_Minutes(jsii.Number(1)), Function: cfg.SLA, Env: env})
	allow(j.Role, []string{"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}, tables.State.TableArn())
	allow(j.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	suppressXRay(j.Role, "")
	return j
}
