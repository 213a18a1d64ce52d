package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/executor"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

const holdWorkflow = `document:
  dsl: '1.0.0'
  namespace: ops
  name: hold
  version: '1.0.0'
do:
  - pause:
      wait: PT1H
  - finish:
      set: '${ . }'
`

// TestCaseListOpen: `case list --open` lists a case waiting on a timer with
// its wait, and leaves out a case whose end the verifier recorded and one
// that ended although its watermark is still behind.
func TestCaseListOpen(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	dir := t.TempDir()
	hold := filepath.Join(dir, "hold.yaml")
	if err := os.WriteFile(hold, []byte(holdWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join("..", "..", "events")
	for _, f := range []string{hold, filepath.Join(sample, "workflows", "order-routing.yaml")} {
		if _, errOut, code := run(t, "workflow", "push", f, "--outputs", outFile); code != 0 {
			t.Fatalf("push %s: %d %q", f, code, errOut)
		}
	}
	submit := func(wf, key, input string) string {
		out, errOut, code := run(t, "submit", "--workflow", wf, "--key", key, "--input", input, "--outputs", outFile)
		if code != 0 {
			t.Fatalf("submit %s: %d %q", wf, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	input := filepath.Join(sample, "inputs", "order-routing.json")
	waiting := submit("ops/hold", "h1", input)
	ended := submit("commerce/order-routing", "o1", input)
	lagging := submit("commerce/order-routing", "o2", input)

	ctx := context.Background()
	cfg, _ := ep.Config(ctx)
	sq, db := sqs.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg)
	chains := store.NewReceipts(db, outs[stack.OutReceiptsTable])
	cases := store.NewCases(db, outs[stack.OutStateTable])
	x := executor.New(executor.DefaultConfig(), executor.Deps{
		Chains: chains, Descriptors: registry.New(db, outs[stack.OutStateTable]),
		Cases: cases, Sender: queue.NewSender(sq, outs[stack.OutWorkQueueURL]), HTTP: standinClient(t, standin.New()),
	})
	drainWork(t, sq, outs[stack.OutWorkQueueURL], x)

	// Watermarks as the verifier writes them.
	ws := map[string]receipt.Watermark{}
	for _, id := range []string{waiting, ended, lagging} {
		tail, err := chains.Tail(ctx, id)
		if err != nil || tail == nil {
			t.Fatalf("tail of %s: %v %v", id, tail, err)
		}
		w := receipt.Watermark{Seq: tail.Seq, Hash: tail.Hash}
		switch id {
		case ended:
			w.Ended = tail.Seq
		case lagging:
			w.Seq = 0
		}
		ws[id] = w
	}
	if err := cases.SetWatermarks(ctx, ws); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := run(t, "case", "list", "--open", "--outputs", outFile)
	if code != 0 {
		t.Fatalf("case list --open: %d %q", code, errOut)
	}
	if !strings.Contains(out, waiting) || !strings.Contains(out, "ops/hold:1.0.0") || !strings.Contains(out, "timer") {
		t.Errorf("the waiting case is not listed with its timer:\n%s", out)
	}
	for _, id := range []string{ended, lagging} {
		if strings.Contains(out, id) {
			t.Errorf("ended case %s listed:\n%s", id, out)
		}
	}
	if _, _, code := run(t, "case", "list", "--outputs", outFile); code != 2 {
		t.Errorf("case list without --open: exit %d, want 2", code)
	}
}
