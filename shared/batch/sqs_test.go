package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Behaviours a test message asks of the handler, carried in its body.
const (
	bOK    = "ok"
	bFail  = "fail"
	bPerm  = "perm"
	bPanic = "panic"
)

var errHandler = errors.New("handler failed")

func sqsMsg(id, key, behaviour string) events.SQSMessage {
	m := events.SQSMessage{MessageId: id, Body: behaviour}
	if key != "" {
		m.MessageAttributes = map[string]events.SQSMessageAttribute{
			"caseId": {DataType: "String", StringValue: &key},
		}
	}
	return m
}

// tracer records what a test handler did, and checks that no two items of
// one group are in flight at once.
type tracer struct {
	mu       sync.Mutex
	started  []string
	inFlight map[string]int
	overlap  []string
	running  int // handlers running now
	peak     int // most handlers ever running at once
}

func newTracer() *tracer { return &tracer{inFlight: map[string]int{}} }

func (tr *tracer) enter(id, key string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.started = append(tr.started, id)
	tr.running++
	tr.peak = max(tr.peak, tr.running)
	if key != "" {
		tr.inFlight[key]++
		if tr.inFlight[key] > 1 {
			tr.overlap = append(tr.overlap, key)
		}
	}
}

func (tr *tracer) leave(key string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.running--
	if key != "" {
		tr.inFlight[key]--
	}
}

func (tr *tracer) startedIDs() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.started...)
}

// act performs a behaviour.
func act(behaviour string) error {
	switch behaviour {
	case bFail:
		return errHandler
	case bPerm:
		return Permanent(errHandler)
	case bPanic:
		panic("handler exploded")
	default:
		return nil
	}
}

func (tr *tracer) sqsHandler(key func(events.SQSMessage) string) func(context.Context, events.SQSMessage) error {
	return func(_ context.Context, m events.SQSMessage) error {
		k := key(m)
		tr.enter(m.MessageId, k)
		defer tr.leave(k)
		return act(m.Body)
	}
}

func reportedSQS(r events.SQSEventResponse) []string {
	ids := make([]string, 0, len(r.BatchItemFailures))
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	sort.Strings(ids)
	return ids
}

