package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/telemetry"
)

// coverage names, for every file under events/, the test that exercises
// it: a package folder (from the repository root) and a test function
// defined there. A directory entry ("events/inputs/") covers every file in
// it, for tests that load a whole folder.
var coverage = map[string][]string{
	"events/capacity/five-task-mix.json":           {"cmd/knhk", "TestCapacityHandComputation"},
	"events/dynamodb/":                             {"shared/verifier", "TestSampleEvents"},
	"events/inputs/":                               {"test/e2e", "TestSamplesComplete"},
	"events/workflows/":                            {"test/e2e", "TestSamplesComplete"},
	"events/sqs/start-payment.json":                {"shared/message", "TestDecodeSamples"},
	"events/sqs/start-by-reference.json":           {"test/e2e", "TestSQSSamplesThroughTheStack"},
	"events/sqs/start-claim.json":                  {"test/e2e", "TestSQSSamplesThroughTheStack"},
	"events/sqs/continue-timer.json":               {"test/e2e", "TestSQSSamplesThroughTheStack"},
	"events/sqs/continue-branch.json":              {"test/e2e", "TestSQSSamplesThroughTheStack"},
	"events/sqs/cloudevent-adjuster-decision.json": {"test/e2e", "TestSQSSamplesThroughTheStack"},
	"events/sqs/poison-unknown-workflow.json":      {"test/e2e", "TestSQSSamplesThroughTheStack"},
	"events/sqs/poison-not-json.txt":               {"test/e2e", "TestPoisonSampleRefused"},
	"events/sqs/start-latest.json":                 {"test/e2e", "TestReadmeRunsAsWritten"},
}

// TestEverySampleIsExercised fails when a file under events/ has no entry
// in coverage, when an entry names a file that no longer exists, or when
// the test it names is not defined in the package it names.
func TestEverySampleIsExercised(t *testing.T) {
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(filepath.Join(root, "events"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no samples under events/")
	}
	for _, f := range files {
		if _, ok := coveredBy(f); !ok {
			t.Errorf("%s is not exercised by any test: add it to coverage with the test that uses it", f)
		}
	}
	for entry, by := range coverage {
		if strings.HasSuffix(entry, "/") {
			if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, entry) }) {
				t.Errorf("coverage names %s, which holds no sample", entry)
			}
		} else if !slices.Contains(files, entry) {
			t.Errorf("coverage names %s, which does not exist", entry)
		}
		if !definesTest(t, filepath.Join(root, by[0]), by[1]) {
			t.Errorf("coverage says %s covers %s, but %s defines no such test", by[1], entry, by[0])
		}
	}
}

// coveredBy returns the coverage entry of a sample: its own, else its folder's.
func coveredBy(file string) ([]string, bool) {
	if by, ok := coverage[file]; ok {
		return by, true
	}
	by, ok := coverage[file[:strings.LastIndex(file, "/")+1]]
	return by, ok
}

// definesTest reports whether a _test.go file in dir declares func name.
func definesTest(t *testing.T, dir, name string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^func ` + regexp.QuoteMeta(name) + `\(t \*testing\.T\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if decl.Match(b) {
			return true
		}
	}
	return false
}

// TestPoisonSampleRefused: the truncated sample is refused by the message
// decoder with a specific error, the one the executor reports before it
// dead-letters the message.
func TestPoisonSampleRefused(t *testing.T) {
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(root, "events", "sqs", "poison-not-json.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Decode(body)
	if err == nil {
		t.Fatalf("Decode accepted the poison sample as %s", m.Kind())
	}
	var merr *message.Error
	if !errors.As(err, &merr) || !strings.Contains(merr.Msg, "not a JSON object") {
		t.Errorf("Decode error %v, want a message.Error saying the body is not a JSON object", err)
	}
}

func TestCoveredBy(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string
		ok   bool
	}{
		{"events/sqs/start-latest.json", "TestReadmeRunsAsWritten", true},
		{"events/sqs/continue-timer.json", "TestSQSSamplesThroughTheStack", true},
		{"events/sqs/new-message.json", "", false},
		{"events/inputs/insurance-claim.json", "TestSamplesComplete", true},
		{"events/new-kind/sample.json", "", false},
		{"events/capacity/other.json", "", false},
	} {
		by, ok := coveredBy(tc.file)
		if ok != tc.ok || (ok && by[1] != tc.want) {
			t.Errorf("coveredBy(%s) = %v, %v; want %s, %v", tc.file, by, ok, tc.want, tc.ok)
		}
	}
}

