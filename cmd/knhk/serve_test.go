package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/localaws"
)

// syncBuffer is a buffer safe to read while the command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestLocalServeRefusesWithoutEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	_, err := runLocal(t, "local", "serve", "--template", "x.json")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("err = %v, want exit 2 naming the missing endpoint", err)
	}
}

func TestLocalServeRunsTheStackUntilCancelled(t *testing.T) {
	if _, err := lambdasvc.FindRIE(); err != nil {
		t.Skipf("Lambda runtime interface emulator unavailable: %v", err)
	}
	ep := localaws.StartT(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	dir := t.TempDir()
	template := filepath.Join("..", "..", "localstack", "lambdasvc", "testdata", "stack.template.json")
	state := filepath.Join(dir, "stack-state.json")
	if out, err := runLocal(t, "local", "deploy", "--endpoint", ep.URL, "--template", template, "--stack", "SvcTest",
		"--out", filepath.Join(dir, "outputs.json"), "--state", state); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	host := filepath.Join(dir, "host")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(host, "fn"), "../../localstack/lambdasvc/testdata/fn").CombinedOutput(); err != nil {
		t.Fatalf("build test function: %v\n%s", err, out)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var d provision.Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")

	var out syncBuffer
	root.SetOut(&out)
	root.SetErr(&out)
	args := []string{"local", "serve", "--endpoint", ep.URL, "--template", template, "--state", state, "--logs", logs, "--host-builds", host,
		"--spans", filepath.Join(dir, "spans.jsonl")}
	root.SetArgs(args)
	t.Cleanup(func() { root.SetArgs(nil); root.SetOut(nil); root.SetErr(nil) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A command keeps the context of an earlier execution in the same
	// process; give it this one so that cancelling stops it.
	serve, _, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	serve.SetContext(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(d.Resources["WorkQueue"].PhysicalID), MessageBody: aws.String("ok")}); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(logs, "SvcTest-Fn.log")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if bytes.Contains(b, []byte(`"body":"ok"`)) && bytes.Contains(b, []byte("REPORT RequestId")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message never reached the function log:\n%s\n%s", b, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
	for _, want := range []string{"function SvcTest-Fn:", "sqs arn:aws:sqs:", "stream arn:aws:dynamodb:", "schedule SvcTest-Tick rate(1 minute)", "SvcTest-Fn: 1 invocations, 0 restarts"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
