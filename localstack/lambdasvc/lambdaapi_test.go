package lambdasvc

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// peakOverlap is the most invocations that ran at once among obs.
func peakOverlap(obs []observation) int {
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	for _, o := range obs {
		edges = append(edges, edge{o.Start, 1}, edge{o.End, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at == edges[j].at {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at < edges[j].at
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}

// TestMappingUpdateThroughLambdaAPI changes a running queue mapping's
// maximum concurrency and batch size with the Lambda API, as AWS allows,
// and checks that the pollers follow: more overlap after raising it, no
// more than the new limit after lowering it.
func TestMappingUpdateThroughLambdaAPI(t *testing.T) {
	h := startHarness(t, func(st *Stack, c *Config) {
		onlyQueues(st, c)
		st.Queues[0].BatchSize, st.Queues[0].MaxConcurrency = 1, 2
		c.MaxConcurrency = 4
	})
	ctx := context.Background()
	lc := lambda.NewFromConfig(h.cfg, func(o *lambda.Options) { o.BaseEndpoint = aws.String(h.svc.LambdaEndpoint()) })
	fn := h.stack.Queues[0].Function
	list, err := lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String(fn)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.EventSourceMappings) != 1 {
		t.Fatalf("%d mappings listed for %s, want 1", len(list.EventSourceMappings), fn)
	}
	m := list.EventSourceMappings[0]
	if aws.ToString(m.EventSourceArn) != h.stack.Queues[0].QueueARN || aws.ToInt32(m.BatchSize) != 1 ||
		m.ScalingConfig == nil || aws.ToInt32(m.ScalingConfig.MaximumConcurrency) != 2 {
		t.Fatalf("listed mapping %+v does not describe the template's", m)
	}
	other, err := lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("no-such-function")})
	if err != nil || len(other.EventSourceMappings) != 0 {
		t.Fatalf("another function's mappings: %v, %v", other, err)
	}

	// Out-of-range values are refused with the API's error and change nothing.
	for _, in := range []*lambda.UpdateEventSourceMappingInput{
		{UUID: m.UUID, ScalingConfig: &lambdatypes.ScalingConfig{MaximumConcurrency: aws.Int32(1)}},
		{UUID: m.UUID, BatchSize: aws.Int32(11)},
	} {
		_, err := lc.UpdateEventSourceMapping(ctx, in)
		var bad *lambdatypes.InvalidParameterValueException
		if !errors.As(err, &bad) {
			t.Errorf("update %+v: %v, want InvalidParameterValueException", in, err)
		}
	}
	if _, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String("nope")}); err == nil {
		t.Error("unknown mapping read without error")
	} else if nf := (*lambdatypes.ResourceNotFoundException)(nil); !errors.As(err, &nf) {
		t.Errorf("unknown mapping: %v, want ResourceNotFoundException", err)
	}

	run := func(n int) []observation {
		before := len(sqsBatches(h.observations()))
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = "sleep:400"
		}
		h.send(h.physicalID("WorkQueue"), msgs...)
		h.eventually(40*time.Second, "batch handled", func() bool { return len(sqsBatches(h.observations())) >= before+n })
		return h.observations()[before:]
	}
	update := func(conc int32) {
		t.Helper()
		out, err := lc.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: m.UUID,
			ScalingConfig: &lambdatypes.ScalingConfig{MaximumConcurrency: aws.Int32(conc)}})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToInt32(out.ScalingConfig.MaximumConcurrency); got != conc {
			t.Fatalf("update answered concurrency %d, want %d", got, conc)
		}
		read, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: m.UUID})
		if err != nil || aws.ToInt32(read.ScalingConfig.MaximumConcurrency) != conc {
			t.Fatalf("read back after update: %+v, %v", read, err)
		}
	}
	update(4)
	if peak := peakOverlap(run(12)); peak <= 2 || peak > 4 {
		t.Errorf("after raising to 4: %d invocations overlapped, want 3 or 4", peak)
	}
	update(2)
	// A worker above the new limit finishes its poll first: give it one.
	time.Sleep(1500 * time.Millisecond)
	if peak := peakOverlap(run(8)); peak > 2 {
		t.Errorf("after lowering to 2: %d invocations overlapped", peak)
	}
}