// TestSQSSamplesStart sends start-payment.json and start-latest.json as written (the file's
// bytes, no message attributes, as `aws sqs send-message --message-body
// file://...` does): the case it names completes and its chain verifies.
func TestSQSSamplesStart(t *testing.T) {
	noteFailure(t)
	if suite.external {
		t.Skip("the sample's fixed idempotency key may have run on a deployed stack before")
	}
	ctx := ctxFor(t, 120*time.Second)
	for _, name := range []string{"start-payment.json", "start-latest.json"} {
		body, m := sqsSample(t, name)
		if m.Start == nil {
			t.Fatalf("%s: not a start message", name)
		}
		sendBody(t, ctx, body)
		rs := awaitChain(t, ctx, m.Start.CaseID(), func(rs []*receipt.Receipt) bool {
			return len(rs) > 0 && rs[len(rs)-1].Type.Terminal()
		})
		output(t, rs)
		readChain(t, ctx, m.Start.CaseID())
	}
}

// TestSQSSamplesThroughTheStack sends the other events/sqs samples as
// written, as a user following docs/messages.md would:
//   - start-by-reference.json, after uploading events/inputs/cross-border-
//     payment.json to the payloads bucket under the hash the sample names
//     (what `aws s3 cp` of the file does): the case completes;
//   - start-claim.json, then, once the claim waits for its adjuster,
//     cloudevent-adjuster-decision.json: the event resumes the claim and it
//     completes with the stand-ins' expected output;
//   - continue-timer.json, continue-branch.json (continuations of a case that
//     does not exist) and poison-unknown-workflow.json (a start of a workflow
//     nobody published): each is dropped as permanent, opens no case and is
//     counted.
func TestSQSSamplesThroughTheStack(t *testing.T) {
	noteFailure(t)
	if suite.external {
		t.Skip("the samples' fixed idempotency keys and event id may have run on a deployed stack before")
	}
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 180*time.Second)
	ended := func(rs []*receipt.Receipt) bool { return len(rs) > 0 && rs[len(rs)-1].Type.Terminal() }
	since := time.Now()

	// By reference: the sample names the hash of the input file's bytes.
	input, err := os.ReadFile(filepath.Join(root, "events", "inputs", "cross-border-payment.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(input)
	byRef, m := sqsSample(t, "start-by-reference.json")
	if m.Start == nil || m.Start.InputRef != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("start-by-reference.json names %v, want the hash of events/inputs/cross-border-payment.json", m.Start)
	}
	payloads := objects.NewPayloads(objects.New(objects.NewClient(suite.cfg), suite.res.PayloadBucket))
	if err := payloads.PutBlob(ctx, receipt.Blob{Hash: hex.EncodeToString(sum[:]), Bytes: input}); err != nil {
		t.Fatal(err)
	}
	sendBody(t, ctx, byRef)
	if got := output(t, awaitChain(t, ctx, m.Start.CaseID(), ended)); got != standin.Outputs["cross-border-payment"] {
		t.Errorf("start-by-reference.json: output %s, want %s", got, standin.Outputs["cross-border-payment"])
	}

	// A claim that waits for its adjuster, and the adjuster's CloudEvent.
	claim, m := sqsSample(t, "start-claim.json")
	sendBody(t, ctx, claim)
	claimID := m.Start.CaseID()
	awaitChain(t, ctx, claimID, func(rs []*receipt.Receipt) bool { return count(rs, history.EventAwaited) > 0 })
	decision, ev := sqsSample(t, "cloudevent-adjuster-decision.json")
	if ev.Event == nil {
		t.Fatal("cloudevent-adjuster-decision.json is not a CloudEvent")
	}
	sendBody(t, ctx, decision)
	if got := output(t, awaitChain(t, ctx, claimID, ended)); got != standin.Outputs["insurance-claim"] {
		t.Errorf("the claim resumed by the CloudEvent sample: output %s, want %s", got, standin.Outputs["insurance-claim"])
	}
	readChain(t, ctx, claimID)

	// Messages that name no case or no workflow: dropped, no case opened.
	var refused []string
	for _, name := range []string{"continue-timer.json", "continue-branch.json", "poison-unknown-workflow.json"} {
		body, m := sqsSample(t, name)
		sendBody(t, ctx, body)
		if m.Continue != nil {
			refused = append(refused, m.Continue.CaseID)
		} else {
			refused = append(refused, m.Start.CaseID())
		}
	}
	awaitMetricSum(t, ctx, telemetry.PermanentErrors, since, float64(len(refused)))
	for _, id := range refused {
		if tail, err := suite.chains.Tail(ctx, id); err != nil || tail != nil {
			t.Errorf("a refused sample opened case %s: %+v, %v", id, tail, err)
		}
	}
}

// sqsSample reads events/sqs/name as written and decodes it.
func sqsSample(t *testing.T, name string) (string, message.Message) {
	t.Helper()
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(root, "events", "sqs", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Decode(body)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(body), m
}

// sendBody puts a body on the work queue as `aws sqs send-message
// --message-body file://...` does: the bytes, no message attributes.
func sendBody(t *testing.T, ctx context.Context, body string) {
	t.Helper()
	if _, err := suite.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(suite.res.WorkQueueURL), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
}
