package main

import (
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/archiver"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/stack"
)

// ArchiverName is the archiver's function name suffix.
const ArchiverName = archiver.FunctionName

// archiveWrites are the object actions that create or change what the
// archive bucket holds or how long it holds it; only the archiver's role may
// use the first two, nobody the others.
var (
	archiveWrites   = []string{"s3:PutObject", "s3:PutObjectRetention"}
	archiveRewrites = []string{"s3:BypassGovernanceRetention", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectVersionAcl", "s3:PutObjectAcl"}
)

// newArchiveBucket creates the archive bucket: Object Lock with a default
// retention (compliance mode, or governance for dev and local stacks),
// versioned, encrypted with the data key, TLS-only, closed to the public,
// its access logged. Its policy is added with the archiver (lockArchive).
func newArchiveBucket(scope constructs.Construct, cfg stackconfig.Config, keys Keys, logs awss3.IBucket) awss3.Bucket {
	days := awscdk.Duration_Days(jsii.Number(float64(cfg.ArchiveRetentionDays)))
	retention := awss3.ObjectLockRetention_Compliance(days)
	if cfg.ArchiveLockMode == stackconfig.LockGovernance {
		retention = awss3.ObjectLockRetention_Governance(days)
	}
	return awss3.NewBucket(scope, jsii.String("ArchiveBucket"), &awss3.BucketProps{
		Encryption:                 awss3.BucketEncryption_KMS,
		EncryptionKey:              keys.Data,
		BucketKeyEnabled:           jsii.Bool(true),
		EnforceSSL:                 jsii.Bool(true),
		BlockPublicAccess:          awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:            awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:                  jsii.Bool(true),
		ObjectLockEnabled:          jsii.Bool(true),
		ObjectLockDefaultRetention: retention,
		ServerAccessLogsBucket:     logs,
		ServerAccessLogsPrefix:     jsii.String("ArchiveBucket/"),
		// Archives outlive the stack: a locked bucket cannot be emptied
		// before its objects' retention ends anyway.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
}

// newArchiver creates the scheduled archiver and makes it the archive
// bucket's only writer: its role alone is granted object writes there, and
// the bucket policy denies them to every other principal, and denies every
// principal the deletion of a version and the bypass of its retention.
func newArchiver(scope constructs.Construct, cfg stackconfig.Config, keys Keys, tables Tables, msg Messaging, buckets Buckets) ScheduledJob {
	j := newScheduledJob(scope, cfg, scheduledSpec{ID: "Archiver", Name: ArchiverName,
		Role: "KNHK archiver: archives ended, checkpointed cases to the archive bucket, then lets their receipts expire",
		Rule: "Runs the KNHK archiver", Every: awscdk.Duration_Minutes(jsii.Number(float64(cfg.ArchiveEveryMinutes))), Function: cfg.Archiver,
		Env: map[string]*string{
			stack.EnvName(stack.OutReceiptsTable):    tables.Receipts.TableName(),
			stack.EnvName(stack.OutStateTable):       tables.State.TableName(),
			stack.EnvName(stack.OutCheckpointsTable): tables.Checkpoints.TableName(),
			stack.EnvName(stack.OutAlertsTopicArn):   msg.Alerts.TopicArn(),
			stack.EnvName(stack.OutCheckpointKeyID):  keys.Checkpoint.KeyId(),
			stack.EnvName(stack.OutArchiveBucket):    buckets.Archive.BucketName(),
			stack.EnvName(stack.OutPayloadBucket):    buckets.Payloads.BucketName(),
			archiver.EnvRetentionDays:                jsii.String(strconv.Itoa(cfg.ReceiptRetentionDays)),
			EnvLogLevel:                              jsii.String(cfg.LogLevel),
		}})
	allow(j.Role, []string{"dynamodb:Query"}, tables.Receipts.TableArn())
	// The receipts' time to live and nothing else: an update may name only
	// the key and the TTL attribute.
	j.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("dynamodb:UpdateItem"),
		Resources: &[]*string{tables.Receipts.TableArn()},
		Conditions: &map[string]any{"ForAllValues:StringEquals": map[string]any{
			"dynamodb:Attributes": []string{ReceiptsPartitionKey, ReceiptsSortKey, receipt.AttrExpires},
		}},
	}))
	allow(j.Role, []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}, tables.State.TableArn())
	// The refused cases due for a retry, by next retry time (store.Refusals).
	allow(j.Role, []string{"dynamodb:Query"}, indexArn(tables.State.TableArn(), StateIndexName))
	allow(j.Role, []string{"dynamodb:Query"}, tables.Checkpoints.TableArn())
	allow(j.Role, []string{"kms:GetPublicKey"}, keys.Checkpoint.KeyArn())
	allow(j.Role, []string{"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"}, buckets.Archive.ArnForObjects(jsii.String(archive.Prefix+"*")))
	// Read-only on the detached payloads it embeds in archive objects.
	allow(j.Role, []string{"s3:GetObject"}, buckets.Payloads.ArnForObjects(jsii.String(blobsPrefix+"/*")))
	allow(j.Role, []string{"kms:Decrypt", "kms:GenerateDataKey"}, keys.Data.KeyArn())
	allow(j.Role, []string{"sns:Publish"}, msg.Alerts.TopicArn())
	suppressXRay(j.Role, "")
	suppressObjectPrefix(j.Role, "PayloadBucket", blobsPrefix, "s3:GetObject on the objects under blobs/ of the payloads bucket only: detached payloads are named by their content hash, blobs/<sha256>, unknown at deploy time.")
	suppressObjectPrefix(j.Role, "ArchiveBucket", "archive", "s3:PutObject and s3:GetObject(Version) on the objects under archive/ of the archive bucket only: one object per ended case, archive/v1/<tenant>/<case>.json.")

	objects := buckets.Archive.ArnForObjects(jsii.String("*"))
	buckets.Archive.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyTheArchiverWrites"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings(archiveWrites...),
		Resources:  &[]*string{objects},
		Conditions: &map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": j.Role.RoleArn()}},
	}))
	buckets.Archive.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("NobodyRewritesOrDeletes"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings(archiveRewrites...),
		Resources:  &[]*string{objects},
	}))
	return j
}
