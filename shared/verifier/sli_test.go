package verifier

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// endedChain builds a whole case of workflow wf: genesis at t0, one task,
// and the terminal event term at t0+latency.
func endedChain(t testing.TB, caseID, wf string, t0 time.Time, latency time.Duration, term history.Event) []*receipt.Receipt {
	t.Helper()
	evs := []history.Event{
		{Type: history.CaseStarted, Input: json.RawMessage(`{"n":1}`), Started: t0,
			Genesis: &history.Genesis{Tenant: "acme", Namespace: "sli", Workflow: wf, Version: "1.0.0", DescriptorHash: descriptorHash}},
		{Type: history.TaskStarted, Task: "/do/0/work", Key: "0", Started: t0},
		{Type: history.TaskCompleted, Task: "/do/0/work", Key: "0", Started: t0, Ended: t0.Add(latency), Output: json.RawMessage(`{"ok":true}`)},
	}
	term.Started = t0.Add(latency)
	evs = append(evs, term)
	var prev *receipt.Receipt
	var out []*receipt.Receipt
	for _, ev := range evs {
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		prev = r
	}
	return out
}

func writes(c *counter) int {
	return c.get("BatchWriteItem") + c.get("PutItem") + c.get("UpdateItem")
}

// testServiceLevels: a batch of 120 ending cases is folded into one write
// of per workflow-minute buckets (against the same batch without service
// levels), the buckets read back hold exactly the outcomes and latencies,
// a redelivered batch counts nothing twice, and a failed bucket write loses
// no finding.
func testServiceLevels(t *testing.T, e *env) {
	spec := "https://serverlessworkflow.io/spec/1.0.0/errors/"
	t0 := time.Date(2026, 11, 30, 10, 0, 10, 0, time.UTC)
	terms := func(i int) (history.Event, sla.Outcome) {
		switch {
		case i%12 == 1:
			return history.Event{Type: history.CaseFaulted, Error: &history.Error{Type: spec + "communication", Status: 503}}, sla.PlatformFaulted
		case i%12 == 2:
			return history.Event{Type: history.CaseFaulted, Error: &history.Error{Type: "https://acme.example/declined", Status: 402}}, sla.WorkflowFaulted
		case i%12 == 3:
			return history.Event{Type: history.CaseFaulted, Error: &history.Error{Type: spec + "timeout", Status: 408}}, sla.TimedOut
		}
		return history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{}`)}, sla.Completed
	}
	const n = 120
	batch := func(prefix string) ([]events.DynamoDBEventRecord, map[string]sla.Counts, map[string][]float64) {
		var recs []events.DynamoDBEventRecord
		counts := map[string]sla.Counts{}
		lat := map[string][]float64{}
		for i := range n {
			wf := []string{"sli-orders-" + prefix, "sli-claims-" + prefix}[i%2]
			term, o := terms(i)
			latency := time.Duration(20+i*7) * time.Millisecond
			start := t0.Add(time.Duration(i%3) * 20 * time.Second) // the ends fall in two minutes
			for _, r := range endedChain(t, fmt.Sprintf("sli-%s-%03d", prefix, i), wf, start, latency, term) {
				recs = append(recs, insertRecord(t, r, len(recs)+1))
			}
			key := sla.WorkflowKey("sli", wf) + "@" + start.Add(latency).Truncate(time.Minute).Format(time.RFC3339)
			c := counts[key]
			c.Record(o)
			counts[key] = c
			lat[key] = append(lat[key], float64(latency)/float64(time.Millisecond))
		}
		return recs, counts, lat
	}

	// The same batch shape without service levels: the writes it costs.
	base := e.verifier(t, e.state)
	base.v.d.SLIs = nil
	recs, _, _ := batch("base")
	if resp, _ := base.handle(t, recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v: %s", resp.BatchItemFailures, base.logs.String())
	}

	h := e.verifier(t, e.state)
	recs, counts, lat := batch("sli")
	resp, sums := h.handle(t, recs)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v: %s", resp.BatchItemFailures, h.logs.String())
	}
	added := writes(h.ops) - writes(base.ops)
	perCase := float64(added) / n
	t.Logf("%d cases ended in one batch: %d write requests, %d without service levels: %.4f added per case", n, writes(h.ops), writes(base.ops), perCase)
	if added != 1 || perCase >= 0.05 {
		t.Fatalf("%d added write requests for %d cases, want one (< 0.05 per case)", added, n)
	}
	if sums[telemetry.SLICasesRecorded] != n || sums[telemetry.SLIWriteErrors] != 0 {
		t.Fatalf("metrics %v, want %d cases recorded", sums, n)
	}

	check := func() {
		t.Helper()
		bs, err := store.NewSLIs(e.db, e.state).Buckets(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*sla.Bucket{}
		for _, b := range bs {
			if _, mine := counts[b.Workflow+"@"+b.Minute.Format(time.RFC3339)]; mine {
				got[b.Workflow+"@"+b.Minute.Format(time.RFC3339)] = b
			}
		}
		if len(got) != len(counts) {
			t.Fatalf("%d buckets, want %d", len(got), len(counts))
		}
		for k, want := range counts {
			b := got[k]
			if b.Counts != want {
				t.Fatalf("%s counts %+v, want %+v", k, b.Counts, want)
			}
			if b.Latency.GetCount() != float64(len(lat[k])) {
				t.Fatalf("%s latency count %v, want %d", k, b.Latency.GetCount(), len(lat[k]))
			}
			xs := lat[k]
			med := xs[(len(xs)-1)/2] // ascending: latency grows with i
			p50, _ := sla.Quantile(b.Latency, 0.5)
			if got := float64(p50) / float64(time.Millisecond); math.Abs(got-med) > med*sla.RelativeAccuracy {
				t.Fatalf("%s p50 %v ms, want %v ms within 1 %%", k, got, med)
			}
		}
	}
	check()

	// Redelivered: the positions are past the ends; nothing counts twice.
	again := e.verifier(t, e.state)
	if resp, sums := again.handle(t, recs); len(resp.BatchItemFailures) != 0 || sums[telemetry.SLICasesRecorded] != 0 {
		t.Fatalf("redelivery: failures %v, metrics %v", resp.BatchItemFailures, sums)
	}
	check()

	// Bucket writes that fail lose no finding and fail no record.
	broken := e.verifier(t, e.state)
	broken.v.d.SLIs = store.NewSLIs(dynamodb.NewFromConfig(e.cfg), "no-such-table")
	rs := endedChain(t, "sli-tampered", "sli-orders-x", t0, time.Second, history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{}`)})
	clean := endedChain(t, "sli-clean", "sli-orders-x", t0, time.Second, history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{}`)})
	forged := forgeAfter(t, rs[1], clean[1].Hash)
	var brecs []events.DynamoDBEventRecord
	for _, r := range append(append(rs[:2:2], forged), clean...) {
		brecs = append(brecs, insertRecord(t, r, len(brecs)+1))
	}
	resp, sums = broken.handle(t, brecs)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v: %s", resp.BatchItemFailures, broken.logs.String())
	}
	if sums[telemetry.SLIWriteErrors] != 1 || sums[telemetry.IntegrityFindings] != 1 {
		t.Fatalf("metrics %v, want one SLI write error and one finding", sums)
	}
	if fs := e.findings(t, "sli-tampered"); len(fs) != 1 {
		t.Fatalf("findings %v, want the broken link", fs)
	}
}
