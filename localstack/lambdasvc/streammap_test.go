package lambdasvc

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

func streamBatches(obs []observation) []events.DynamoDBEvent {
	var out []events.DynamoDBEvent
	for _, o := range obs {
		var ev events.DynamoDBEvent
		if json.Unmarshal(o.Event, &ev) == nil && len(ev.Records) > 0 && ev.Records[0].EventSource == "aws:dynamodb" {
			out = append(out, ev)
		}
	}
	return out
}

func onlyStreams(s *Stack, _ *Config) { s.Queues, s.Schedules = nil, nil }

func (h *harness) put(table, pk, cmd string, extra map[string]ddbtypes.AttributeValue) {
	h.t.Helper()
	item := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: pk}, "cmd": &ddbtypes.AttributeValueMemberS{Value: cmd}}
	for k, v := range extra {
		item[k] = v
	}
	if _, err := dynamodb.NewFromConfig(h.cfg).PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		h.t.Fatal(err)
	}
}

func TestStreamDeliversChangesInOrder(t *testing.T) {
	h := startHarness(t, onlyStreams)
	table := h.physicalID("Table")
	h.put(table, "a", "ok", nil)
	h.put(table, "a", "ok", map[string]ddbtypes.AttributeValue{"n": &ddbtypes.AttributeValueMemberN{Value: "2"}})
	if _, err := dynamodb.NewFromConfig(h.cfg).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"}}}); err != nil {
		t.Fatal(err)
	}
	var recs []events.DynamoDBEventRecord
	h.eventually(20*time.Second, "three changes", func() bool {
		recs = nil
		for _, b := range streamBatches(h.observations()) {
			recs = append(recs, b.Records...)
		}
		return len(recs) >= 3
	})
	var names []string
	var seqs []string
	for _, r := range recs {
		names = append(names, r.EventName)
		seqs = append(seqs, r.Change.SequenceNumber)
		if r.EventSourceArn != h.stack.Streams[0].StreamARN || r.EventVersion == "" || r.EventID == "" || r.AWSRegion == "" {
			t.Errorf("record shape: %+v", r)
		}
		if r.Change.Keys["pk"].String() != "a" || r.Change.StreamViewType != "NEW_AND_OLD_IMAGES" || r.Change.ApproximateCreationDateTime.IsZero() {
			t.Errorf("stream record: %+v", r.Change)
		}
	}
	if !slices.Equal(names, []string{"INSERT", "MODIFY", "REMOVE"}) {
		t.Errorf("events %v, want INSERT MODIFY REMOVE", names)
	}
	if !slices.IsSortedFunc(seqs, compareSeq) {
		t.Errorf("sequence numbers out of order: %v", seqs)
	}
	if recs[1].Change.OldImage == nil || recs[1].Change.NewImage["n"].Number() != "2" || recs[2].Change.NewImage != nil {
		t.Errorf("images: modify old=%v new=%v, remove new=%v", recs[1].Change.OldImage, recs[1].Change.NewImage, recs[2].Change.NewImage)
	}
	// IteratorAge is published for the function.
	cw := NewCloudWatch(h.cfg)
	h.eventually(20*time.Second, "IteratorAge metric", func() bool {
		out, err := cw.ListMetrics(context.Background(), &cloudwatch.ListMetricsInput{Namespace: aws.String("AWS/Lambda"), MetricName: aws.String("IteratorAge"),
			Dimensions: []cwtypes.DimensionFilter{{Name: aws.String("FunctionName"), Value: aws.String("SvcTest-Fn")}}})
		return err == nil && len(out.Metrics) > 0
	})
}

