package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
)

// deployedFunction returns the deployed name of a function of the local
// stack by its short name.
func deployedFunction(t *testing.T, short string) string {
	t.Helper()
	for n := range suite.env.Lambda.Stack().Functions {
		if strings.HasSuffix(n, "-"+short) {
			return n
		}
	}
	t.Fatalf("the deployed stack has no %s function: %v", short, suite.env.Lambda.Stack().Notes)
	return ""
}

// runSLA invokes the deployed SLA job once, as its schedule does, retrying
// while a scheduled run holds the lease.
func runSLA(t *testing.T, ctx context.Context) slajob.Result {
	t.Helper()
	return runJob(t, ctx, slajob.FunctionName, func(r slajob.Result) bool { return r.Skipped })
}

// runJob invokes the deployed scheduled function named short once, as its
// schedule does, retrying while a scheduled run holds the lease (skipped).
func runJob[R any](t *testing.T, ctx context.Context, short string, skipped func(R) bool) R {
	t.Helper()
	name := deployedFunction(t, short)
	for {
		out, err := suite.env.Lambda.Invoke(ctx, name, []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
		if err != nil {
			t.Fatalf("invoke %s: %v", name, err)
		}
		if out.FunctionError != "" {
			t.Fatalf("%s failed: %s %s", name, out.Reason, out.Payload)
		}
		var r R
		if err := json.Unmarshal(out.Payload, &r); err != nil {
			t.Fatalf("%s result %s: %v", name, out.Payload, err)
		}
		if !skipped(r) {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s lease never free", name)
		case <-time.After(time.Second):
		}
	}
}

// TestSLAFromVerifiedReceipts: cases that complete reach the SLA report
// through the verifier's buckets (not through any self-reported figure),
// with latencies, and `knhk sla` prints the workflow's line.
func TestSLAFromVerifiedReceipts(t *testing.T) {
	if suite.external || suite.env == nil {
		t.Skip("invokes the SLA job through the local Lambda service")
	}
	noteFailure(t)
	ctx := ctxFor(t, 240*time.Second)
	in := map[string]any{"qty": 2, "unitPrice": 10}
	cases := []localrun.Case{newCase("e2e", "five-tasks", "sla-1", in), newCase("e2e", "five-tasks", "sla-2", in), newCase("e2e", "five-tasks", "sla-3", in)}
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, cases)
	for _, c := range cases {
		awaitWatermark(t, ctx, c.ID, int64(len(readChain(t, ctx, c.ID))-1))
	}
	// The buckets are written per minute of the terminal receipt; the job
	// reports up to the current minute, so wait for the minute to turn.
	time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + time.Second)))
	r := runSLA(t, ctx)
	var wf, all bool
	for _, rep := range r.Reports {
		if rep.Workflow == sla.WorkflowKey("e2e", "five-tasks") {
			// Set tasks run within one invocation share its time, so the
			// latency read from their receipts may be 0 ms; it is recorded.
			wf = rep.Counts.Completed >= int64(len(cases)) && rep.Latency
		}
		if rep.Workflow == slajob.Overall {
			all = rep.Counts.Valid() >= int64(len(cases))
		}
	}
	if !wf || !all {
		t.Fatalf("SLA reports lack the completed cases: %+v", r.Reports)
	}
	out, code := knhkCLI(t, ctx, "sla", "--workflow", sla.WorkflowKey("e2e", "five-tasks"))
	if code != 0 || !strings.Contains(out, "availability") || !strings.Contains(out, "page-1h") {
		t.Fatalf("knhk sla: %d %s", code, out)
	}
	t.Logf("knhk sla --workflow e2e/five-tasks:\n%s", out)
}
