package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/stack"
)

// fakeFunctions is a functions folder holding placeholder bootstrap files,
// so that synthesis in tests does not need built binaries.
var fakeFunctions string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "knhk-infra-functions-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, name := range FunctionNames() {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err == nil {
			err = os.WriteFile(filepath.Join(dir, name, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fakeFunctions = dir
	code := m.Run()
	jsii.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// synthesized is one stack synthesized for one context, shared by subtests.
type synthesized struct {
	stack *KnhkStack
	tmpl  assertions.Template
	ann   assertions.Annotations
}

var (
	synthMu    sync.Mutex
	synthCache = map[string]*synthesized{}
)

// synth synthesizes the app once per named context.
func synth(t *testing.T, name string, ctx map[string]any) *synthesized {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synthCache[name]; ok {
		return s
	}
	full := map[string]any{"functionsDir": fakeFunctions}
	for k, v := range ctx {
		full[k] = v
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &full})
	st, err := DefineApp(app)
	if err != nil {
		t.Fatalf("define app: %v", err)
	}
	s := &synthesized{stack: st, tmpl: assertions.Template_FromStack(st.Stack, nil), ann: assertions.Annotations_FromStack(st.Stack)}
	synthCache[name] = s
	return s
}

// must turns an assertion failure (a panic across jsii) into a test error.
func must(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

func obj(m map[string]any) *map[string]any { return &m }

func like(m map[string]any) assertions.Matcher { return assertions.Match_ObjectLike(obj(m)) }

func arrayWith(v ...any) assertions.Matcher { a := v; return assertions.Match_ArrayWith(&a) }

type envCase struct {
	name        string
	ctx         map[string]any
	deletion    string
	protection  bool
	receiveMax  float64
	visibility  float64
	keyAlias    string
	pendingDays float64
}

var envCases = []envCase{
	{name: "prod", ctx: map[string]any{}, deletion: "Retain", protection: true, receiveMax: 5, visibility: 360, keyAlias: "alias/knhk/checkpoint", pendingDays: 30},
	{name: "local", ctx: map[string]any{"env": "local", "maxReceiveCount": "3", "executorTimeout": "20", "checkpointKeyAlias": "alias/knhk/local-ckpt",
		"executorMaxConcurrency": "5", "verifierBatchSize": "10", "runbookBaseUrl": "https://runbooks.example/knhk",
		"otelCollectorLayerArn": collectorLayer, "otelSampler": "parentbased_traceidratio", "otelSamplerArg": "0.25", "checkpointEveryMinutes": "1",
		"canaryFreshness": "3m", "alarmEmail": "oncall@example.com", "pagerDutyUrl": "https://events.pagerduty.com/integration/abc/enqueue",
		"slackChannelId": "C0123456789", "slackWorkspaceId": "T0123456789"},
		deletion: "Delete", protection: false, receiveMax: 3, visibility: 120, keyAlias: "alias/knhk/local-ckpt", pendingDays: 7},
}

func TestStack(t *testing.T) {
	for _, ec := range envCases {
		t.Run(ec.name, func(t *testing.T) {
			s := synth(t, ec.name, ec.ctx)
			tm := s.tmpl
			dataKeyArn := map[string]any{"Fn::GetAtt": []any{"DataKey17AFBB84", "Arn"}}

			t.Run("environment agnostic", func(t *testing.T) {
				if !*awscdk.Token_IsUnresolved(s.stack.Stack.Account()) || !*awscdk.Token_IsUnresolved(s.stack.Stack.Region()) {
					t.Errorf("stack is bound to an account or region; synthesis must not need one")
				}
			})
			t.Run("data key", func(t *testing.T) {
				must(t, "data key rotation", func() {
					tm.HasResource(jsii.String("AWS::KMS::Key"), like(map[string]any{
						"Properties":     like(map[string]any{"EnableKeyRotation": true, "PendingWindowInDays": ec.pendingDays}),
						"DeletionPolicy": ec.deletion,
					}))
				})
				must(t, "cloudwatch may use the data key", func() {
					tm.HasResourceProperties(jsii.String("AWS::KMS::Key"), like(map[string]any{
						"KeyPolicy": like(map[string]any{"Statement": arrayWith(like(map[string]any{
							"Principal": map[string]any{"Service": "cloudwatch.amazonaws.com"},
						}))}),
					}))
				})
			})
			t.Run("checkpoint key", func(t *testing.T) {
				must(t, "asymmetric signing key", func() {
					tm.HasResource(jsii.String("AWS::KMS::Key"), like(map[string]any{
						"Properties":     like(map[string]any{"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
						"DeletionPolicy": ec.deletion,
					}))
				})
				must(t, "alias", func() {
					tm.HasResourceProperties(jsii.String("AWS::KMS::Alias"), map[string]any{
						"AliasName":   ec.keyAlias,
						"TargetKeyId": map[string]any{"Fn::GetAtt": []any{"CheckpointKey6ED5B60F", "Arn"}},
					})
				})
			})
			t.Run("receipts table", func(t *testing.T) {
				must(t, "receipts table", func() {
					tm.HasResource(jsii.String("AWS::DynamoDB::Table"), like(map[string]any{
						"DeletionPolicy": ec.deletion,
						"Properties": like(map[string]any{
							"KeySchema": []any{
								map[string]any{"AttributeName": "caseId", "KeyType": "HASH"},
								map[string]any{"AttributeName": "seq", "KeyType": "RANGE"},
							},
							"AttributeDefinitions": assertions.Match_ArrayEquals(&[]any{
								map[string]any{"AttributeName": "caseId", "AttributeType": "S"},
								map[string]any{"AttributeName": "seq", "AttributeType": "N"},
							}),
							"BillingMode":                      "PAY_PER_REQUEST",
							"StreamSpecification":              map[string]any{"StreamViewType": "NEW_AND_OLD_IMAGES"},
							"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
							"SSESpecification":                 map[string]any{"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": dataKeyArn},
							"DeletionProtectionEnabled":        ec.protection,
						}),
					}))
				})
			})
			t.Run("state table", func(t *testing.T) {
				must(t, "state table", func() {
					tm.HasResource(jsii.String("AWS::DynamoDB::Table"), like(map[string]any{
						"DeletionPolicy": ec.deletion,
						"Properties": like(map[string]any{
							"KeySchema": []any{
								map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
								map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
							},
							"BillingMode":                      "PAY_PER_REQUEST",
							"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
							"SSESpecification":                 map[string]any{"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": dataKeyArn},
							"TimeToLiveSpecification":          map[string]any{"AttributeName": "expiresAt", "Enabled": true},
							"DeletionProtectionEnabled":        ec.protection,
							"StreamSpecification":              assertions.Match_Absent(),
							"GlobalSecondaryIndexes": []any{map[string]any{
								"IndexName": "gsi1",
								"KeySchema": []any{
									map[string]any{"AttributeName": "gsi1pk", "KeyType": "HASH"},
									map[string]any{"AttributeName": "gsi1sk", "KeyType": "RANGE"},
								},
								"Projection": map[string]any{"ProjectionType": "ALL"},
							}},
						}),
					}))
				})
				must(t, "three tables", func() { tm.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(3)) })
			})
			t.Run("queues", func(t *testing.T) {
				must(t, "dead-letter queue", func() {
					tm.HasResource(jsii.String("AWS::SQS::Queue"), like(map[string]any{
						"DeletionPolicy": ec.deletion,
						"Properties": map[string]any{
							"MessageRetentionPeriod": 14 * 24 * 3600,
							"KmsMasterKeyId":         dataKeyArn,
							"MaximumMessageSize":     limits.MaxMessageBytes,
						},
					}))
				})
				must(t, "work queue", func() {
					tm.HasResource(jsii.String("AWS::SQS::Queue"), like(map[string]any{
						"DeletionPolicy": ec.deletion,
						"Properties": map[string]any{
							"VisibilityTimeout":  ec.visibility,
							"KmsMasterKeyId":     dataKeyArn,
							"MaximumMessageSize": limits.MaxMessageBytes,
							"RedrivePolicy": map[string]any{
								"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{"DeadLetterQueue9F481546", "Arn"}},
								"maxReceiveCount":     ec.receiveMax,
							},
						},
					}))
				})
				for _, q := range []string{"DeadLetterQueue9F481546", "WorkQueue94013F35"} {
					must(t, "TLS-only policy on "+q, func() {
						tm.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), like(map[string]any{
							"Queues": []any{map[string]any{"Ref": q}},
							"PolicyDocument": like(map[string]any{"Statement": arrayWith(like(map[string]any{
								"Effect":    "Deny",
								"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
							}))}),
						}))
					})
				}
			})
			t.Run("alerts topic", func(t *testing.T) {
				must(t, "encrypted topic", func() {
					tm.HasResource(jsii.String("AWS::SNS::Topic"), like(map[string]any{
						"DeletionPolicy": ec.deletion,
						"Properties":     like(map[string]any{"KmsMasterKeyId": dataKeyArn}),
					}))
				})
				must(t, "TLS-only topic policy", func() {
					tm.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), like(map[string]any{
						"PolicyDocument": like(map[string]any{"Statement": arrayWith(like(map[string]any{
							"Effect":    "Deny",
							"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
						}))}),
					}))
				})
			})
			t.Run("outputs", func(t *testing.T) {
				ids := []string{stack.OutReceiptsTable, stack.OutReceiptsStreamArn, stack.OutStateTable, stack.OutWorkQueueURL,
					stack.OutWorkQueueArn, stack.OutDeadLetterURL, stack.OutAlertsTopicArn, stack.OutCheckpointKeyID, stack.OutDataKeyArn,
					OutDeadLetterQueueArn, OutCheckpointKeyArn, OutCheckpointKeyAlias, OutStateTableArn, OutReceiptsTableArn,
					OutExecutorFunctionName, OutVerifierFunctionName, OutVerifierFailureQueueURL, OutCheckpointerFunction, OutSLAFunction, stack.OutCheckpointsTable,
					OutCostFunction, stack.OutChargebackBucket, stack.OutPayloadBucket, stack.OutArchiveBucket, OutArchiverFunction,
					OutCanaryFunction, OutTunerFunction, OutPageTopicArn, OutTicketTopicArn,
					"ExecutorErrorsAlarmName", "ExecutorThrottlesAlarmName", "ExecutorPermanentErrorsAlarmName", "DeadLetterQueueDepthAlarmName",
					"VerifierIteratorAgeAlarmName", "VerifierFailuresDepthAlarmName", "IntegrityFindingsAlarmName",
					"CheckpointHeadsRefusedAlarmName", "CheckpointerErrorsAlarmName", "ArchivesRefusedAlarmName", "ArchiverErrorsAlarmName"}
				outs := tm.FindOutputs(jsii.String("*"), nil)
				if len(*outs) != len(ids) {
					t.Errorf("%d outputs, want %d", len(*outs), len(ids))
				}
				for _, id := range ids {
					if _, ok := (*outs)[id]; !ok {
						t.Errorf("output %s missing", id)
					}
				}
				must(t, "stream output", func() {
					tm.HasOutput(jsii.String(stack.OutReceiptsStreamArn), map[string]any{
						"Value": map[string]any{"Fn::GetAtt": []any{"ReceiptsTable036B344A", "StreamArn"}},
					})
				})
				must(t, "checkpoint key id output", func() {
					tm.HasOutput(jsii.String(stack.OutCheckpointKeyID), like(map[string]any{"Value": map[string]any{"Ref": "CheckpointKey6ED5B60F"}}))
				})
			})
			t.Run("cdk-nag AwsSolutions", func(t *testing.T) {
				errs := s.ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
				for _, e := range *errs {
					t.Errorf("unsuppressed finding at %s: %v", *e.Id, e.Entry.Data)
				}
				warns := s.ann.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
				for _, w := range *warns {
					t.Errorf("unsuppressed warning at %s: %v", *w.Id, w.Entry.Data)
				}
			})
		})
	}
}

// TestNagCatchesFindings proves the cdk-nag harness above can fail: an
// unencrypted queue without a dead-letter queue or TLS policy must be flagged.
func TestNagCatchesFindings(t *testing.T) {
	app := awscdk.NewApp(nil)
	st := awscdk.NewStack(app, jsii.String("Bad"), nil)
	awssqs.NewQueue(st, jsii.String("Plain"), &awssqs.QueueProps{Encryption: awssqs.QueueEncryption_UNENCRYPTED})
	awscdk.Aspects_Of(st).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	errs := assertions.Annotations_FromStack(st).FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
	found := map[string]bool{}
	for _, e := range *errs {
		found[fmt.Sprint(e.Entry.Data)[:len("AwsSolutions-SQS")+1]] = true
	}
	for _, rule := range []string{"AwsSolutions-SQS3", "AwsSolutions-SQS4"} {
		if !found[rule] {
			t.Errorf("nag did not report %s; findings: %v", rule, found)
		}
	}
}