func compareSeq(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestStreamBisectsRetriesAndSendsFailures(t *testing.T) {
	h := startHarness(t, func(s *Stack, c *Config) {
		onlyStreams(s, c)
		s.Streams[0].WindowSeconds = 1 // gather the four puts into one batch
	})
	table := h.physicalID("Table")
	for i, cmd := range []string{"ok", "ok", "error", "ok"} {
		h.put(table, fmt.Sprintf("b%d", i+1), cmd, nil)
	}
	failures := h.physicalID("FailureQueue")
	var got []FailureRecord
	h.eventually(30*time.Second, "failure record", func() bool {
		for _, m := range h.drain(failures) {
			var f FailureRecord
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &f); err != nil {
				t.Fatalf("failure record: %v: %s", err, aws.ToString(m.Body))
			}
			got = append(got, f)
		}
		return len(got) > 0
	})
	time.Sleep(time.Second) // nothing else may follow
	got = append(got, func() []FailureRecord {
		var more []FailureRecord
		for _, m := range h.drain(failures) {
			var f FailureRecord
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &f)
			more = append(more, f)
		}
		return more
	}()...)
	if len(got) != 1 {
		t.Fatalf("%d failure records, want 1: %+v", len(got), got)
	}
	f := got[0]
	// Find the poisoned record's sequence number from what was delivered.
	var poison string
	delivered := map[string]int{}
	for _, b := range streamBatches(h.observations()) {
		for _, r := range b.Records {
			delivered[r.Change.Keys["pk"].String()]++
			if r.Change.Keys["pk"].String() == "b3" {
				poison = r.Change.SequenceNumber
			}
		}
	}
	if f.BatchInfo.BatchSize != 1 || f.BatchInfo.StartSequenceNumber != poison || f.BatchInfo.EndSequenceNumber != poison {
		t.Errorf("failure batch info %+v, want only b3 (%s)", f.BatchInfo, poison)
	}
	if f.RequestContext.Condition != "RetryAttemptsExhausted" || f.RequestContext.ApproximateInvokeCount != 2 ||
		f.RequestContext.FunctionARN != h.stack.Functions["SvcTest-Fn"].ARN || f.ResponseContext.FunctionError != "Unhandled" ||
		f.BatchInfo.StreamARN != h.stack.Streams[0].StreamARN || f.BatchInfo.ShardID == "" || f.Version != "1.0" {
		t.Errorf("failure record %+v", f)
	}
	// b3 alone was retried once (MaximumRetryAttempts 1) after bisection;
	// every other record was delivered until it succeeded.
	for _, pk := range []string{"b1", "b2", "b4"} {
		if delivered[pk] == 0 {
			t.Errorf("%s never delivered", pk)
		}
	}
	if delivered["b3"] < 3 {
		t.Errorf("b3 delivered %d times, want the full batch, the bisected halves and the retry", delivered["b3"])
	}
}

func TestFirstFailedRecord(t *testing.T) {
	recs := func(seqs ...string) []st.Record {
		var out []st.Record
		for _, s := range seqs {
			out = append(out, st.Record{Dynamodb: &st.StreamRecord{SequenceNumber: aws.String(s)}})
		}
		return out
	}
	batch := recs("100", "101", "102")
	tests := []struct {
		name   string
		res    Result
		report bool
		want   int
	}{
		{"success", Result{Payload: []byte(`null`)}, true, -1},
		{"empty list", Result{Payload: []byte(`{"batchItemFailures":[]}`)}, true, -1},
		{"function error", Result{FunctionError: "Unhandled"}, true, 0},
		{"earliest reported", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":"102"},{"itemIdentifier":"101"}]}`)}, true, 1},
		{"unknown id fails all", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":"999"}]}`)}, true, 0},
		{"null id fails all", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":null}]}`)}, true, 0},
		{"malformed fails all", Result{Payload: []byte(`"nope"`)}, true, 0},
		{"reports ignored when off", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":"101"}]}`)}, false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FirstFailedRecord(tc.res, batch, tc.report); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// A restarted service resumes a stream after the last record it handled,
// as an event source mapping does, rather than at TRIM_HORIZON again.
func TestStreamResumesAfterRestart(t *testing.T) {
	positionsFile := filepath.Join(t.TempDir(), "stream-positions.json")
	var cfg Config
	h := startHarness(t, func(s *Stack, c *Config) {
		onlyStreams(s, c)
		c.PositionsPath = positionsFile
		cfg = *c
	})
	table := h.physicalID("Table")
	inserts := func() []string {
		var keys []string
		for _, b := range streamBatches(h.observations()) {
			for _, r := range b.Records {
				if r.EventName == "INSERT" {
					keys = append(keys, r.Change.Keys["pk"].String())
				}
			}
		}
		return keys
	}
	for _, k := range []string{"a", "b", "c"} {
		h.put(table, k, "ok", nil)
	}
	h.eventually(20*time.Second, "three inserts", func() bool { return len(inserts()) >= 3 })
	h.stop()
	for _, k := range []string{"d", "e"} {
		h.put(table, k, "ok", nil)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	h.eventually(20*time.Second, "the two new inserts", func() bool { return len(inserts()) >= 5 })
	time.Sleep(time.Second) // a replay from TRIM_HORIZON would show by now
	if got := inserts(); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("inserts delivered %v, want a b c once, then d e", got)
	}
}
