package e2e

// This file's name sorts before every other scenario's: go test runs a
// package's tests in file order, and a newcomer follows the README (and an
// operator the runbook) on a fresh stack, before scenarios such as
// TestCheckpointAttacks leave refused heads and findings in the shared one.

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/receipt"
)

// readmePort is the endpoint address the README's commands are written for;
// the test runs them against the suite's private endpoint instead.
const readmePort = "127.0.0.1:4566"

// shellBlocks returns the bodies of the ```sh fences of md, in order. Other
// fences (```console for what a test cannot run) are left out.
func shellBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		switch t := strings.TrimSpace(line); {
		case !in && t == "```sh":
			in, cur = true, nil
		case in && t == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestReadmeRunsAsWritten runs every ```sh block of README.md, in order, with
// bash from a folder laid out like the repository root after `make run`
// (events/ and .local/outputs.json), with build/host/knhk as `knhk` and the
// virtualenv's AWS CLI v1 as `aws` on PATH. The only rewrite is the endpoint
// address: the README's 127.0.0.1:4566 becomes the suite's private endpoint;
// KNHK_HTTP_HOST_MAP routes the samples' hosts to the suite's stand-ins.
func TestReadmeRunsAsWritten(t *testing.T) {
	noteFailure(t)
	if suite.external {
		t.Skip("runs against the self-contained stack only")
	}
	readme := runDocBlocks(t, "README.md")
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The start message the README sends completes: its order is routed.
	sample, err := os.ReadFile(filepath.Join(root, "events", "sqs", "start-latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "events/sqs/start-latest.json") {
		t.Fatal("the README no longer sends events/sqs/start-latest.json; name the sample it sends here")
	}
	var start struct {
		Workflow struct{ Namespace, Name string } `json:"workflow"`
		Key      string                           `json:"idempotencyKey"`
		Input    struct {
			OrderID string `json:"orderId"`
		} `json:"input"`
	}
	if err := json.Unmarshal(sample, &start); err != nil {
		t.Fatal(err)
	}
	id := message.CaseID(message.DefaultTenant, start.Workflow.Namespace, start.Workflow.Name, start.Key)
	rs := awaitChain(t, ctxFor(t, 90*time.Second), id, func(rs []*receipt.Receipt) bool {
		return len(rs) > 0 && rs[len(rs)-1].Type.Terminal()
	})
	var got struct {
		OrderID    string `json:"orderId"`
		Assignment string `json:"assignmentId"`
	}
	if err := json.Unmarshal([]byte(output(t, rs)), &got); err != nil || got.OrderID != start.Input.OrderID || got.Assignment == "" {
		t.Errorf("README's start message: output %+v (%v), want order %s assigned", got, err, start.Input.OrderID)
	}
}

// runDocBlocks runs every ```sh block of doc (a path from the repository
// root) as TestReadmeRunsAsWritten describes, with extraEnv added to the
// environment, and returns the document.
func runDocBlocks(t *testing.T, doc string, extraEnv ...string) []byte {
	t.Helper()
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, doc))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	if len(blocks) == 0 {
		t.Fatalf("%s has no ```sh block", doc)
	}
	awsCLI := filepath.Join(root, ".venv", "bin", "aws")
	knhk := filepath.Join(root, "build", "host", "knhk")
	for _, p := range []string{awsCLI, knhk} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run `make deps build`", p)
		}
	}
	u, err := url.Parse(suite.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, ".bin")
	for _, p := range []string{bin, filepath.Join(dir, ".local")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(root, "events"): filepath.Join(dir, "events"),
		awsCLI:                        filepath.Join(bin, "aws"),
		knhk:                          filepath.Join(bin, "knhk"),
	}
	for from, to := range links {
		if err := os.Symlink(from, to); err != nil {
			t.Fatal(err)
		}
	}
	outputs, err := os.ReadFile(filepath.Join(suite.tmp, "outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".local", "outputs.json"), outputs, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_ENDPOINT_URL="+suite.endpoint, "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"KNHK_HTTP_HOST_MAP="+strings.TrimPrefix(standin.Domain, ".")+"="+suite.env.Services)
	env = append(env, extraEnv...)
	for i, b := range blocks {
		script := strings.ReplaceAll(b, readmePort, u.Host)
		cmd := exec.CommandContext(ctxFor(t, 120e9), "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s block %d failed: %v\n--- block\n%s\n--- output\n%s", doc, i+1, err, b, out)
		}
		t.Logf("%s block %d:\n%s", doc, i+1, out)
	}
	return readme
}

// TestDeadLetterRunbookRunsAsWritten runs the ```sh blocks of the
// dead-letter runbook as written, with MESSAGE_ID and CASE_ID naming a
// message in the dead-letter queue (the start message of a completed case,
// put there as SQS would after maxReceiveCount receives), the way the
// runbook tells an operator to set them from `knhk dlq list`; every
// command, the redrives included, must exit 0.
func TestDeadLetterRunbookRunsAsWritten(t *testing.T) {
	noteFailure(t)
	if suite.external {
		t.Skip("runs against the self-contained stack only")
	}
	ctx := ctxFor(t, 120*time.Second)
	c := newCase("commerce", "order-routing", "runbook-dlq", map[string]any{"orderId": "ord-dlq", "region": "EU", "priority": "standard",
		"lines": []map[string]any{{"sku": "SKU-1", "quantity": 1, "unitPrice": 5}}})
	body, err := json.Marshal(message.Start{Kind: message.KindStart, Tenant: c.Tenant,
		Workflow: message.WorkflowRef{Namespace: c.Namespace, Name: c.Workflow}, IdempotencyKey: c.Key, Input: c.Input})
	if err != nil {
		t.Fatal(err)
	}
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitChain(t, ctx, c.ID, func(rs []*receipt.Receipt) bool { return len(rs) > 0 && rs[len(rs)-1].Type == history.CaseCompleted })
	sent, err := suite.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(suite.res.DeadLetterURL), MessageBody: aws.String(string(body))})
	if err != nil {
		t.Fatal(err)
	}
	runDocBlocks(t, "docs/runbooks/dead-letter-queue-depth.md", "MESSAGE_ID="+aws.ToString(sent.MessageId), "CASE_ID="+c.ID)
}
