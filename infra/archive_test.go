package main

import (
	"slices"
	"strings"
	"testing"
)

// TestArchiveBucket pins the archive bucket: Object Lock with a default
// retention (compliance for 7 years in prod, governance in a local stack,
// from context otherwise), versioning, the data key, retained with the
// stack; its policy denies non-TLS access, object writes by any principal
// but the archiver's role, and version deletion or retention bypass to
// everyone.
func TestArchiveBucket(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		days       float64
		ctx        map[string]any
	}{
		{"prod", "COMPLIANCE", 2557, map[string]any{}},
		{"local", "GOVERNANCE", 2557, map[string]any{"env": "local"}},
		{"from context", "COMPLIANCE", 3653, map[string]any{"env": "dev", "archiveLockMode": "compliance", "archiveRetentionDays": "3653"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := synth(t, "archive-"+tc.name, tc.ctx)
			tmpl := templateJSON(t, s)
			res := tmpl["Resources"].(map[string]any)
			id, b := only(t, resourcesOf(res, "AWS::S3::Bucket", "ArchiveBucket"), "archive buckets")
			if got := compact(b["ObjectLockEnabled"]); got != "true" {
				t.Errorf("ObjectLockEnabled %s", got)
			}
			want := `{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Days":` + compact(tc.days) + `,"Mode":"` + tc.mode + `"}}}`
			if got := compact(b["ObjectLockConfiguration"]); got != want {
				t.Errorf("ObjectLockConfiguration %s, want %s", got, want)
			}
			if got := compact(b["VersioningConfiguration"]); got != `{"Status":"Enabled"}` {
				t.Errorf("versioning %s", got)
			}
			enc := compact(b["BucketEncryption"])
			if !strings.Contains(enc, `"SSEAlgorithm":"aws:kms"`) || !strings.Contains(enc, "DataKey") || !strings.Contains(enc, `"BucketKeyEnabled":true`) {
				t.Errorf("encryption %s", enc)
			}
			if r := res[id].(map[string]any); r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("deletion policy %v / %v, want Retain", r["DeletionPolicy"], r["UpdateReplacePolicy"])
			}
			if got := compact(b["PublicAccessBlockConfiguration"]); got != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` {
				t.Errorf("public access block %s", got)
			}
			_, pol := only(t, resourcesOf(res, "AWS::S3::BucketPolicy", "ArchiveBucketPolicy"), "archive bucket policies")
			roleID, _ := only(t, resourcesOf(res, "AWS::IAM::Role", "ArchiverRole"), "archiver roles")
			bySid := map[string]map[string]any{}
			tls := false
			for _, st := range pol["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				if sid, ok := st["Sid"].(string); ok {
					bySid[sid] = st
				}
				if compact(st["Condition"]) == `{"Bool":{"aws:SecureTransport":"false"}}` && st["Effect"] == "Deny" {
					tls = true
				}
			}
			if !tls {
				t.Error("no TLS-only statement")
			}
			w := bySid["OnlyTheArchiverWrites"]
			if w == nil || w["Effect"] != "Deny" || compact(w["Principal"]) != `{"AWS":"*"}` || compact(w["Action"]) != `["s3:PutObject","s3:PutObjectRetention"]` ||
				compact(w["Condition"]) != `{"ArnNotEquals":{"aws:PrincipalArn":{"Fn::GetAtt":["`+roleID+`","Arn"]}}}` {
				t.Errorf("OnlyTheArchiverWrites: %s", compact(w))
			}
			d := bySid["NobodyRewritesOrDeletes"]
			if d == nil || d["Effect"] != "Deny" || compact(d["Principal"]) != `{"AWS":"*"}` || d["Condition"] != nil {
				t.Errorf("NobodyRewritesOrDeletes: %s", compact(d))
			}
			for _, a := range []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"} {
				if !strings.Contains(compact(d["Action"]), `"`+a+`"`) {
					t.Errorf("NobodyRewritesOrDeletes does not deny %s", a)
				}
			}
		})
	}
}

// TestArchiver pins the archiver: scheduled every archiveEveryMinutes, told
// the archive and payloads buckets and the receipts' retention; the receipts table expires items
// by expiresAt; the archiver's role may update receipt items only in their
// key and expiresAt, and is the only role with a receipts UpdateItem; it
// may query the state table's index (the refused cases due for a retry)
// and not the table itself.
func TestArchiver(t *testing.T) {
	s := synth(t, "archiver", map[string]any{"receiptRetentionDays": "45", "archiveEveryMinutes": "20"})
	res := templateJSON(t, s)["Resources"].(map[string]any)
	_, fn := only(t, resourcesOf(res, "AWS::Lambda::Function", "Archiver"), "archiver functions")
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	if env["KNHK_RECEIPT_RETENTION_DAYS"] != "45" || !strings.Contains(compact(env["KNHK_ARCHIVE_BUCKET"]), "ArchiveBucket") ||
		!strings.Contains(compact(env["KNHK_PAYLOAD_BUCKET"]), "PayloadBucket") {
		t.Errorf("archiver environment %s", compact(env))
	}
	_, rule := only(t, resourcesOf(res, "AWS::Events::Rule", "ArchiverSchedule"), "archiver schedules")
	if rule["ScheduleExpression"] != "rate(20 minutes)" {
		t.Errorf("schedule %v", rule["ScheduleExpression"])
	}
	receiptsID, tbl := only(t, resourcesOf(res, "AWS::DynamoDB::Table", "ReceiptsTable"), "receipts tables")
	if got := compact(tbl["TimeToLiveSpecification"]); got != `{"AttributeName":"expiresAt","Enabled":true}` {
		t.Errorf("receipts TTL %s", got)
	}
	stateID, _ := only(t, resourcesOf(res, "AWS::DynamoDB::Table", "StateTable"), "state tables")
	var stateQueries []string
	for id, p := range resourcesOf(res, "AWS::IAM::Policy", "") {
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			acts := compact(st["Action"])
			if r := compact(st["Resource"]); strings.HasPrefix(id, "ArchiverRole") && strings.Contains(acts, "dynamodb:Query") && strings.Contains(r, stateID) {
				stateQueries = append(stateQueries, r)
			}
			if !strings.Contains(acts, "dynamodb:UpdateItem") || !strings.Contains(compact(st["Resource"]), receiptsID) {
				continue
			}
			cond := compact(st["Condition"])
			if !strings.HasPrefix(id, "ArchiverRole") || cond != `{"ForAllValues:StringEquals":{"dynamodb:Attributes":["caseId","seq","expiresAt"]}}` {
				t.Errorf("%s may update receipt items (%s, condition %s)", id, acts, cond)
			}
		}
	}
	if len(stateQueries) != 1 || !strings.Contains(stateQueries[0], "/index/"+StateIndexName) {
		t.Errorf("archiver queries on the state table %v, want its index %s only", stateQueries, StateIndexName)
	}
	if got := FunctionNames(); !slices.Contains(got, ArchiverName) {
		t.Errorf("function names %v lack the archiver", got)
	}
}
