package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
)

// Keys are the stack's customer-managed KMS keys.
type Keys struct {
	// Data encrypts the tables, queues and topic (symmetric, rotated yearly).
	Data awskms.Key
	// Checkpoint signs receipt-chain checkpoints (ECC P-256, sign/verify).
	Checkpoint awskms.Key
}

// NewKeys creates the data key and the checkpoint signing key.
func NewKeys(scope constructs.Construct, cfg stackconfig.Config) Keys {
	data := awskms.NewKey(scope, jsii.String("DataKey"), &awskms.KeyProps{
		Description:       jsii.String("KNHK data key: receipts and state tables, work queues, alerts topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     removalPolicy(cfg),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(pendingWindowDays(cfg))),
	})
	// CloudWatch alarms publish to the encrypted alerts topic; the service
	// needs the key to do so.
	data.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
	}), jsii.Bool(false))

	checkpoint := awskms.NewKey(scope, jsii.String("CheckpointKey"), &awskms.KeyProps{
		Description:   jsii.String("KNHK checkpoint signing key: signs Merkle roots over receipt-chain heads"),
		KeySpec:       awskms.KeySpec_ECC_NIST_P256,
		KeyUsage:      awskms.KeyUsage_SIGN_VERIFY,
		Alias:         jsii.String(cfg.CheckpointKeyAlias),
		RemovalPolicy: removalPolicy(cfg),
		PendingWindow: awscdk.Duration_Days(jsii.Number(pendingWindowDays(cfg))),
	})
	return Keys{Data: data, Checkpoint: checkpoint}
}

// pendingWindowDays is the KMS deletion waiting period: the shortest allowed
// for throwaway stacks, the longest for production.
func pendingWindowDays(cfg stackconfig.Config) float64 {
	if cfg.Destroyable() {
		return 7
	}
	return 30
}

func removalPolicy(cfg stackconfig.Config) awscdk.RemovalPolicy {
	if cfg.Destroyable() {
		return awscdk.RemovalPolicy_DESTROY
	}
	return awscdk.RemovalPolicy_RETAIN
}
