package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/xray"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func TestTraceCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	lines := []string{
		`{"traceId":"aa","spanId":"1","name":"process work","kind":"consumer","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00.100Z","attributes":{"knhk.case_id":"c-1"}}`,
		`{"traceId":"aa","spanId":"2","parentSpanId":"1","name":"task /do/0/charge","kind":"internal","start":"2026-01-01T00:00:00.050Z","end":"2026-01-01T00:00:00.100Z","status":"ERROR","statusMessage":"502 from the acquirer","attributes":{"knhk.task":"/do/0/charge"}}`,
		`{"traceId":"bb","spanId":"3","name":"process work","kind":"consumer","start":"2026-01-01T00:00:01Z","end":"2026-01-01T00:00:01.010Z","links":[{"traceId":"aa","spanId":"2"}]}`,
		`not a span`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runRoot(t, "trace", "c-1", "--spans", path, "--width", "10")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{"trace aa · 2 spans · 100ms", "|██████████| process work", "|     █████|   task /do/0/charge",
		"ERROR task=/do/0/charge error=502 from the acquirer", "linked trace bb · 1 spans", "process work ↗1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := runRoot(t, "trace", "nobody", "--spans", path); code != 1 {
		t.Errorf("unknown case: exit %d, want 1", code)
	}
}

func TestXRayTraceID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "1-4bf92f35-77b34da6a3ce929d0e0e4736"},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4bf92f35-00f067aa0ba902b7-01", ""},
		{"", ""},
	} {
		got, err := xrayTraceID(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("xrayTraceID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestTraceFromXRay stores a case whose genesis records its trace context
// and that trace's segments in the local endpoint's X-Ray, then prints the
// case's waterfall with `knhk trace --xray`: segments and their
// subsegments as one tree, with the attributes X-Ray keeps.
func TestTraceFromXRay(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const tp = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
	chains := store.NewReceipts(dynamodb.NewFromConfig(cfg), outs[stack.OutReceiptsTable])
	withTrace := message.CaseID("acme", "ns", "wf", "traced")
	g := history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: time.Now().Add(-30 * time.Second),
		Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns", Workflow: "wf", Version: "1", DescriptorHash: strings.Repeat("ab", 32), TraceParent: tp}}
	if _, err := chains.Append(ctx, nil, "acme", withTrace, g); err != nil {
		t.Fatal(err)
	}
	untraced := message.CaseID("acme", "ns", "wf", "untraced")
	g.Genesis.TraceParent = ""
	if _, err := chains.Append(ctx, nil, "acme", untraced, g); err != nil {
		t.Fatal(err)
	}
	start := float64(time.Now().Add(-time.Minute).Unix())
	docs := []string{
		fmt.Sprintf(`{"id":"70de5b6f19ff9a0a","name":"executor","trace_id":"1-5759e988-bd862e3fe1be46a994272793","start_time":%f,"end_time":%f,
		  "annotations":{"knhk_case_id":%q},
		  "subsegments":[{"id":"70de5b6f19ff9a0b","name":"DynamoDB","start_time":%f,"end_time":%f,"aws":{"operation":"PutItem"}},
		                 {"id":"70de5b6f19ff9a0c","name":"quotes.knhk.local","start_time":%f,"end_time":%f,"fault":true,
		                  "http":{"request":{"method":"GET","url":"https://quotes.knhk.local/quote"},"response":{"status":503}}}]}`,
			start, start+0.5, withTrace, start+0.1, start+0.2, start+0.25, start+0.45),
		fmt.Sprintf(`{"id":"80de5b6f19ff9a0d","name":"verifier","trace_id":"1-5759e988-bd862e3fe1be46a994272793","parent_id":"70de5b6f19ff9a0b","start_time":%f,"end_time":%f}`,
			start+0.6, start+0.7),
		// A step of the case resumed by a CloudEvent, in the event's trace.
		fmt.Sprintf(`{"id":"90de5b6f19ff9a0e","name":"resumed-by-event","trace_id":"1-5759e988-aaaaaaaaaaaaaaaaaaaaaaaa","start_time":%f,"end_time":%f,
		  "annotations":{"knhk_case_id":%q}}`, start+0.8, start+0.9, withTrace),
		// Another case's trace.
		fmt.Sprintf(`{"id":"a0de5b6f19ff9a0f","name":"another-case","trace_id":"1-5759e988-bbbbbbbbbbbbbbbbbbbbbbbb","start_time":%f,"end_time":%f,
		  "annotations":{"knhk_case_id":%q}}`, start+0.8, start+0.9, untraced),
	}
	if _, err := xray.NewFromConfig(cfg).PutTraceSegments(ctx, &xray.PutTraceSegmentsInput{TraceSegmentDocuments: docs}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "trace", withTrace, "--xray", "--outputs", outFile)
	if code != 0 {
		t.Fatalf("trace --xray exited %d: %s%s", code, errOut, out)
	}
	for _, want := range []string{"executor", "DynamoDB", "PutItem", "quotes.knhk.local", "503", "verifier", withTrace,
		"linked trace 1-5759e988-aaaaaaaaaaaaaaaaaaaaaaaa", "resumed-by-event"} {
		if !strings.Contains(out, want) {
			t.Errorf("waterfall lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "another-case") || strings.Count(out, "1-5759e988-bd862e3fe1be46a994272793") != 1 {
		t.Errorf("another case's trace shown, or the case's own trace twice:\n%s", out)
	}
	// The verifier's segment hangs below the DynamoDB write it read.
	if a, b := strings.Index(out, "DynamoDB"), strings.Index(out, "verifier"); a < 0 || b < a {
		t.Errorf("verifier not listed after its parent:\n%s", out)
	}
	if _, _, code := run(t, "trace", untraced, "--xray", "--outputs", outFile); code != 1 {
		t.Errorf("a case without trace context exited %d, want 1", code)
	}
}
