package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// ddbRec makes a stream record with sequence number seq, partition key pk and
// the behaviour asked of the handler in the new image's "do" attribute.
func ddbRec(seq, pk, behaviour string) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{
		EventName: "INSERT",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber: seq,
			Keys: map[string]events.DynamoDBAttributeValue{
				"pk": events.NewStringAttribute(pk),
				"sk": events.NewNumberAttribute(seq),
			},
			NewImage: map[string]events.DynamoDBAttributeValue{"do": events.NewStringAttribute(behaviour)},
		},
	}
}

func (tr *tracer) ddbHandler(key func(events.DynamoDBEventRecord) string) func(context.Context, events.DynamoDBEventRecord) error {
	return func(_ context.Context, r events.DynamoDBEventRecord) error {
		k := "all"
		if key != nil {
			k = key(r)
		}
		tr.enter(r.Change.SequenceNumber, k)
		defer tr.leave(k)
		return act(r.Change.NewImage["do"].String())
	}
}

func reportedDDB(r events.DynamoDBEventResponse) []string {
	ids := []string{}
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func TestProcessDynamoDB(t *testing.T) {
	byPK := ByKeyAttribute("pk")
	tests := []struct {
		name    string
		recs    []events.DynamoDBEventRecord
		key     func(events.DynamoDBEventRecord) string
		workers int
		want    []string
		started []string // in start order when workers is 1
	}{
		{
			name:    "all succeed",
			recs:    []events.DynamoDBEventRecord{ddbRec("100", "a", bOK), ddbRec("101", "b", bOK)},
			key:     byPK,
			workers: 1,
			want:    []string{},
			started: []string{"100", "101"},
		},
		{
			name: "without a key the batch is one ordered group that stops at the first failure",
			recs: []events.DynamoDBEventRecord{
				ddbRec("100", "a", bOK), ddbRec("101", "b", bOK), ddbRec("102", "a", bFail), ddbRec("103", "b", bOK),
			},
			workers: 4,
			want:    []string{"102"},
			started: []string{"100", "101", "102"},
		},
		{
			name: "a failure stops later records of other groups not yet started",
			recs: []events.DynamoDBEventRecord{
				ddbRec("100", "a", bOK), ddbRec("101", "b", bOK), ddbRec("102", "a", bFail), ddbRec("103", "b", bOK),
			},
			key:     byPK,
			workers: 1,
			want:    []string{"102"},
			started: []string{"100", "102", "101"}, // group a first; 103 comes after the checkpoint
		},
		{
			name: "the checkpoint is the first failure in batch order",
			recs: []events.DynamoDBEventRecord{
				ddbRec("100", "a", bFail), ddbRec("101", "b", bOK), ddbRec("102", "b", bFail), ddbRec("103", "a", bOK),
			},
			key:     byPK,
			workers: 1,
			want:    []string{"100"},
			started: []string{"100"},
		},
		{
			name: "an earlier failure in a later-scheduled group moves the checkpoint back",
			recs: []events.DynamoDBEventRecord{
				ddbRec("100", "a", bOK), ddbRec("101", "b", bPanic), ddbRec("102", "a", bOK), ddbRec("103", "a", bFail),
			},
			key:     byPK,
			workers: 1,
			want:    []string{"101"},
			started: []string{"100", "102", "103", "101"},
		},
		{
			name:    "permanent errors drop the record and processing goes on",
			recs:    []events.DynamoDBEventRecord{ddbRec("100", "a", bPerm), ddbRec("101", "a", bOK)},
			workers: 1,
			want:    []string{},
			started: []string{"100", "101"},
		},
		{
			name:    "an empty batch reports nothing",
			want:    []string{},
			started: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracer()
			opts := DynamoDBOptions{Options: Options{Workers: tc.workers}, Key: tc.key}
			resp := ProcessDynamoDB(context.Background(), events.DynamoDBEvent{Records: tc.recs}, opts, tr.ddbHandler(tc.key))
			if resp.BatchItemFailures == nil {
				t.Fatal("nil BatchItemFailures")
			}
			if got := reportedDDB(resp); !slices.Equal(got, tc.want) {
				t.Fatalf("reported %v, want %v", got, tc.want)
			}
			if got := tr.startedIDs(); !slices.Equal(got, tc.started) {
				t.Fatalf("started %v, want %v", got, tc.started)
			}
		})
	}
}

func TestProcessDynamoDBDeadlineAndReasons(t *testing.T) {
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	clk := &fakeClock{now: deadline.Add(-3 * time.Second)}
	recs := []events.DynamoDBEventRecord{ddbRec("1", "a", bOK), ddbRec("2", "a", bOK), ddbRec("3", "b", bOK)}
	var mu sync.Mutex
	reasons := map[string]error{}
	tr := newTracer()
	h := tr.ddbHandler(nil)
	opts := DynamoDBOptions{Options: Options{
		DeadlineMargin: 2 * time.Second,
		Clock:          clk.Now,
		OnFailure: func(_ context.Context, id string, err error) {
			mu.Lock()
			reasons[id] = err
			mu.Unlock()
		},
	}}
	resp := ProcessDynamoDB(ctx, events.DynamoDBEvent{Records: recs}, opts, func(ctx context.Context, r events.DynamoDBEventRecord) error {
		clk.Advance(2 * time.Second)
		return h(ctx, r)
	})
	if got := reportedDDB(resp); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("reported %v, want [2]", got)
	}
	if got := tr.startedIDs(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("started %v, want [1]", got)
	}
	if !errors.Is(reasons["2"], ErrDeadline) {
		t.Fatalf("reason for 2: %v, want ErrDeadline", reasons["2"])
	}
	if !errors.Is(reasons["3"], ErrBatchStopped) && !errors.Is(reasons["3"], ErrGroupFailed) {
		t.Fatalf("reason for 3: %v, want a not-started reason", reasons["3"])
	}
}