func TestProcessSQS(t *testing.T) {
	tests := []struct {
		name      string
		msgs      []events.SQSMessage
		noKey     bool
		want      []string // reported ids, sorted
		started   []string // ids whose handler ran, sorted
		permanent []string
	}{
		{
			name:    "all succeed",
			msgs:    []events.SQSMessage{sqsMsg("1", "a", bOK), sqsMsg("2", "b", bOK), sqsMsg("3", "a", bOK)},
			want:    []string{},
			started: []string{"1", "2", "3"},
		},
		{
			name: "a failure fails the rest of its group only",
			msgs: []events.SQSMessage{
				sqsMsg("1", "a", bOK), sqsMsg("2", "a", bFail), sqsMsg("3", "b", bOK),
				sqsMsg("4", "a", bOK), sqsMsg("5", "b", bOK), sqsMsg("6", "a", bOK),
			},
			want:    []string{"2", "4", "6"},
			started: []string{"1", "2", "3", "5"},
		},
		{
			name:      "a permanent error drops the message and the group goes on",
			msgs:      []events.SQSMessage{sqsMsg("1", "a", bPerm), sqsMsg("2", "a", bOK), sqsMsg("3", "b", bFail)},
			want:      []string{"3"},
			started:   []string{"1", "2", "3"},
			permanent: []string{"1"},
		},
		{
			name:    "a panic is a failure of its message",
			msgs:    []events.SQSMessage{sqsMsg("1", "a", bPanic), sqsMsg("2", "a", bOK), sqsMsg("3", "b", bOK)},
			want:    []string{"1", "2"},
			started: []string{"1", "3"},
		},
		{
			name:    "messages without a key are independent",
			msgs:    []events.SQSMessage{sqsMsg("1", "", bFail), sqsMsg("2", "", bOK), sqsMsg("3", "", bFail)},
			want:    []string{"1", "3"},
			started: []string{"1", "2", "3"},
		},
		{
			name:    "without a key function every message is its own group",
			msgs:    []events.SQSMessage{sqsMsg("1", "a", bFail), sqsMsg("2", "a", bOK)},
			noKey:   true,
			want:    []string{"1"},
			started: []string{"1", "2"},
		},
		{
			name:    "a duplicated id is reported once",
			msgs:    []events.SQSMessage{sqsMsg("1", "a", bFail), sqsMsg("1", "a", bOK)},
			want:    []string{"1"},
			started: []string{"1"},
		},
		{
			name:    "an empty batch reports nothing",
			want:    []string{},
			started: []string{},
		},
	}
	for _, tc := range tests {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/workers=%d", tc.name, workers), func(t *testing.T) {
				tr := newTracer()
				var mu sync.Mutex
				var perm []string
				var failures = map[string]error{}
				opts := SQSOptions{
					Options: Options{
						Workers: workers,
						OnPermanent: func(_ context.Context, id string, err error) {
							if !IsPermanent(err) || !errors.Is(err, errHandler) {
								t.Errorf("OnPermanent(%s) with %v", id, err)
							}
							mu.Lock()
							perm = append(perm, id)
							mu.Unlock()
						},
						OnFailure: func(_ context.Context, id string, err error) {
							mu.Lock()
							failures[id] = err
							mu.Unlock()
						},
					},
					Key: ByMessageAttribute("caseId"),
				}
				if tc.noKey {
					opts.Key = nil
				}
				resp := ProcessSQS(context.Background(), events.SQSEvent{Records: tc.msgs}, opts, tr.sqsHandler(ByMessageAttribute("caseId")))
				if resp.BatchItemFailures == nil {
					t.Fatal("nil BatchItemFailures: Lambda needs an empty list")
				}
				if got := reportedSQS(resp); !slices.Equal(got, tc.want) {
					t.Fatalf("reported %v, want %v", got, tc.want)
				}
				started := tr.startedIDs()
				sort.Strings(started)
				if len(started) == 0 {
					started = []string{}
				}
				if !slices.Equal(started, tc.started) {
					t.Fatalf("started %v, want %v", started, tc.started)
				}
				sort.Strings(perm)
				if !slices.Equal(perm, tc.permanent) {
					t.Fatalf("OnPermanent for %v, want %v", perm, tc.permanent)
				}
				for _, id := range tc.want {
					if failures[id] == nil {
						t.Fatalf("no OnFailure for reported %s", id)
					}
				}
			})
		}
	}
}

// TestWorkersBoundConcurrency holds every handler until the expected number
// of workers is busy: the pool must reach exactly that many at once.
func TestWorkersBoundConcurrency(t *testing.T) {
	var msgs []events.SQSMessage
	for i := range 40 {
		msgs = append(msgs, sqsMsg(fmt.Sprint(i), fmt.Sprintf("k%d", i%20), bOK))
	}
	for _, workers := range []int{1, 2, 5} {
		tr := newTracer()
		entered := make(chan struct{}, len(msgs))
		release := make(chan struct{})
		done := make(chan events.SQSEventResponse)
		go func() {
			opts := SQSOptions{Key: ByMessageAttribute("caseId"), Options: Options{Workers: workers}}
			done <- ProcessSQS(context.Background(), events.SQSEvent{Records: msgs}, opts,
				func(_ context.Context, m events.SQSMessage) error {
					k := ByMessageAttribute("caseId")(m)
					tr.enter(m.MessageId, k)
					defer tr.leave(k)
					entered <- struct{}{}
					<-release
					return nil
				})
		}()
		for range workers {
			<-entered
		}
		// Give any handler beyond the bound the chance to start.
		for range 2000 {
			runtime.Gosched()
		}
		close(release)
		resp := <-done
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures %v", resp.BatchItemFailures)
		}
		if tr.peak != workers {
			t.Fatalf("%d handlers at once with %d workers", tr.peak, workers)
		}
	}
}

