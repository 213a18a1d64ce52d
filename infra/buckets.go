package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/knhk/knhk/infra/stackconfig"
)

// DeadLetterRetentionDays is how long the dead-letter queue keeps a message.
const DeadLetterRetentionDays = 14

// PayloadExpireDays is how long an input sent by reference (inputs/) is
// kept: longer than a message that names it can live in the dead-letter
// queue, with a margin for its redrive. Detached payloads (blobs/) do not
// expire: see docs/receipts.md.
const PayloadExpireDays = DeadLetterRetentionDays + 7

// Key prefixes of the payloads bucket (objects.InputPrefix, objects.BlobPrefix).
const (
	inputsPrefix = "inputs"
	blobsPrefix  = "blobs"
)

// Buckets are the stack's S3 buckets.
type Buckets struct {
	// AccessLogs receives the other buckets' server access logs.
	AccessLogs awss3.Bucket
	// Chargeback holds the cost job's monthly exports.
	Chargeback awss3.Bucket
	// Payloads holds inputs too large for a message, under inputs/<sha256>,
	// and the detached payloads of receipts, under blobs/<sha256>.
	Payloads awss3.Bucket
	// Archive holds one archive object per ended case under Object Lock;
	// only the archiver writes it (see newArchiver).
	Archive awss3.Bucket
}

// NewBuckets creates the chargeback, payloads and archive buckets, encrypted with the
// data key, TLS-only, closed to the public, logging their access to the
// access-logs bucket.
func NewBuckets(scope constructs.Construct, cfg stackconfig.Config, keys Keys) Buckets {
	var b Buckets
	// Server access logs can only be delivered to a bucket encrypted with
	// S3-managed keys.
	b.AccessLogs = awss3.NewBucket(scope, jsii.String("AccessLogsBucket"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:         jsii.String("ExpireAccessLogs"),
			Expiration: awscdk.Duration_Days(jsii.Number(float64(cfg.ChargebackExpireDays))),
		}},
		RemovalPolicy: removalPolicy(cfg),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(b.AccessLogs, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-S1"),
		Reason: jsii.String("This is the server access logs bucket of the stack's other buckets; logging its own access would log the delivery of logs into itself."),
	}}, jsii.Bool(false))
	b.Chargeback = newDataBucket(scope, "ChargebackBucket", cfg, keys, b.AccessLogs, true, []*awss3.LifecycleRule{{
		Id:                                  jsii.String("ExpireChargebackExports"),
		Expiration:                          awscdk.Duration_Days(jsii.Number(float64(cfg.ChargebackExpireDays))),
		NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(float64(cfg.ChargebackExpireDays))),
		AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
	}})
	// Only inputs/ expires. A detached payload under blobs/ is shared by
	// every case that recorded the same bytes and must outlive each live
	// receipt that names it, which no age-based rule can know; it is kept.
	b.Payloads = newDataBucket(scope, "PayloadBucket", cfg, keys, b.AccessLogs, false, []*awss3.LifecycleRule{{
		Id:         jsii.String("ExpireInputs"),
		Prefix:     jsii.String(inputsPrefix + "/"),
		Expiration: awscdk.Duration_Days(jsii.Number(PayloadExpireDays)),
	}, {
		Id:                                  jsii.String("AbortIncompleteUploads"),
		AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
	}})
	b.Archive = newArchiveBucket(scope, cfg, keys, b.AccessLogs)
	return b
}

// newDataBucket is a bucket encrypted with the data key (with an S3 bucket
// key, so objects cost one KMS call per data key rather than per object).
func newDataBucket(scope constructs.Construct, id string, cfg stackconfig.Config, keys Keys, logs awss3.IBucket, versioned bool, rules []*awss3.LifecycleRule) awss3.Bucket {
	return awss3.NewBucket(scope, jsii.String(id), &awss3.BucketProps{
		Encryption:             awss3.BucketEncryption_KMS,
		EncryptionKey:          keys.Data,
		BucketKeyEnabled:       jsii.Bool(true),
		EnforceSSL:             jsii.Bool(true),
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:              jsii.Bool(versioned),
		LifecycleRules:         &rules,
		ServerAccessLogsBucket: logs,
		ServerAccessLogsPrefix: jsii.String(id + "/"),
		RemovalPolicy:          removalPolicy(cfg),
	})
}

// suppressObjectPrefix records, on a role's policy, a grant on the objects
// under one prefix of one of the stack's buckets.
func suppressObjectPrefix(role awsiam.Role, bucketID, prefix, reason string) {
	policy := role.Node().FindChild(jsii.String("DefaultPolicy"))
	cdknag.NagSuppressions_AddResourceSuppressions(policy, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String(reason),
		AppliesTo: &[]interface{}{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<` + bucketID + `[0-9A-F]+\.Arn>\/` + prefix + `\/\*$/`)}},
	}}, jsii.Bool(true))
}