func TestByKeyAttribute(t *testing.T) {
	rec := events.DynamoDBEventRecord{Change: events.DynamoDBStreamRecord{Keys: map[string]events.DynamoDBAttributeValue{
		"s": events.NewStringAttribute("1"),
		"n": events.NewNumberAttribute("1"),
		"b": events.NewBinaryAttribute([]byte("1")),
		"l": events.NewListAttribute(nil),
	}}}
	for name, want := range map[string]string{"s": "S:1", "n": "N:1", "b": "B:MQ==", "l": "", "missing": ""} {
		if got := ByKeyAttribute(name)(rec); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// TestPropertyDynamoDB checks random stream batches: at most one record is
// reported, and it is the first (in batch order) whose handler failed or
// panicked; every earlier record ran and succeeded or was dropped; no record
// after a failure of its own group started; records that did not start lie
// after the checkpoint; within a group records start in order, one at a time.
func TestPropertyDynamoDB(t *testing.T) {
	behaviours := []string{bOK, bOK, bOK, bOK, bFail, bPerm, bPanic}
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := rng.IntN(25)
		recs := make([]events.DynamoDBEventRecord, n)
		index := map[string]int{}
		for i := range recs {
			seq := fmt.Sprintf("%04d", 1000+i)
			recs[i] = ddbRec(seq, fmt.Sprintf("p%d", rng.IntN(4)), behaviours[rng.IntN(len(behaviours))])
			index[seq] = i
		}
		var key func(events.DynamoDBEventRecord) string
		if rng.IntN(4) > 0 {
			key = ByKeyAttribute("pk")
		}
		tr := newTracer()
		opts := DynamoDBOptions{Options: Options{Workers: 1 + rng.IntN(5)}, Key: key}
		resp := ProcessDynamoDB(context.Background(), events.DynamoDBEvent{Records: recs}, opts, tr.ddbHandler(key))

		started := map[string]bool{}
		for _, id := range tr.startedIDs() {
			started[id] = true
		}
		checkpoint := n
		for i, r := range recs {
			do := r.Change.NewImage["do"].String()
			if started[r.Change.SequenceNumber] && (do == bFail || do == bPanic) {
				checkpoint = i
				break
			}
		}
		got := reportedDDB(resp)
		switch {
		case checkpoint == n && len(got) != 0:
			t.Fatalf("seed %d: reported %v without a failure", seed, got)
		case checkpoint < n && !slices.Equal(got, []string{recs[checkpoint].Change.SequenceNumber}):
			t.Fatalf("seed %d: reported %v, want [%s]", seed, got, recs[checkpoint].Change.SequenceNumber)
		}
		groupOf := func(r events.DynamoDBEventRecord) string {
			if key == nil {
				return "all"
			}
			return key(r)
		}
		failedAt := map[string]int{}
		for i, r := range recs {
			seq, g := r.Change.SequenceNumber, groupOf(r)
			if i < checkpoint && !started[seq] {
				t.Fatalf("seed %d: record %d before the checkpoint %d did not run", seed, i, checkpoint)
			}
			if fi, ok := failedAt[g]; ok && started[seq] {
				t.Fatalf("seed %d: record %d started after record %d of its group failed", seed, i, fi)
			}
			do := r.Change.NewImage["do"].String()
			if _, ok := failedAt[g]; !ok && started[seq] && (do == bFail || do == bPanic) {
				failedAt[g] = i
			}
		}
		if key == nil {
			want := []string{}
			for i := 0; i < n && i <= checkpoint; i++ {
				want = append(want, recs[i].Change.SequenceNumber)
			}
			ids := tr.startedIDs()
			if len(ids) == 0 {
				ids = []string{}
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("seed %d: single group started %v, want %v", seed, ids, want)
			}
		}
		if opts.Workers == 1 && checkpoint < n {
			// Sequential: nothing after the checkpoint starts once it failed.
			ids := tr.startedIDs()
			at := slices.Index(ids, recs[checkpoint].Change.SequenceNumber)
			for _, id := range ids[at+1:] {
				if index[id] > checkpoint {
					t.Fatalf("seed %d: record %d started after the checkpoint %d failed", seed, index[id], checkpoint)
				}
			}
		}
		last := map[string]int{}
		for _, id := range tr.startedIDs() {
			g := groupOf(recs[index[id]])
			if prev, ok := last[g]; ok && prev > index[id] {
				t.Fatalf("seed %d: group %s out of order", seed, g)
			}
			last[g] = index[id]
		}
		if len(tr.overlap) > 0 {
			t.Fatalf("seed %d: groups %v had two records in flight", seed, tr.overlap)
		}
	}
}
