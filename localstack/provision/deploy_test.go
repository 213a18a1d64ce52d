package provision

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/localaws"
)

// TestDeployFeatures provisions a template that uses conditions, Fn::Sub
// and Fn::Join names, a FIFO queue and types the provisioner does not honour.
func TestDeployFeatures(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := Options{OutputsFile: filepath.Join(dir, "outputs.json"), StateFile: filepath.Join(dir, "state.json")}
	d, err := DeployFile(ctx, cfg, "testdata/features.template.json", opts)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stack != "features" {
		t.Errorf("stack name %q, want it from the file name", d.Stack)
	}
	byID := map[string]Result{}
	for _, r := range d.Results {
		byID[r.LogicalID] = r
	}
	expect := map[string]Action{"Orders": Created, "Audit": Created, "SignKey": Created, "OtherKey": Created, "SignAlias": Created, "Events": Created, "OnlyElsewhere": Skipped, "Fn": Skipped, "FnMapping": Skipped, "AfterFn": Skipped,
		"IfNotFn": Created, "NeedsFn": Skipped}
	for id, want := range expect {
		if got := byID[id].Action; got != want {
			t.Errorf("%s: %s, want %s (%s)", id, got, want, byID[id].Reason)
		}
	}
	if r := byID["FnMapping"].Reason; !strings.Contains(r, "local Lambda service") {
		t.Errorf("FnMapping reason %q, want the Lambda family's reason", r)
	}
	if r := byID["NeedsFn"].Reason; !strings.Contains(r, "Ref Fn") {
		t.Errorf("NeedsFn reason %q, want the reference to Fn named", r)
	}
	if r := byID["AfterFn"].Reason; !strings.Contains(r, "depends on Fn") {
		t.Errorf("AfterFn reason %q, want it to name the skipped dependency", r)
	}
	if r := byID["Audit"].Reason; !strings.Contains(r, "UnknownFutureProperty") {
		t.Errorf("Audit reason %q, want the unapplied property listed", r)
	}
	if d.Outputs["AuditName"] != "audit-dev" || d.Outputs["OrdersName"] != "orders-dev.fifo" {
		t.Errorf("outputs %v", d.Outputs)
	}
	if _, ok := d.Outputs["FnName"]; ok {
		t.Errorf("output of a skipped resource was written")
	}
	if _, ok := d.OmittedOutputs["FnName"]; !ok {
		t.Errorf("omitted outputs %v: want FnName with a reason", d.OmittedOutputs)
	}
	if _, ok := d.OmittedOutputs["Elsewhere"]; !ok {
		t.Errorf("omitted outputs %v: want Elsewhere (condition false)", d.OmittedOutputs)
	}

	attrs, err := sqs.NewFromConfig(cfg).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(d.Outputs["OrdersUrl"]), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Attributes["FifoQueue"] != "true" || attrs.Attributes["VisibilityTimeout"] != "45" || attrs.Attributes["ContentBasedDeduplication"] != "true" {
		t.Errorf("queue attributes %v", attrs.Attributes)
	}

	var written Outputs
	b, err := os.ReadFile(opts.OutputsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &written); err != nil || !reflect.DeepEqual(written, d.Outputs) {
		t.Errorf("outputs file %s (err %v), want %v", b, err, d.Outputs)
	}
	var state Deployment
	b, err = os.ReadFile(opts.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &state); err != nil || state.Resources["Audit"].PhysicalID != "audit-dev" {
		t.Errorf("state file: %v, %+v", err, state.Resources)
	}

	again, err := DeployFile(ctx, cfg, "testdata/features.template.json", opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Errorf("second deploy changed resources: %+v", again.Results)
	}

	// Drift is converged: a changed attribute is set back and reported.
	if _, err := sqs.NewFromConfig(cfg).SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: aws.String(d.Outputs["OrdersUrl"]), Attributes: map[string]string{"VisibilityTimeout": "10"},
	}); err != nil {
		t.Fatal(err)
	}
	drifted, err := DeployFile(ctx, cfg, "testdata/features.template.json", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range drifted.Results {
		if r.LogicalID == "Orders" && r.Action != Updated {
			t.Errorf("drifted queue: %s, want updated", r.Action)
		}
	}

	// An alias pointed elsewhere is pointed back.
	k := kms.NewFromConfig(cfg)
	if _, err := k.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(d.Outputs["SignAlias"]), TargetKeyId: aws.String(d.Outputs["OtherKeyId"])}); err != nil {
		t.Fatal(err)
	}
	realigned, err := DeployFile(ctx, cfg, "testdata/features.template.json", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range realigned.Results {
		want := Kept
		if r.LogicalID == "SignAlias" {
			want = Updated
		}
		if r.Action != Skipped && r.Action != want {
			t.Errorf("after alias drift %s: %s, want %s", r.LogicalID, r.Action, want)
		}
	}
	key, err := k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(d.Outputs["SignAlias"])})
	if err != nil || aws.ToString(key.KeyMetadata.Arn) != d.Outputs["SignKeyArn"] || key.KeyMetadata.KeySpec != kmstypes.KeySpecEccNistP384 {
		t.Errorf("alias resolves to %+v (%v), want the P-384 signing key", key, err)
	}
	rot, err := k.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(d.Outputs["OtherKeyId"])})
	if err != nil || !rot.KeyRotationEnabled {
		t.Errorf("OtherKey rotation %+v, %v", rot, err)
	}
	ta, err := sns.NewFromConfig(cfg).GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(d.Outputs["EventsArn"])})
	if err != nil || ta.Attributes["FifoTopic"] != "true" || ta.Attributes["KmsMasterKeyId"] != d.Outputs["OtherKeyId"] || !strings.Contains(ta.Attributes["Policy"], "aws:SecureTransport") {
		t.Errorf("topic attributes %v, %v", ta, err)
	}
}

// TestDeployRefusesReplacement: a change that CloudFormation would solve by
// replacing the resource is an error locally, not a silent divergence.
func TestDeployRefusesReplacement(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/features.template.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DeployFile(ctx, cfg, "testdata/features.template.json", Options{StackName: "repl"}); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"key spec":     {`"ECC_NIST_P384"`, `"ECC_NIST_P256"`},
		"table schema": {`"AttributeName": "id"`, `"AttributeName": "pk"`},
	} {
		changed := strings.Replace(string(raw), edit[0], edit[1], 1)
		if changed == string(raw) {
			t.Fatalf("%s: edit %q not found in the template", name, edit[0])
		}
		path := filepath.Join(t.TempDir(), "features.template.json")
		if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := DeployFile(ctx, cfg, path, Options{StackName: "repl"}); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: err = %v, want a refused replacement", name, err)
		}
	}
}

func TestDeployParameterOverride(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DeployFile(ctx, cfg, "testdata/features.template.json", Options{StackName: "other", Parameters: map[string]string{"Suffix": "qa"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Outputs["AuditName"] != "audit-qa" {
		t.Errorf("AuditName %q, want audit-qa", d.Outputs["AuditName"])
	}
}
