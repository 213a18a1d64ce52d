package handler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/meter"
)

type addCall struct {
	period   string
	class    cost.Overhead
	function string
	u        cost.Usage
}

type recordSink struct {
	calls []addCall
	fail  error
}

func (r *recordSink) Add(_ context.Context, period string, class cost.Overhead, function string, u cost.Usage) error {
	if r.fail != nil {
		return r.fail
	}
	r.calls = append(r.calls, addCall{period, class, function, u})
	return nil
}

// TestOverheadWholeInvocations: a function that no case meters records
// each invocation (one request, its billed duration at the configured
// memory) and what its SDK calls charged to meter.Shared, as its class.
func TestOverheadWholeInvocations(t *testing.T) {
	t.Setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
	meter.Shared.Take()
	sink := &recordSink{}
	h := Wrap(Function{Name: "sla", Overhead: Overhead{Sink: sink, Class: cost.Idle}},
		func(ctx context.Context, _ int) (int, error) {
			meter.Shared.Add(cost.Usage{DynamoRequests: 2, ReadUnits: 1.5})
			return 0, nil
		})
	for range 2 {
		if _, err := h(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.calls) != 2 {
		t.Fatalf("writes %d, want one per invocation", len(sink.calls))
	}
	for _, c := range sink.calls {
		if c.class != cost.Idle || c.function != "sla" || c.period != time.Now().UTC().Format("2006-01") {
			t.Fatalf("recorded as %+v", c)
		}
		u := c.u
		if u.InvocationMicros != 1_000_000 || u.DynamoRequests != 2 || u.ReadUnits != 1.5 {
			t.Fatalf("usage %+v: want one invocation and the handler's calls", u)
		}
		if u.LambdaMBms < 256 || u.LambdaMBms%256 != 0 || u.Arch == "" {
			t.Fatalf("billed duration %d MB-ms (%q): want whole milliseconds at 256 MB", u.LambdaMBms, u.Arch)
		}
	}
}

// TestOverheadCaseMeteredBuffers: a case-metered function records only
// what meter.Shared holds, at most once per Every; a failed write keeps the
// usage for the next, and a forced write (SIGTERM) empties the buffer.
func TestOverheadCaseMeteredBuffers(t *testing.T) {
	meter.Shared.Take()
	sink := &recordSink{}
	b := newOverheads(Overhead{Sink: sink, CaseMetered: true, Every: time.Hour}, "executor")
	clock := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return clock }
	ctx := context.Background()
	step := func(sqs int64) {
		t.Helper()
		meter.Shared.Add(cost.Usage{SQSRequests: sqs})
		if err := b.invocation(ctx, clock.Add(-time.Second), false); err != nil {
			t.Fatal(err)
		}
	}
	step(1) // the first invocation writes
	step(2) // within Every: buffered
	step(3)
	if len(sink.calls) != 1 || sink.calls[0].u != (cost.Usage{SQSRequests: 1}) || sink.calls[0].class != cost.Shared {
		t.Fatalf("writes %+v, want one of the first invocation's usage as shared", sink.calls)
	}
	clock = clock.Add(time.Hour)
	sink.fail = errors.New("throttled")
	meter.Shared.Add(cost.Usage{SQSRequests: 4})
	if err := b.invocation(ctx, clock, false); err == nil {
		t.Fatal("a failed write is not reported")
	}
	sink.fail = nil
	if err := b.invocation(ctx, time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if len(sink.calls) != 2 || sink.calls[1].u != (cost.Usage{SQSRequests: 9}) {
		t.Fatalf("writes %+v, want the buffered 2+3+4 in the forced write", sink.calls)
	}
	if err := b.invocation(ctx, time.Time{}, true); err != nil || len(sink.calls) != 2 {
		t.Fatalf("an empty buffer wrote: %+v (%v)", sink.calls, err)
	}
}