func TestProcessSQSFailureReasons(t *testing.T) {
	msgs := []events.SQSMessage{sqsMsg("p", "a", bPanic), sqsMsg("after", "a", bOK), sqsMsg("f", "b", bFail)}
	reasons := map[string]error{}
	var mu sync.Mutex
	opts := SQSOptions{Key: ByMessageAttribute("caseId"), Options: Options{OnFailure: func(_ context.Context, id string, err error) {
		mu.Lock()
		reasons[id] = err
		mu.Unlock()
	}}}
	ProcessSQS(context.Background(), events.SQSEvent{Records: msgs}, opts, newTracer().sqsHandler(ByMessageAttribute("caseId")))
	var pe *PanicError
	if !errors.As(reasons["p"], &pe) || pe.Value != "handler exploded" || !strings.Contains(string(pe.Stack), "goroutine") {
		t.Fatalf("panic reason %v, want a PanicError with value and stack", reasons["p"])
	}
	if !errors.Is(reasons["after"], ErrGroupFailed) {
		t.Fatalf("skipped reason %v, want ErrGroupFailed", reasons["after"])
	}
	if !errors.Is(reasons["f"], errHandler) {
		t.Fatalf("failure reason %v, want the handler's error", reasons["f"])
	}
}

func TestCallbackPanicsAreContained(t *testing.T) {
	msgs := []events.SQSMessage{sqsMsg("1", "a", bPerm), sqsMsg("2", "a", bFail), sqsMsg("3", "b", bOK)}
	opts := SQSOptions{Key: ByMessageAttribute("caseId"), Options: Options{
		OnPermanent: func(context.Context, string, error) { panic("callback") },
		OnFailure:   func(context.Context, string, error) { panic("callback") },
	}}
	resp := ProcessSQS(context.Background(), events.SQSEvent{Records: msgs}, opts, newTracer().sqsHandler(ByMessageAttribute("caseId")))
	if got := reportedSQS(resp); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("reported %v, want [2]", got)
	}
}

// fakeClock returns base and advances by step on every handler call.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestProcessSQSDeadline(t *testing.T) {
	deadline := time.Now().Add(time.Hour) // far away: only the injected clock moves
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	clk := &fakeClock{now: deadline.Add(-10 * time.Second)}
	msgs := []events.SQSMessage{
		sqsMsg("1", "a", bOK), sqsMsg("2", "a", bOK), sqsMsg("3", "a", bOK), sqsMsg("4", "a", bOK), sqsMsg("5", "a", bOK),
	}
	reasons := map[string]error{}
	tr := newTracer()
	opts := SQSOptions{Key: ByMessageAttribute("caseId"), Options: Options{
		DeadlineMargin: 5 * time.Second,
		Clock:          clk.Now,
		OnFailure:      func(_ context.Context, id string, err error) { reasons[id] = err },
	}}
	handler := tr.sqsHandler(ByMessageAttribute("caseId"))
	resp := ProcessSQS(ctx, events.SQSEvent{Records: msgs}, opts, func(ctx context.Context, m events.SQSMessage) error {
		clk.Advance(3 * time.Second) // each message takes 3 s
		return handler(ctx, m)
	})
	// remaining 10 s -> 1 runs; 7 s -> 2 runs; 4 s < 5 s -> 3 not started; 4, 5 follow it.
	if got := reportedSQS(resp); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Fatalf("reported %v, want [3 4 5]", got)
	}
	if got := tr.startedIDs(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("started %v, want [1 2]", got)
	}
	for _, id := range []string{"3", "4", "5"} {
		if !errors.Is(reasons[id], ErrDeadline) {
			t.Fatalf("reason for %s: %v, want ErrDeadline", id, reasons[id])
		}
	}
}

func TestProcessSQSCancelledContextStartsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr := newTracer()
	msgs := []events.SQSMessage{sqsMsg("1", "", bOK), sqsMsg("2", "k", bOK)}
	resp := ProcessSQS(ctx, events.SQSEvent{Records: msgs}, SQSOptions{Key: ByMessageAttribute("caseId")}, tr.sqsHandler(ByMessageAttribute("caseId")))
	if got := reportedSQS(resp); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("reported %v, want both", got)
	}
	if len(tr.startedIDs()) != 0 {
		t.Fatalf("started %v after cancellation", tr.startedIDs())
	}
}

