package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/tenancy"
)

// Function folder names under the functions directory; each holds the
// function's bootstrap binary. They are also the functions' short names.
const (
	ExecutorName     = "executor"
	VerifierName     = "verifier"
	CheckpointerName = "checkpointer"
)

// FunctionMetadataKey is the template Metadata key that names a function's
// folder, so local runners can find its host build.
const FunctionMetadataKey = "knhk:function"

// Environment variables the functions read besides those named in
// shared/stack.
const (
	EnvMaxReceiveCount = "KNHK_MAX_RECEIVE_COUNT"
	EnvDeadlineMargin  = "KNHK_DEADLINE_MARGIN"
	EnvLogLevel        = "LOG_LEVEL"
	EnvSecretsPrefix   = "KNHK_SECRETS_PREFIX"
	EnvOpenTenants     = "KNHK_OPEN_TENANTS"
)

// xrayWrite are the X-Ray actions an actively traced function needs; X-Ray
// has no resource-level permissions, so they apply to "*".
var xrayWrite = []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

// Functions are the stack's Lambda functions and what belongs to them.
type Functions struct {
	Executor awslambda.Function
	// WorkMapping is the executor's work queue mapping (the learning loop
	// tunes its maximum concurrency and batch size).
	WorkMapping  awslambdaeventsources.SqsEventSource
	Verifier     awslambda.Function
	Checkpointer awslambda.Function
	// CheckpointerRole is the only role that may write the checkpoints
	// table.
	CheckpointerRole awsiam.Role
	// CheckpointSchedule runs the checkpointer every
	// CheckpointEveryMinutes.
	CheckpointSchedule awsevents.Rule
	// ExecutorLogs and VerifierLogs are the functions' log groups.
	ExecutorLogs     awslogs.CfnLogGroup
	VerifierLogs     awslogs.CfnLogGroup
	CheckpointerLogs awslogs.CfnLogGroup
	// Archiver archives ended cases to the archive bucket, its only writer.
	Archiver ScheduledJob
	// VerifierFailures receives descriptions of stream batches the verifier
	// could not process within its retry and age limits.
	VerifierFailures awssqs.Queue
}

// FunctionName is the deployed name of a function: <prefix>-<name>.
func FunctionName(cfg stackconfig.Config, name string) string { return cfg.NamePrefix + "-" + name }

// FunctionNames are the short names of every function of the stack.
func FunctionNames() []string {
	return []string{ExecutorName, VerifierName, CheckpointerName, ArchiverName, SLAName, CostName, CanaryName, TunerName}
}

// CheckFunctionAssets reports a missing bootstrap binary before synthesis
// would fail on it with a less helpful message.
func CheckFunctionAssets(cfg stackconfig.Config) error {
	for _, name := range FunctionNames() {
		p := filepath.Join(cfg.FunctionsDir, name, "bootstrap")
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("function %s: %w (run `make build`, or set -c %s=DIR)", name, err, stackconfig.CtxFunctionsDir)
		}
		if fi.IsDir() {
			return fmt.Errorf("function %s: %s is a folder, want the bootstrap binary", name, p)
		}
	}
	return nil
}

