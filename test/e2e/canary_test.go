package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/telemetry"
)

// runCanary invokes the deployed canary once, as its schedule does.
func runCanary(t *testing.T, ctx context.Context, name string) canary.Result {
	t.Helper()
	out, err := suite.env.Lambda.Invoke(ctx, name, []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	if out.FunctionError != "" {
		t.Fatalf("canary failed: %s %s", out.Reason, out.Payload)
	}
	var r canary.Result
	if err := json.Unmarshal(out.Payload, &r); err != nil {
		t.Fatalf("canary result %s: %v", out.Payload, err)
	}
	for _, v := range r.Verdicts {
		if !v.OK {
			t.Errorf("canary probe %s unhealthy: %s", v.CaseID, v.Reason)
		}
	}
	return r
}

// TestCanary runs the deployed canary under the local Lambda service: the
// first run publishes its workflow and starts a probe that the executor
// (accepting the reserved tenant from the canary's own access key) runs and
// the verifier verifies; the second run judges it healthy and CanarySuccess
// reaches the local CloudWatch.
func TestCanary(t *testing.T) {
	if suite.external || suite.env == nil {
		t.Skip("invokes the canary through the local Lambda service")
	}
	noteFailure(t)
	ctx := ctxFor(t, 240*time.Second)
	name := deployedFunction(t, canary.FunctionName)
	since := time.Now()
	first := runCanary(t, ctx, name)
	if first.Started == "" {
		t.Fatalf("the canary started nothing: %+v", first)
	}
	err := poll(ctx, 500*time.Millisecond, func() (bool, error) {
		ws, err := suite.cases.Watermarks(ctx, []string{first.Started})
		w := ws[first.Started]
		return w.Ended > 0 && w.Seq >= w.Ended, err
	})
	if err != nil {
		t.Fatalf("the canary's case %s never completed verified: %v", first.Started, err)
	}
	runCanary(t, ctx, name)
	// The schedule runs the canary too and may have judged the probe first;
	// either way a success reaches CloudWatch and no run judged a failure.
	awaitMetricSum(t, ctx, telemetry.CanarySuccess, since, 1)
}