func TestKeyFunctions(t *testing.T) {
	s := "case-1"
	m := events.SQSMessage{
		Body:              `{"caseId":"case-9","n":1}`,
		Attributes:        map[string]string{"MessageGroupId": "g1"},
		MessageAttributes: map[string]events.SQSMessageAttribute{"caseId": {StringValue: &s}, "bin": {BinaryValue: []byte{1}}},
	}
	tests := []struct {
		name string
		key  func(events.SQSMessage) string
		msg  events.SQSMessage
		want string
	}{
		{"attribute", ByMessageAttribute("caseId"), m, "case-1"},
		{"missing attribute", ByMessageAttribute("tenant"), m, ""},
		{"binary attribute", ByMessageAttribute("bin"), m, ""},
		{"group id", ByMessageGroupID, m, "g1"},
		{"body field", ByBodyField("caseId"), m, "case-9"},
		{"non-string body field", ByBodyField("n"), m, ""},
		{"missing body field", ByBodyField("x"), m, ""},
		{"body not JSON", ByBodyField("caseId"), events.SQSMessage{Body: "caseId"}, ""},
		{"body an array", ByBodyField("caseId"), events.SQSMessage{Body: `["caseId"]`}, ""},
	}
	for _, tc := range tests {
		if got := tc.key(tc.msg); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestReceiveCount(t *testing.T) {
	for in, want := range map[string]int{"3": 3, "1": 1, "": 0, "x": 0, "-2": 0} {
		m := events.SQSMessage{Attributes: map[string]string{"ApproximateReceiveCount": in}}
		if got := ReceiveCount(m); got != want {
			t.Errorf("ReceiveCount(%q) = %d, want %d", in, got, want)
		}
	}
	if ReceiveCount(events.SQSMessage{}) != 0 {
		t.Error("missing attribute not 0")
	}
}

func TestPanickingKeyFunction(t *testing.T) {
	msgs := []events.SQSMessage{sqsMsg("1", "a", bFail), sqsMsg("2", "a", bOK)}
	opts := SQSOptions{Key: func(events.SQSMessage) string { panic("key") }}
	resp := ProcessSQS(context.Background(), events.SQSEvent{Records: msgs}, opts, newTracer().sqsHandler(ByMessageAttribute("caseId")))
	if got := reportedSQS(resp); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("reported %v, want [1]: a panicking key makes independent messages", got)
	}
	recs := []events.DynamoDBEventRecord{ddbRec("1", "a", bOK)}
	dresp := ProcessDynamoDB(context.Background(), events.DynamoDBEvent{Records: recs},
		DynamoDBOptions{Key: func(events.DynamoDBEventRecord) string { panic("key") }}, newTracer().ddbHandler(nil))
	if len(dresp.BatchItemFailures) != 0 {
		t.Fatalf("reported %v", dresp.BatchItemFailures)
	}
}

func TestNilHandlerFailsEveryMessage(t *testing.T) {
	msgs := []events.SQSMessage{sqsMsg("1", "", bOK), sqsMsg("2", "", bOK)}
	resp := ProcessSQS(context.Background(), events.SQSEvent{Records: msgs}, SQSOptions{}, nil)
	if got := reportedSQS(resp); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("reported %v, want both", got)
	}
}

func FuzzByBodyField(f *testing.F) {
	f.Add(`{"caseId":"x"}`, "caseId")
	f.Add(`{"caseId":1}`, "caseId")
	f.Add(`not json`, "")
	f.Fuzz(func(t *testing.T, body, field string) {
		got := ByBodyField(field)(events.SQSMessage{Body: body})
		if got == "" {
			return
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("key %q from a body that is not a JSON object: %v", got, err)
		}
		if doc[field] != got {
			t.Fatalf("key %q, but member %q is %v", got, field, doc[field])
		}
	})
}

