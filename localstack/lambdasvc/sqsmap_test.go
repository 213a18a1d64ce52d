package lambdasvc

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/localaws"
)

func sqsBatches(obs []observation) []events.SQSEvent {
	var out []events.SQSEvent
	for _, o := range obs {
		var ev events.SQSEvent
		if json.Unmarshal(o.Event, &ev) == nil && len(ev.Records) > 0 && ev.Records[0].EventSource == "aws:sqs" {
			out = append(out, ev)
		}
	}
	return out
}

func TestQueuePartialFailuresAndRedrive(t *testing.T) {
	h := startHarness(t, onlyQueues)
	work, dlq := h.physicalID("WorkQueue"), h.physicalID("DeadLetterQueue")
	h.send(work, "ok", "fail", "ok", "fail", "ok")

	// The two failures are received maxReceiveCount (2) times, then moto
	// moves them to the dead-letter queue on the next receive.
	h.eventually(40*time.Second, "failures in the DLQ", func() bool {
		a, err := h.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(dlq),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
		return err == nil && a.Attributes["ApproximateNumberOfMessages"] == "2"
	})
	h.stop()
	dead := h.drain(dlq)
	var bodies []string
	for _, m := range dead {
		bodies = append(bodies, aws.ToString(m.Body))
	}
	if !slices.Equal(bodies, []string{"fail", "fail"}) {
		t.Errorf("DLQ holds %v, want the two failures", bodies)
	}
	if rest := h.drain(work); len(rest) != 0 {
		t.Errorf("work queue still holds %d messages", len(rest))
	}
	// Every ok message was delivered exactly once (it was deleted); every
	// failure twice.
	seen := map[string]int{}
	for _, ev := range sqsBatches(h.observations()) {
		for _, r := range ev.Records {
			seen[r.MessageId+"/"+r.Body]++
			if r.EventSourceARN == "" || r.ReceiptHandle == "" || r.Md5OfBody == "" || r.AWSRegion != "us-east-1" {
				t.Errorf("record shape: %+v", r)
			}
			if r.Attributes["ApproximateReceiveCount"] == "" || r.Attributes["SentTimestamp"] == "" {
				t.Errorf("system attributes missing: %v", r.Attributes)
			}
			if r.Attributes["SenderId"] != localaws.AccessKey { // the test's own key sent them
				t.Errorf("SenderId %q, want the sending key %q", r.Attributes["SenderId"], localaws.AccessKey)
			}
			if v := r.MessageAttributes["traceparent"]; v.StringValue == nil || *v.StringValue != "00-abc-def-01" || v.DataType != "String" {
				t.Errorf("message attributes: %+v", r.MessageAttributes)
			}
		}
	}
	// The function ran with the stack's resolved environment.
	obs := h.observations()
	if len(obs) == 0 {
		t.Fatal("no invocations observed")
	}
	env := obs[0].Env
	if env["QUEUE_URL"] != work || env["TABLE_NAME"] != h.physicalID("Table") || env["AWS_ENDPOINT_URL"] != aws.ToString(h.cfg.BaseEndpoint) ||
		env["AWS_REGION"] != "us-east-1" || env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] != "256" || env["AWS_LAMBDA_FUNCTION_TIMEOUT"] != "5" ||
		env["AWS_ACCESS_KEY_ID"] != FunctionAccessKey("SvcTest-Fn") || obs[0].Function != "SvcTest-Fn" {
		t.Errorf("function environment %v (function %q)", env, obs[0].Function)
	}
	var counts []int
	okCount := 0
	for k, n := range seen {
		if len(k) > 3 && k[len(k)-3:] == "/ok" {
			okCount++
			if n != 1 {
				t.Errorf("ok message %s delivered %d times", k, n)
			}
		} else {
			counts = append(counts, n)
		}
	}
	sort.Ints(counts)
	if okCount != 3 || !slices.Equal(counts, []int{2, 2}) {
		t.Errorf("deliveries: %d ok messages, failures delivered %v times; want 3 and [2 2]", okCount, counts)
	}
}

func TestQueueBatchingWindowAndSize(t *testing.T) {
	h := startHarness(t, func(st *Stack, c *Config) {
		onlyQueues(st, c)
		st.Queues[0].BatchSize, st.Queues[0].WindowSeconds, st.Queues[0].MaxConcurrency = 4, 2, 1
	})
	work := h.physicalID("WorkQueue")
	h.send(work, "w1", "w2")
	time.Sleep(700 * time.Millisecond) // inside the 2 s window
	h.send(work, "w3")
	h.eventually(20*time.Second, "first batch", func() bool { return len(sqsBatches(h.observations())) >= 1 })
	first := sqsBatches(h.observations())[0]
	if len(first.Records) != 3 {
		t.Errorf("first batch has %d records, want the 3 sent within the batching window", len(first.Records))
	}
	var bodies []string
	for i := range 9 {
		bodies = append(bodies, "s"+string(rune('1'+i)))
	}
	h.send(work, bodies...)
	h.eventually(30*time.Second, "all 12 delivered", func() bool {
		n := 0
		for _, b := range sqsBatches(h.observations()) {
			n += len(b.Records)
		}
		return n >= 12
	})
	for _, b := range sqsBatches(h.observations()) {
		if len(b.Records) > 4 {
			t.Errorf("batch of %d records exceeds BatchSize 4", len(b.Records))
		}
	}
}

func TestQueueConcurrencyBounded(t *testing.T) {
	h := startHarness(t, func(st *Stack, c *Config) {
		onlyQueues(st, c)
		st.Queues[0].BatchSize, st.Queues[0].MaxConcurrency = 1, 2
	})
	work := h.physicalID("WorkQueue")
	msgs := make([]string, 8)
	for i := range msgs {
		msgs[i] = "sleep:400"
	}
	h.send(work, msgs...)
	h.eventually(40*time.Second, "all 8 handled", func() bool { return len(sqsBatches(h.observations())) >= 8 })
	obs := h.observations()
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	pids := map[int]bool{}
	for _, o := range obs {
		edges = append(edges, edge{o.Start, 1}, edge{o.End, -1})
		pids[o.PID] = true
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
	if peak > 2 {
		t.Errorf("%d invocations overlapped, MaximumConcurrency is 2", peak)
	}
	if peak < 2 {
		t.Errorf("invocations never overlapped (peak %d): the mapping did not use its concurrency", peak)
	}
	if len(pids) > 2 {
		t.Errorf("%d function processes served the mapping, want at most 2", len(pids))
	}
}