// NewFunctions creates the executor on the work queue and the verifier on
// the receipts stream, each with its own role, log group and tracing.
func NewFunctions(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging, buckets Buckets) Functions {
	var f Functions
	f.VerifierFailures = awssqs.NewQueue(scope, jsii.String("VerifierFailures"), &awssqs.QueueProps{
		Encryption:          awssqs.QueueEncryption_KMS,
		EncryptionMasterKey: keys.Data,
		EnforceSSL:          jsii.Bool(true),
		RetentionPeriod:     awscdk.Duration_Days(jsii.Number(14)),
		RemovalPolicy:       removalPolicy(cfg),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(f.VerifierFailures, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-SQS3"),
		Reason: jsii.String("This queue is the on-failure destination of the verifier's stream mapping: it already holds the failed batches' descriptions and is drained by an operator, so a further dead-letter queue would have nothing to catch."),
	}}, jsii.Bool(false))

	// Executor.
	execRole := newFunctionRole(scope, "ExecutorRole", "KNHK executor: advances cases from the work queue")
	f.ExecutorLogs = newLogGroup(scope, "ExecutorLogGroup", cfg, FunctionName(cfg, ExecutorName))
	f.Executor = newFunction(scope, "Executor", cfg, ExecutorName, cfg.Executor, execRole, map[string]*string{
		stack.EnvName(stack.OutReceiptsTable):  tables.Receipts.TableName(),
		stack.EnvName(stack.OutStateTable):     tables.State.TableName(),
		stack.EnvName(stack.OutWorkQueueURL):   msg.Work.QueueUrl(),
		stack.EnvName(stack.OutAlertsTopicArn): msg.Alerts.TopicArn(),
		EnvMaxReceiveCount:                     jsii.String(strconv.Itoa(cfg.MaxReceiveCount)),
		EnvDeadlineMargin:                      jsii.String(fmt.Sprintf("%ds", cfg.ExecutorDeadlineMarginSecs)),
		EnvLogLevel:                            jsii.String(cfg.LogLevel),
		EnvSecretsPrefix:                       jsii.String(SecretsPrefix),
		EnvOpenTenants:                         jsii.String(strings.Join(executorOpenTenants(cfg), ",")),
		stack.EnvName(stack.OutPayloadBucket):  buckets.Payloads.BucketName(),
	})
	f.Executor.Node().AddDependency(f.ExecutorLogs)
	// Workflows name their secrets at run time (use.secrets), so the grant
	// covers the secrets under KNHK's prefix rather than a fixed list.
	allow(execRole, []string{"secretsmanager:GetSecretValue"}, awscdk.Fn_Sub(jsii.String(
		"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"+SecretsPrefix+"*"), nil))
	allow(execRole, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, f.ExecutorLogs.AttrArn())
	allow(execRole, []string{"dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"}, tables.Receipts.TableArn())
	// UpdateItem adds the environment's overhead usage (store.Overheads);
	// BatchWriteItem records dead-lettered outcomes (store.SLIs).
	allow(execRole, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem"}, tables.State.TableArn())
	// Query is the only one of these that an index serves.
	allow(execRole, []string{"dynamodb:Query"}, indexArn(tables.State.TableArn(), StateIndexName))
	allow(execRole, []string{"sqs:SendMessage"}, msg.Work.QueueArn())
	// Read-only on the inputs sent by reference; write and read of the
	// detached payloads of the receipts it appends.
	allow(execRole, []string{"s3:GetObject"}, buckets.Payloads.ArnForObjects(jsii.String(inputsPrefix+"/*")))
	allow(execRole, []string{"s3:PutObject", "s3:GetObject"}, buckets.Payloads.ArnForObjects(jsii.String(blobsPrefix+"/*")))
	allow(execRole, []string{"sns:Publish"}, msg.Alerts.TopicArn())
	allow(execRole, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	// The mapping grants the function what polling needs: receive, delete,
	// change visibility and get attributes on the queue, decrypt on its key.
	f.WorkMapping = awslambdaeventsources.NewSqsEventSource(msg.Work, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(float64(cfg.Executor.BatchSize)),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(float64(cfg.Executor.BatchWindowSecs))),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(float64(cfg.ExecutorMaxConcurrency)),
	})
	f.Executor.AddEventSource(f.WorkMapping)
	suppressXRay(execRole, "")
	suppressObjectPrefix(execRole, "PayloadBucket", inputsPrefix, "s3:GetObject on the objects under inputs/ of the payloads bucket only: inputs sent by reference are named by their content hash, inputs/<sha256>, unknown at deploy time.")
	suppressObjectPrefix(execRole, "PayloadBucket", blobsPrefix, "s3:PutObject and s3:GetObject on the objects under blobs/ of the payloads bucket only: detached payloads of receipts are named by their content hash, blobs/<sha256>, unknown at deploy time.")
	policy := execRole.Node().FindChild(jsii.String("DefaultPolicy"))
	cdknag.NagSuppressions_AddResourceSuppressions(policy, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("secretsmanager:GetSecretValue on the secrets under " + SecretsPrefix +
			" only: workflows declare the secrets they use (use.secrets) at run time, so no fixed list of secret ARNs exists at deploy time."),
		AppliesTo: &[]interface{}{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:.*:secretsmanager:.*:secret:knhk\/\*$/`)}},
	}}, jsii.Bool(true))

	// Verifier.
	verRole := newFunctionRole(scope, "VerifierRole", "KNHK verifier: checks every receipt written to the receipts table")
	f.VerifierLogs = newLogGroup(scope, "VerifierLogGroup", cfg, FunctionName(cfg, VerifierName))
	f.Verifier = newFunction(scope, "Verifier", cfg, VerifierName, cfg.Verifier, verRole, map[string]*string{
		stack.EnvName(stack.OutReceiptsTable):  tables.Receipts.TableName(),
		stack.EnvName(stack.OutStateTable):     tables.State.TableName(),
		stack.EnvName(stack.OutAlertsTopicArn): msg.Alerts.TopicArn(),
		EnvLogLevel:                            jsii.String(cfg.LogLevel),
	})
	f.Verifier.Node().AddDependency(f.VerifierLogs)
	allow(verRole, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, f.VerifierLogs.AttrArn())
	allow(verRole, []string{"dynamodb:GetItem", "dynamodb:Query"}, tables.Receipts.TableArn())
	allow(verRole, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}, tables.State.TableArn())
	allow(verRole, []string{"sns:Publish"}, msg.Alerts.TopicArn())
	allow(verRole, []string{"sqs:SendMessage"}, f.VerifierFailures.QueueArn())
	allow(verRole, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	// The stream mapping is built here rather than with the library's
	// DynamoEventSource and SqsDlq, whose grants add wildcard KMS actions.
	allow(verRole, []string{"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}, tables.Receipts.TableStreamArn())
	allow(verRole, []string{"dynamodb:ListStreams"}, jsii.String("*"))
	esm := awslambda.NewCfnEventSourceMapping(scope, jsii.String("VerifierStreamMapping"), &awslambda.CfnEventSourceMappingProps{
		FunctionName:     f.Verifier.FunctionName(),
		EventSourceArn:   tables.Receipts.TableStreamArn(),
		StartingPosition: jsii.String("TRIM_HORIZON"),
		BatchSize:        jsii.Number(float64(cfg.Verifier.BatchSize)),
		// A window lets a case's receipts share a batch: one watermark read
		// and write for all of them.
		MaximumBatchingWindowInSeconds: jsii.Number(float64(cfg.Verifier.BatchWindowSecs)),
		BisectBatchOnFunctionError:     jsii.Bool(true),
		MaximumRetryAttempts:           jsii.Number(float64(cfg.VerifierMaxRetryAttempts)),
		MaximumRecordAgeInSeconds:      jsii.Number(float64(cfg.VerifierMaxRecordAgeSecs)),
		ParallelizationFactor:          jsii.Number(float64(cfg.VerifierParallelization)),
		FunctionResponseTypes:          jsii.Strings("ReportBatchItemFailures"),
		DestinationConfig: &awslambda.CfnEventSourceMapping_DestinationConfigProperty{
			OnFailure: &awslambda.CfnEventSourceMapping_OnFailureProperty{Destination: f.VerifierFailures.QueueArn()},
		},
	})
	// Lambda checks the role's permissions when the mapping is created.
	esm.Node().AddDependency(verRole)
	suppressXRay(verRole, " and dynamodb:ListStreams (Lambda lists the table's streams to poll it; ListStreams has no resource-level permissions)")
	newCheckpointer(scope, cfg, keys, tables, msg, &f)
	f.Archiver = newArchiver(scope, cfg, keys, tables, msg, buckets)
	return f
}

// checkpointWrites are the data-plane actions that change a table's items.
var checkpointWrites = []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
	"dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"}

// newCheckpointer creates the scheduled checkpointer, the only writer of
// the checkpoints table: its role alone is granted writes there, and the
// table's resource policy denies them to every other principal.
func newCheckpointer(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging, f *Functions) {
	role := newFunctionRole(scope, "CheckpointerRole", "KNHK checkpointer: signs checkpoints of verified chain heads")
	f.CheckpointerRole = role
	f.CheckpointerLogs = newLogGroup(scope, "CheckpointerLogGroup", cfg, FunctionName(cfg, CheckpointerName))
	f.Checkpointer = newFunction(scope, "Checkpointer", cfg, CheckpointerName, cfg.Checkpointer, role, map[string]*string{
		stack.EnvName(stack.OutReceiptsTable):    tables.Receipts.TableName(),
		stack.EnvName(stack.OutStateTable):       tables.State.TableName(),
		stack.EnvName(stack.OutCheckpointsTable): tables.Checkpoints.TableName(),
		stack.EnvName(stack.OutAlertsTopicArn):   msg.Alerts.TopicArn(),
		stack.EnvName(stack.OutCheckpointKeyID):  keys.Checkpoint.KeyId(),
		EnvLogLevel:                              jsii.String(cfg.LogLevel),
	})
	f.Checkpointer.Node().AddDependency(f.CheckpointerLogs)
	allow(role, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, f.CheckpointerLogs.AttrArn())
	allow(role, []string{"dynamodb:Query"}, tables.Receipts.TableArn())
	allow(role, []string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"}, tables.State.TableArn())
	allow(role, []string{"dynamodb:Query"}, indexArn(tables.State.TableArn(), StateIndexName))
	allow(role, []string{"dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"}, tables.Checkpoints.TableArn())
	allow(role, []string{"kms:Sign", "kms:GetPublicKey"}, keys.Checkpoint.KeyArn())
	allow(role, []string{"sns:Publish"}, msg.Alerts.TopicArn())
	allow(role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	suppressXRay(role, "")

	tableArn := awscdk.Fn_Sub(jsii.String("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/"+CheckpointsTableName(cfg)), nil)
	policy := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "OnlyTheCheckpointerWrites",
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    checkpointWrites,
			"Resource":  tableArn,
			"Condition": map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": role.RoleArn()}},
		}},
	}
	tables.Checkpoints.Node().DefaultChild().(awsdynamodb.CfnTable).AddPropertyOverride(jsii.String("ResourcePolicy"), map[string]any{"PolicyDocument": policy})

	f.CheckpointSchedule = awsevents.NewRule(scope, jsii.String("CheckpointSchedule"), &awsevents.RuleProps{
		Description: jsii.String("Runs the KNHK checkpointer"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(float64(cfg.CheckpointEveryMinutes)))),
	})
	f.CheckpointSchedule.AddTarget(awseventstargets.NewLambdaFunction(f.Checkpointer, &awseventstargets.LambdaFunctionProps{
		RetryAttempts: jsii.Number(0), // the next run retries
	}))
}

// newFunctionRole is a role Lambda can assume, with no managed policies:
// every permission is a statement added for one resource.
func newFunctionRole(scope constructs.Construct, id, desc string) awsiam.Role {
	return awsiam.NewRole(scope, jsii.String(id), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String(desc),
	})
}

// newLogGroup creates the log group Lambda writes a function's logs to.
func newLogGroup(scope constructs.Construct, id string, cfg stackconfig.Config, functionName string) awslogs.CfnLogGroup {
	lg := awslogs.NewCfnLogGroup(scope, jsii.String(id), &awslogs.CfnLogGroupProps{
		LogGroupName:    jsii.String("/aws/lambda/" + functionName),
		RetentionInDays: jsii.Number(float64(cfg.LogRetentionDays)),
	})
	lg.ApplyRemovalPolicy(removalPolicy(cfg), nil)
	return lg
}

// newFunction creates an arm64 provided.al2023 function from
// <functionsDir>/<name>/bootstrap with JSON logs and active tracing.
func newFunction(scope constructs.Construct, id string, cfg stackconfig.Config, name string, fc stackconfig.FunctionConfig, role awsiam.IRole, env map[string]*string) awslambda.Function {
	maps.Copy(env, tracingEnv(cfg))
	var layers *[]awslambda.ILayerVersion
	if cfg.Tracing && cfg.OTelCollectorLayerARN != "" {
		layers = &[]awslambda.ILayerVersion{awslambda.LayerVersion_FromLayerVersionArn(scope, jsii.String(id+"Collector"), jsii.String(cfg.OTelCollectorLayerARN))}
	}
	fn := awslambda.NewFunction(scope, jsii.String(id), &awslambda.FunctionProps{
		Layers:                layers,
		FunctionName:          jsii.String(FunctionName(cfg, name)),
		Description:           jsii.String("KNHK " + name),
		Runtime:               awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:          awslambda.Architecture_ARM_64(),
		Handler:               jsii.String("bootstrap"),
		Code:                  awslambda.Code_FromAsset(jsii.String(filepath.Join(cfg.FunctionsDir, name)), nil),
		MemorySize:            jsii.Number(float64(fc.MemoryMB)),
		Timeout:               awscdk.Duration_Seconds(jsii.Number(float64(fc.TimeoutSecs))),
		Role:                  role,
		Environment:           &env,
		Tracing:               awslambda.Tracing_ACTIVE,
		LoggingFormat:         awslambda.LoggingFormat_JSON,
		ApplicationLogLevelV2: applicationLogLevel(cfg.LogLevel),
		SystemLogLevelV2:      awslambda.SystemLogLevel_INFO,
	})
	fn.Node().DefaultChild().(awscdk.CfnResource).AddMetadata(jsii.String(FunctionMetadataKey), name)
	return fn
}

// tracingEnv is a function's OpenTelemetry environment: the OTLP/HTTP
// endpoint (the collector extension, which forwards to X-Ray with the
// function's xray:PutTraceSegments permission) and the sampler; with
// tracing off, the SDK is disabled.
func tracingEnv(cfg stackconfig.Config) map[string]*string {
	if !cfg.Tracing {
		return map[string]*string{telemetry.EnvSDKDisabled: jsii.String("true")}
	}
	env := map[string]*string{
		telemetry.EnvOTLPEndpoint:  jsii.String(cfg.OTelEndpoint),
		telemetry.EnvOTLPProtocol:  jsii.String("http/protobuf"),
		telemetry.EnvTracesSampler: jsii.String(cfg.OTelSampler),
		telemetry.EnvPropagators:   jsii.String("tracecontext"),
	}
	if cfg.OTelSamplerArg != "" {
		env[telemetry.EnvTracesSamplerArg] = jsii.String(cfg.OTelSamplerArg)
	}
	return env
}

func applicationLogLevel(level string) awslambda.ApplicationLogLevel {
	switch strings.ToLower(level) {
	case "debug":
		return awslambda.ApplicationLogLevel_DEBUG
	case "warn":
		return awslambda.ApplicationLogLevel_WARN
	case "error":
		return awslambda.ApplicationLogLevel_ERROR
	default:
		return awslambda.ApplicationLogLevel_INFO
	}
}

// allow adds one statement to a role's policy.
func allow(role awsiam.Role, actions []string, resources ...*string) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(actions...),
		Resources: &resources,
	}))
}

// indexArn is the ARN of one named index of a table.
func indexArn(tableArn *string, index string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{tableArn, jsii.String("/index/" + index)})
}

// SecretsPrefix is the Secrets Manager name prefix of workflow secrets: a
// secret declared as `acquirerApiKey` is stored as `knhk/acquirerApiKey`.
const SecretsPrefix = "knhk/"

// suppressXRay records, on the role's policy, the one wildcard resource a
// function needs.
func suppressXRay(role awsiam.Role, more string) {
	policy := role.Node().FindChild(jsii.String("DefaultPolicy"))
	cdknag.NagSuppressions_AddResourceSuppressions(policy, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Resource * only for " + strings.Join(xrayWrite, " and ") +
			" (X-Ray has no resource-level permissions; active tracing needs them)" + more + ". Every other statement names its table, index, stream, queue, topic, key or log group."),
		AppliesTo: &[]interface{}{jsii.String("Resource::*")},
	}}, jsii.Bool(true))
}

// executorOpenTenants are the configured open tenants and the canary's
// reserved tenant: the canary's cases run only the built-in workflow of a
// namespace that tenant owns, so opening it lets no sender reach another
// tenant's cases or workflows, and it needs no principal known only after
// deployment (docs/security.md).
func executorOpenTenants(cfg stackconfig.Config) []string {
	if slices.Contains(cfg.OpenTenants, tenancy.AnyTenant) || slices.Contains(cfg.OpenTenants, canary.Tenant) {
		return cfg.OpenTenants
	}
	return append(slices.Clone(cfg.OpenTenants), canary.Tenant)
}
