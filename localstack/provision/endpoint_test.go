package provision

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/stack"
)

// TestEndpoint deploys the synthesized KNHK stack onto a fresh local
// endpoint and proves the behaviours the product relies on.
func TestEndpoint(t *testing.T) {
	path, err := TemplatePath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stack template %s not found: run `make synth`", path)
	}
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := DeployFile(ctx, cfg, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	outs := first.Outputs
	for _, k := range []string{stack.OutReceiptsTable, stack.OutReceiptsStreamArn, stack.OutStateTable, stack.OutWorkQueueURL,
		stack.OutWorkQueueArn, stack.OutDeadLetterURL, stack.OutAlertsTopicArn, stack.OutCheckpointKeyID, stack.OutDataKeyArn} {
		if outs[k] == "" {
			t.Errorf("output %s missing; omitted: %v", k, first.OmittedOutputs)
		}
	}
	ddb := dynamodb.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)
	k := kms.NewFromConfig(cfg)

	t.Run("deployed as the template says", func(t *testing.T) {
		tbl, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(outs[stack.OutReceiptsTable])})
		if err != nil {
			t.Fatal(err)
		}
		if s := tbl.Table.StreamSpecification; s == nil || s.StreamViewType != ddbtypes.StreamViewTypeNewAndOldImages {
			t.Errorf("receipts stream %+v", s)
		}
		if aws.ToString(tbl.Table.LatestStreamArn) != outs[stack.OutReceiptsStreamArn] {
			t.Errorf("stream output %s, table says %s", outs[stack.OutReceiptsStreamArn], aws.ToString(tbl.Table.LatestStreamArn))
		}
		if sse := tbl.Table.SSEDescription; sse == nil || aws.ToString(sse.KMSMasterKeyArn) != outs[stack.OutDataKeyArn] {
			t.Errorf("receipts SSE %+v, want the data key %s", sse, outs[stack.OutDataKeyArn])
		}
		st, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(outs[stack.OutStateTable])})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(st.Table.GlobalSecondaryIndexes[0].IndexName) != "gsi1" {
			t.Errorf("state GSIs %+v", st.Table.GlobalSecondaryIndexes)
		}
		ttl, err := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(outs[stack.OutStateTable])})
		if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expiresAt" {
			t.Errorf("state TTL %+v, %v", ttl, err)
		}
		for _, tn := range []string{outs[stack.OutReceiptsTable], outs[stack.OutStateTable]} {
			b, err := ddb.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(tn)})
			if err != nil || b.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus != ddbtypes.PointInTimeRecoveryStatusEnabled {
				t.Errorf("%s PITR %+v, %v", tn, b, err)
			}
		}
		wq := queueAttrs(t, q, outs[stack.OutWorkQueueURL])
		if wq["KmsMasterKeyId"] != outs[stack.OutDataKeyArn] || wq["Policy"] == "" || wq["RedrivePolicy"] == "" {
			t.Errorf("work queue attributes %v", wq)
		}
		dq := queueAttrs(t, q, outs[stack.OutDeadLetterURL])
		if dq["MessageRetentionPeriod"] != "1209600" || dq["KmsMasterKeyId"] != outs[stack.OutDataKeyArn] {
			t.Errorf("dead-letter queue attributes %v", dq)
		}
		ta, err := sns.NewFromConfig(cfg).GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(outs[stack.OutAlertsTopicArn])})
		if err != nil || ta.Attributes["KmsMasterKeyId"] != outs[stack.OutDataKeyArn] {
			t.Errorf("topic attributes %v, %v", ta, err)
		}
		dk, err := k.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(outs[stack.OutDataKeyArn])})
		if err != nil || !dk.KeyRotationEnabled {
			t.Errorf("data key rotation %+v, %v", dk, err)
		}
		ck, err := k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/knhk/checkpoint")})
		if err != nil || aws.ToString(ck.KeyMetadata.KeyId) != outs[stack.OutCheckpointKeyID] ||
			ck.KeyMetadata.KeySpec != kmstypes.KeySpecEccNistP256 || ck.KeyMetadata.KeyUsage != kmstypes.KeyUsageTypeSignVerify {
			t.Errorf("checkpoint key via alias %+v, %v", ck, err)
		}
	})

	t.Run("conditional put succeeds once", func(t *testing.T) {
		put := func() error {
			_, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{
				TableName: aws.String(outs[stack.OutReceiptsTable]),
				Item: map[string]ddbtypes.AttributeValue{
					"caseId": &ddbtypes.AttributeValueMemberS{Value: "case-cond"},
					"seq":    &ddbtypes.AttributeValueMemberN{Value: "0"},
				},
				ConditionExpression: aws.String("attribute_not_exists(caseId) AND attribute_not_exists(seq)"),
			})
			return err
		}
		if err := put(); err != nil {
			t.Fatalf("first put: %v", err)
		}
		var ccf *ddbtypes.ConditionalCheckFailedException
		if err := put(); !errors.As(err, &ccf) {
			t.Fatalf("second put: %v, want ConditionalCheckFailedException", err)
		}
	})

	t.Run("stream yields insert modify remove with images", func(t *testing.T) {
		testStream(t, ctx, cfg, ddb, outs)
	})

	t.Run("redrive to dead-letter queue", func(t *testing.T) {
		var redrive struct {
			MaxReceiveCount json.Number `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(queueAttrs(t, q, outs[stack.OutWorkQueueURL])["RedrivePolicy"]), &redrive); err != nil {
			t.Fatal(err)
		}
		max, err := strconv.Atoi(redrive.MaxReceiveCount.String())
		if err != nil || max < 1 {
			t.Fatalf("maxReceiveCount %q", redrive.MaxReceiveCount)
		}
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), MessageBody: aws.String("poison")}); err != nil {
			t.Fatal(err)
		}
		received := 0
		for range max + 3 {
			out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Messages) == 0 {
				break
			}
			received++
			// Fail the message: make it visible again at once.
			if _, err := q.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), ReceiptHandle: out.Messages[0].ReceiptHandle, VisibilityTimeout: 0,
			}); err != nil {
				t.Fatal(err)
			}
		}
		if received != max {
			t.Errorf("work queue delivered the message %d times, want maxReceiveCount=%d", received, max)
		}
		dl, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outs[stack.OutDeadLetterURL]), MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(dl.Messages) != 1 || aws.ToString(dl.Messages[0].Body) != "poison" {
			t.Fatalf("dead-letter queue holds %+v, want the poison message", dl.Messages)
		}
	})

	t.Run("checkpoint key signs and verifies", func(t *testing.T) {
		// RAW: KMS hashes the message with SHA-256 and signs the digest. (The
		// local endpoint does not implement MessageType DIGEST.)
		msg := []byte("merkle-root-over-chain-heads")
		digest := sha256.Sum256(msg)
		sig, err := k.Sign(ctx, &kms.SignInput{KeyId: aws.String(outs[stack.OutCheckpointKeyID]), Message: msg,
			MessageType: kmstypes.MessageTypeRaw, SigningAlgorithm: kmstypes.SigningAlgorithmSpecEcdsaSha256})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := k.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(outs[stack.OutCheckpointKeyID]), Message: msg, Signature: sig.Signature,
			MessageType: kmstypes.MessageTypeRaw, SigningAlgorithm: kmstypes.SigningAlgorithmSpecEcdsaSha256})
		if err != nil || !ok.SignatureValid {
			t.Fatalf("KMS verify: %+v, %v", ok, err)
		}
		pub, err := k.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(outs[stack.OutCheckpointKeyID])})
		if err != nil {
			t.Fatal(err)
		}
		key, err := x509.ParsePKIXPublicKey(pub.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ec, isEC := key.(*ecdsa.PublicKey)
		if !isEC {
			t.Fatalf("public key is %T, want ECDSA", key)
		}
		if !ecdsa.VerifyASN1(ec, digest[:], sig.Signature) {
			t.Fatal("crypto/ecdsa rejects the KMS signature")
		}
		other := sha256.Sum256([]byte("tampered"))
		if ecdsa.VerifyASN1(ec, other[:], sig.Signature) {
			t.Fatal("signature verifies for another message")
		}
	})

	t.Run("buckets encrypted with the data key, versioned, with lifecycle", func(t *testing.T) {
		c := objects.NewClient(cfg)
		for _, b := range []struct {
			out       string
			versioned bool
			// expires is the key prefix of the one expiring rule ("": all).
			expires string
		}{{stack.OutChargebackBucket, true, ""}, {stack.OutPayloadBucket, false, "inputs/"}} {
			name := outs[b.out]
			if name == "" {
				t.Fatalf("output %s missing", b.out)
			}
			enc, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			def := enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault
			if def.SSEAlgorithm != s3types.ServerSideEncryptionAwsKms || aws.ToString(def.KMSMasterKeyID) != outs[stack.OutDataKeyArn] {
				t.Errorf("%s encryption %s %s, want aws:kms with the data key", name, def.SSEAlgorithm, aws.ToString(def.KMSMasterKeyID))
			}
			v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(name)})
			if err != nil || (v.Status == s3types.BucketVersioningStatusEnabled) != b.versioned {
				t.Errorf("%s versioning %q %v, want versioned %v", name, v.Status, err, b.versioned)
			}
			lc, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(name)})
			if err != nil {
				t.Fatalf("%s lifecycle: %v", name, err)
			}
			// Only inputs/ of the payloads bucket expires: detached payloads
			// under blobs/ are kept.
			var expiring []string
			for _, r := range lc.Rules {
				if r.Expiration != nil && aws.ToInt32(r.Expiration.Days) >= 1 {
					prefix := aws.ToString(r.Prefix)
					if r.Filter != nil && r.Filter.Prefix != nil {
						prefix = aws.ToString(r.Filter.Prefix)
					}
					expiring = append(expiring, prefix)
				}
			}
			if len(expiring) != 1 || expiring[0] != b.expires {
				t.Errorf("%s expiring rules on prefixes %q, want one on %q", name, expiring, b.expires)
			}
			pab, err := c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(name)})
			if err != nil || !aws.ToBool(pab.PublicAccessBlockConfiguration.BlockPublicPolicy) || !aws.ToBool(pab.PublicAccessBlockConfiguration.RestrictPublicBuckets) {
				t.Errorf("%s public access block %+v %v", name, pab, err)
			}
			if err := objects.New(c, name).Put(ctx, "probe", "text/plain", []byte("x")); err != nil {
				t.Errorf("%s refuses a put: %v", name, err)
			}
		}
	})

	t.Run("archive bucket under Object Lock", func(t *testing.T) {
		c := objects.NewClient(cfg)
		name := outs[stack.OutArchiveBucket]
		lc, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		r := lc.ObjectLockConfiguration.Rule
		if lc.ObjectLockConfiguration.ObjectLockEnabled != s3types.ObjectLockEnabledEnabled || r == nil || r.DefaultRetention == nil ||
			r.DefaultRetention.Mode != s3types.ObjectLockRetentionModeGovernance || aws.ToInt32(r.DefaultRetention.Days) != 2557 {
			t.Fatalf("object lock %+v", lc.ObjectLockConfiguration)
		}
		b := objects.NewVersioned(c, name)
		v, err := b.Put(ctx, "archive/probe.json", "application/json", []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: aws.String("archive/probe.json"), VersionId: aws.String(v)}); err == nil {
			t.Fatal("a locked version was deleted")
		}
	})

	t.Run("second deploy changes nothing", func(t *testing.T) {
		again, err := DeployFile(ctx, cfg, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if again.Changed() {
			t.Errorf("second deploy changed resources: %+v", again.Results)
		}
		if !reflect.DeepEqual(again.Outputs, outs) {
			t.Errorf("outputs changed:\n%v\n%v", again.Outputs, outs)
		}
		if !reflect.DeepEqual(again.Resources, first.Resources) {
			t.Errorf("logical to physical map changed")
		}
	})

	t.Run("DeployForTest", func(t *testing.T) {
		if got := DeployForTest(t, ep); !reflect.DeepEqual(got, outs) {
			t.Errorf("DeployForTest outputs %v, want %v", got, outs)
		}
	})
}

func queueAttrs(t *testing.T, q *sqs.Client, url string) map[string]string {
	t.Helper()
	out, err := q.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes
}

func testStream(t *testing.T, ctx context.Context, cfg aws.Config, ddb *dynamodb.Client, outs Outputs) {
	table := aws.String(outs[stack.OutReceiptsTable])
	key := map[string]ddbtypes.AttributeValue{
		"caseId": &ddbtypes.AttributeValueMemberS{Value: "case-stream"},
		"seq":    &ddbtypes.AttributeValueMemberN{Value: "1"},
	}
	item := func(hash string) map[string]ddbtypes.AttributeValue {
		m := map[string]ddbtypes.AttributeValue{"hash": &ddbtypes.AttributeValueMemberS{Value: hash}}
		for k, v := range key {
			m[k] = v
		}
		return m
	}
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: item("h1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: item("h2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: key}); err != nil {
		t.Fatal(err)
	}

	st := dynamodbstreams.NewFromConfig(cfg)
	desc, err := st.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(outs[stack.OutReceiptsStreamArn])})
	if err != nil {
		t.Fatal(err)
	}
	if desc.StreamDescription.StreamViewType != streamtypes.StreamViewTypeNewAndOldImages {
		t.Errorf("stream view %s", desc.StreamDescription.StreamViewType)
	}
	var records []streamtypes.Record
	for _, sh := range desc.StreamDescription.Shards {
		it, err := st.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: aws.String(outs[stack.OutReceiptsStreamArn]), ShardId: sh.ShardId, ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for range 10 {
			if iter == nil {
				break
			}
			out, err := st.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			records = append(records, out.Records...)
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	var mine []streamtypes.Record
	for _, r := range records {
		if s, ok := r.Dynamodb.Keys["caseId"].(*streamtypes.AttributeValueMemberS); ok && s.Value == "case-stream" {
			mine = append(mine, r)
		}
	}
	if len(mine) != 3 {
		t.Fatalf("%d stream records for the case, want 3: %+v", len(mine), mine)
	}
	hashOf := func(img map[string]streamtypes.AttributeValue) string {
		if s, ok := img["hash"].(*streamtypes.AttributeValueMemberS); ok {
			return s.Value
		}
		return ""
	}
	want := []struct {
		event    streamtypes.OperationType
		old, new string
	}{
		{streamtypes.OperationTypeInsert, "", "h1"},
		{streamtypes.OperationTypeModify, "h1", "h2"},
		{streamtypes.OperationTypeRemove, "h2", ""},
	}
	for i, w := range want {
		r := mine[i]
		if r.EventName != w.event || hashOf(r.Dynamodb.OldImage) != w.old || hashOf(r.Dynamodb.NewImage) != w.new {
			t.Errorf("record %d: %s old=%q new=%q, want %s old=%q new=%q", i, r.EventName,
				hashOf(r.Dynamodb.OldImage), hashOf(r.Dynamodb.NewImage), w.event, w.old, w.new)
		}
	}
}
