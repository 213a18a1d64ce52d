package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/stack"
)

// resourcesOf returns the template's resources whose logical id starts with
// prefix and whose type is typ, by logical id.
func resourcesOf(res map[string]any, typ, prefix string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range res {
		r := r.(map[string]any)
		if r["Type"] == typ && strings.HasPrefix(id, prefix) {
			p, _ := r["Properties"].(map[string]any)
			out[id] = p
		}
	}
	return out
}

func only(t *testing.T, m map[string]map[string]any, what string) (string, map[string]any) {
	t.Helper()
	if len(m) != 1 {
		t.Fatalf("%d %s, want 1", len(m), what)
	}
	for id, p := range m {
		return id, p
	}
	return "", nil
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestBuckets: the chargeback and payloads buckets are encrypted with the
// data key, closed to the public, log their access to the access-logs
// bucket and deny every request not made over TLS; chargeback exports are
// versioned and expire after chargebackExpireDays; inputs sent by reference
// (inputs/) expire after the dead-letter queue's retention plus a margin,
// while detached payloads (blobs/) are under no expiring rule; both abort
// incomplete uploads after a day.
// bucketsContext is the context of the stack the bucket tests synthesize.
var bucketsContext = map[string]any{stackconfig.CtxChargebackExpireDays: "400", stackconfig.CtxCostEvery: "6",
	stackconfig.CtxCostConfig: map[string]any{"budgets": map[string]any{"acme": "250"}}}

func TestBuckets(t *testing.T) {
	s := synth(t, "buckets", bucketsContext)
	res := templateJSON(t, s)["Resources"].(map[string]any)
	_, dlq := only(t, resourcesOf(res, "AWS::SQS::Queue", "DeadLetterQueue"), "dead-letter queues")
	if dlq["MessageRetentionPeriod"] != float64(DeadLetterRetentionDays*86400) || PayloadExpireDays <= DeadLetterRetentionDays {
		t.Fatalf("dead-letter retention %v s, payloads expire after %d days", dlq["MessageRetentionPeriod"], PayloadExpireDays)
	}
	logsID, _ := only(t, resourcesOf(res, "AWS::S3::Bucket", "AccessLogsBucket"), "access-log buckets")
	for prefix, want := range map[string]struct {
		days      float64
		versioned bool
		// rules are the lifecycle rules, compacted.
		rules string
	}{
		"ChargebackBucket": {400, true, `[{"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1},"ExpirationInDays":400,"Id":"ExpireChargebackExports","NoncurrentVersionExpiration":{"NoncurrentDays":400},"Status":"Enabled"}]`},
		"PayloadBucket": {PayloadExpireDays, false, fmt.Sprintf(`[{"ExpirationInDays":%d,"Id":"ExpireInputs","Prefix":"inputs/","Status":"Enabled"},`+
			`{"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1},"Id":"AbortIncompleteUploads","Status":"Enabled"}]`, PayloadExpireDays)},
	} {
		id, p := only(t, resourcesOf(res, "AWS::S3::Bucket", prefix), prefix)
		enc := compact(p["BucketEncryption"])
		if !strings.Contains(enc, `"SSEAlgorithm":"aws:kms"`) || !strings.Contains(enc, `"KMSMasterKeyID":{"Fn::GetAtt":["DataKey`) {
			t.Errorf("%s encryption %s, want the data key", id, enc)
		}
		if compact(p["PublicAccessBlockConfiguration"]) != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` {
			t.Errorf("%s public access %v", id, p["PublicAccessBlockConfiguration"])
		}
		if compact(p["LoggingConfiguration"].(map[string]any)["DestinationBucketName"]) != `{"Ref":"`+logsID+`"}` {
			t.Errorf("%s logs to %v", id, p["LoggingConfiguration"])
		}
		if rules := compact(p["LifecycleConfiguration"].(map[string]any)["Rules"]); rules != want.rules {
			t.Errorf("%s lifecycle %s, want %s", id, rules, want.rules)
		}
		if versioned := compact(p["VersioningConfiguration"]) == `{"Status":"Enabled"}`; versioned != want.versioned {
			t.Errorf("%s versioning %v, want versioned %v", id, p["VersioningConfiguration"], want.versioned)
		}
		found := false
		for pid, pol := range resourcesOf(res, "AWS::S3::BucketPolicy", prefix) {
			if compact(pol["Bucket"]) != `{"Ref":"`+id+`"}` {
				continue
			}
			for _, st := range pol["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := compact(st)
				found = found || (strings.Contains(st, `"Effect":"Deny"`) && strings.Contains(st, `"Action":"s3:*"`) &&
					strings.Contains(st, `"aws:SecureTransport":"false"`) && strings.Contains(st, `"/*"`))
			}
			if !found {
				t.Errorf("%s: %s has no TLS-only deny on the bucket and its objects", id, pid)
			}
		}
		if !found {
			t.Errorf("%s has no bucket policy", id)
		}
	}
}

// TestBucketGrants: the executor may only read inputs/ of the payloads
// bucket and write and read its blobs/ (and is told its name); the archiver
// may only write and read archive/ of the archive bucket and read blobs/ of
// the payloads bucket; the cost job may only write chargeback/ of
// the chargeback bucket, reads the receipts by Scan only, and reaches
// neither the checkpoints nor the signing key nor the work queue; no other
// role has any S3 action; the cost job runs every costEvery hours.
func TestBucketGrants(t *testing.T) {
	s := synth(t, "buckets", bucketsContext)
	res := templateJSON(t, s)["Resources"].(map[string]any)
	payloadID, _ := only(t, resourcesOf(res, "AWS::S3::Bucket", "PayloadBucket"), "payload buckets")
	chargebackID, _ := only(t, resourcesOf(res, "AWS::S3::Bucket", "ChargebackBucket"), "chargeback buckets")
	archiveID, _ := only(t, resourcesOf(res, "AWS::S3::Bucket", "ArchiveBucket"), "archive buckets")
	for id, p := range resourcesOf(res, "AWS::IAM::Policy", "") {
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			acts := compact(st["Action"])
			if !strings.Contains(acts, "s3:") {
				continue
			}
			r := compact(st["Resource"])
			switch {
			case strings.HasPrefix(id, "ExecutorRole"):
				inputs := acts == `"s3:GetObject"` && strings.Contains(r, `/inputs/*`)
				blobs := acts == `["s3:PutObject","s3:GetObject"]` && strings.Contains(r, `/blobs/*`)
				if !(inputs || blobs) || !strings.Contains(r, payloadID) {
					t.Errorf("executor S3 grant %s on %s, want s3:GetObject on %s/inputs/* or put and get on %[3]s/blobs/*", acts, r, payloadID)
				}
			case strings.HasPrefix(id, "ArchiverRole"):
				archived := acts == `["s3:PutObject","s3:GetObject","s3:GetObjectVersion"]` && strings.Contains(r, archiveID) && strings.Contains(r, `/archive/*`)
				blobs := acts == `"s3:GetObject"` && strings.Contains(r, payloadID) && strings.Contains(r, `/blobs/*`)
				if !archived && !blobs {
					t.Errorf("archiver S3 grant %s on %s, want put and get on %s/archive/* or s3:GetObject on %s/blobs/*", acts, r, archiveID, payloadID)
				}
			case strings.HasPrefix(id, "CostRole"):
				if acts != `"s3:PutObject"` || !strings.Contains(r, chargebackID) || !strings.Contains(r, `/chargeback/*`) {
					t.Errorf("cost S3 grant %s on %s, want s3:PutObject on %s/chargeback/*", acts, r, chargebackID)
				}
			default:
				t.Errorf("%s has S3 actions %s on %s", id, acts, r)
			}
		}
		if strings.HasPrefix(id, "CostRole") {
			b := compact(p)
			for _, other := range []string{"CheckpointsTable", "kms:Sign", "sqs:", payloadID} {
				if strings.Contains(b, other) {
					t.Errorf("cost role policy reaches %s: %s", other, b)
				}
			}
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				if strings.Contains(compact(st["Resource"]), "ReceiptsTable") && compact(st["Action"]) != `"dynamodb:Scan"` {
					t.Errorf("cost role on the receipts table: %v", st["Action"])
				}
			}
		}
	}
	_, exec := only(t, resourcesOf(res, "AWS::Lambda::Function", "Executor"), "executors")
	if compact(exec["Environment"].(map[string]any)["Variables"].(map[string]any)[stack.EnvName(stack.OutPayloadBucket)]) != `{"Ref":"`+payloadID+`"}` {
		t.Errorf("executor environment lacks %s", stack.EnvName(stack.OutPayloadBucket))
	}
	_, cost := only(t, resourcesOf(res, "AWS::Lambda::Function", "Cost"), "cost functions")
	if compact(cost["Environment"].(map[string]any)["Variables"].(map[string]any)[stack.EnvName(stack.OutChargebackBucket)]) != `{"Ref":"`+chargebackID+`"}` {
		t.Errorf("cost environment lacks %s", stack.EnvName(stack.OutChargebackBucket))
	}
	if got := cost["Environment"].(map[string]any)["Variables"].(map[string]any)[costjob.EnvConfig]; got != `{"budgets":{"acme":"250"}}` {
		t.Errorf("cost environment %s = %v, want the context's budgets", costjob.EnvConfig, got)
	}
	_, rule := only(t, resourcesOf(res, "AWS::Events::Rule", "CostSchedule"), "cost schedules")
	if rule["ScheduleExpression"] != "rate(6 hours)" {
		t.Errorf("cost schedule %v, want rate(6 hours)", rule["ScheduleExpression"])
	}
	outs := templateJSON(t, s)["Outputs"].(map[string]any)
	for _, o := range []string{stack.OutChargebackBucket, stack.OutPayloadBucket, OutCostFunction} {
		if outs[o] == nil {
			t.Errorf("no output %s", o)
		}
	}
}

// TestCostJobGrants pins the cost job's role: exactly what docs/cost.md
// lists, cloudwatch:GetMetricStatistics (no resource-level permission) for
// the polling of the work queue, whose name the job is told.
func TestCostJobGrants(t *testing.T) {
	s := synth(t, "buckets", bucketsContext)
	tmpl := templateJSON(t, s)
	res := tmpl["Resources"].(map[string]any)
	costID, cost := only(t, resourcesOf(res, "AWS::Lambda::Function", "Cost"), "cost functions")
	chargebackID, _ := only(t, resourcesOf(res, "AWS::S3::Bucket", "ChargebackBucket"), "chargeback buckets")
	receiptsID, _ := only(t, resourcesOf(res, "AWS::DynamoDB::Table", "ReceiptsTable"), "receipts tables")
	stateID, _ := only(t, resourcesOf(res, "AWS::DynamoDB::Table", "StateTable"), "state tables")
	topicID, _ := only(t, resourcesOf(res, "AWS::SNS::Topic", "AlertsTopic"), "alerts topics")
	keyID, _ := only(t, resourcesOf(res, "AWS::KMS::Key", "DataKey"), "data keys")
	logsID, _ := only(t, resourcesOf(res, "AWS::Logs::LogGroup", "CostLogGroup"), "cost log groups")
	workID, _ := only(t, resourcesOf(res, "AWS::SQS::Queue", "WorkQueue"), "work queues")
	state := getAtt(stateID, "Arn")
	diffGrants(t, "cost job", grants(t, tmpl, costID), expectGrants(map[string][]any{
		"xray:PutTraceSegments":          {"*"},
		"xray:PutTelemetryRecords":       {"*"},
		"cloudwatch:GetMetricStatistics": {"*"},
		"logs:CreateLogStream":           {getAtt(logsID, "Arn")},
		"logs:PutLogEvents":              {getAtt(logsID, "Arn")},
		"dynamodb:Scan":                  {getAtt(receiptsID, "Arn")},
		"dynamodb:GetItem":               {state},
		"dynamodb:Query":                 {state},
		"dynamodb:PutItem":               {state},
		"dynamodb:UpdateItem":            {state},
		"dynamodb:DeleteItem":            {state},
		"sns:Publish":                    {ref(topicID)},
		"s3:PutObject":                   {map[string]any{"Fn::Join": []any{"", []any{getAtt(chargebackID, "Arn"), "/chargeback/*"}}}},
		"kms:Decrypt":                    {getAtt(keyID, "Arn")},
		"kms:GenerateDataKey":            {getAtt(keyID, "Arn")},
	}))
	vars := cost["Environment"].(map[string]any)["Variables"].(map[string]any)
	if got := compact(vars[costjob.EnvPolledQueues]); got != `{"Fn::GetAtt":["`+workID+`","QueueName"]}` {
		t.Errorf("cost environment %s = %s, want the work queue's name", costjob.EnvPolledQueues, got)
	}
}