// TestPropertySQS checks random batches: every message is acknowledged
// (handler succeeded), dropped (permanent) or reported, exactly one of these;
// reported ids are unique; the messages of a group start in batch order, one
// at a time, and none starts after a failure in its group.
func TestPropertySQS(t *testing.T) {
	behaviours := []string{bOK, bOK, bOK, bFail, bPerm, bPanic}
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 99))
		n := rng.IntN(25)
		msgs := make([]events.SQSMessage, n)
		keyOf := map[string]string{}
		index := map[string]int{}
		for i := range msgs {
			id := fmt.Sprintf("m%02d", i)
			key := ""
			if rng.IntN(5) > 0 {
				key = fmt.Sprintf("k%d", rng.IntN(4))
			}
			msgs[i] = sqsMsg(id, key, behaviours[rng.IntN(len(behaviours))])
			keyOf[id], index[id] = key, i
		}
		tr := newTracer()
		var mu sync.Mutex
		dropped := map[string]int{}
		opts := SQSOptions{Key: ByMessageAttribute("caseId"), Options: Options{
			Workers: 1 + rng.IntN(5),
			OnPermanent: func(_ context.Context, id string, _ error) {
				mu.Lock()
				dropped[id]++
				mu.Unlock()
			},
		}}
		resp := ProcessSQS(context.Background(), events.SQSEvent{Records: msgs}, opts, tr.sqsHandler(ByMessageAttribute("caseId")))

		reported := map[string]int{}
		for _, f := range resp.BatchItemFailures {
			reported[f.ItemIdentifier]++
		}
		started := map[string]bool{}
		for _, id := range tr.startedIDs() {
			started[id] = true
		}
		failedAt := map[string]int{} // key -> index of its first failure
		for i, m := range msgs {
			k := m.MessageAttributes["caseId"]
			if k.StringValue == nil || !started[m.MessageId] {
				continue
			}
			if _, ok := failedAt[*k.StringValue]; !ok && (m.Body == bFail || m.Body == bPanic) {
				failedAt[*k.StringValue] = i
			}
		}
		for _, m := range msgs {
			id := m.MessageId
			acked := started[id] && m.Body == bOK
			if n := btoi(acked) + dropped[id] + reported[id]; n != 1 {
				t.Fatalf("seed %d: %s (%s, started=%v) acked=%v dropped=%d reported=%d",
					seed, id, m.Body, started[id], acked, dropped[id], reported[id])
			}
			if dropped[id] == 1 && (m.Body != bPerm || !started[id]) {
				t.Fatalf("seed %d: %s dropped but behaviour %s", seed, id, m.Body)
			}
			if !started[id] {
				fi, ok := failedAt[keyOf[id]]
				if keyOf[id] == "" || !ok || fi >= index[id] {
					t.Fatalf("seed %d: %s not started without an earlier failure in its group", seed, id)
				}
			}
			if started[id] && keyOf[id] != "" {
				if fi, ok := failedAt[keyOf[id]]; ok && fi < index[id] {
					t.Fatalf("seed %d: %s started after a failure in its group", seed, id)
				}
			}
		}
		last := map[string]int{}
		for _, id := range tr.startedIDs() {
			k := keyOf[id]
			if k == "" {
				continue
			}
			if prev, ok := last[k]; ok && prev > index[id] {
				t.Fatalf("seed %d: group %s started out of order", seed, k)
			}
			last[k] = index[id]
		}
		if len(tr.overlap) > 0 {
			t.Fatalf("seed %d: groups %v had two messages in flight", seed, tr.overlap)
		}
		if tr.peak > opts.Workers {
			t.Fatalf("seed %d: %d handlers at once with %d workers", seed, tr.peak, opts.Workers)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func BenchmarkProcessSQS10(b *testing.B) {
	msgs := make([]events.SQSMessage, 10)
	for i := range msgs {
		msgs[i] = sqsMsg(fmt.Sprint(i), fmt.Sprintf("k%d", i%3), bOK)
	}
	ev := events.SQSEvent{Records: msgs}
	opts := SQSOptions{Key: ByMessageAttribute("caseId")}
	b.ReportAllocs()
	for b.Loop() {
		ProcessSQS(context.Background(), ev, opts, func(context.Context, events.SQSMessage) error { return nil })
	}
}
