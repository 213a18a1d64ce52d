package e2e

import (
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

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/receipt"
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
	"events/sqs/start-by-reference.json":           {"shared/message", "TestDecodeSamples"},
	"events/sqs/continue-timer.json":               {"shared/message", "TestDecodeSamples"},
	"events/sqs/continue-branch.json":              {"shared/message", "TestDecodeSamples"},
	"events/sqs/cloudevent-adjuster-decision.json": {"shared/message", "TestDecodeSamples"},
	"events/sqs/poison-unknown-workflow.json":      {"shared/message", "TestDecodeSamples"},
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
		{"events/sqs/continue-timer.json", "TestDecodeSamples", true},
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
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 120*time.Second)
	for _, name := range []string{"start-payment.json", "start-latest.json"} {
		body, err := os.ReadFile(filepath.Join(root, "events", "sqs", name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := message.Decode(body)
		if err != nil || m.Start == nil {
			t.Fatalf("%s: not a start message: %v", name, err)
		}
		if _, err := suite.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(suite.res.WorkQueueURL),
			MessageBody: aws.String(string(body))}); err != nil {
			t.Fatal(err)
		}
		rs := awaitChain(t, ctx, m.Start.CaseID(), func(rs []*receipt.Receipt) bool {
			return len(rs) > 0 && rs[len(rs)-1].Type.Terminal()
		})
		output(t, rs)
		readChain(t, ctx, m.Start.CaseID())
	}
}
