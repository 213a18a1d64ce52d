package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
)

var endpoint *localaws.Endpoint

func TestMain(m *testing.M) {
	if u := os.Getenv("KNHK_TEST_ENDPOINT"); u != "" {
		endpoint = &localaws.Endpoint{URL: u}
		os.Exit(m.Run())
	}
	e, err := localaws.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "local endpoint:", err)
		os.Exit(1)
	}
	endpoint = e
	code := m.Run()
	_ = e.Stop()
	os.Exit(code)
}

var tableSeq atomic.Int64

// tables creates a fresh receipts and state table pair for one test.
func tables(t *testing.T, optFns ...func(*dynamodb.Options)) (*dynamodb.Client, string, string) {
	t.Helper()
	cfg, err := endpoint.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg, optFns...)
	n := tableSeq.Add(1)
	rt, st := fmt.Sprintf("receipts-%d", n), fmt.Sprintf("state-%d", n)
	if err := CreateTables(context.Background(), db, rt, st); err != nil {
		t.Fatal(err)
	}
	return db, rt, st
}

const descHash = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func genesis(tenant string) history.Event {
	return history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"order":1}`),
		Genesis: &history.Genesis{Tenant: tenant, Namespace: "ns", Workflow: "wf", Version: "1", DescriptorHash: descHash}}
}

func task(g, i int) history.Event {
	return history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))}
}

func TestConcurrentAppendIsLinear(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	s.MaxAttempts, s.BaseDelay, s.MaxDelay = 500, time.Millisecond, 20*time.Millisecond
	g, err := s.Append(ctx, nil, "acme", "race", genesis("acme"))
	if err != nil {
		t.Fatal(err)
	}
	const workers, total = 16, 1000
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			prev := g.Receipt
			for i := w; i < total-1; i += workers {
				res, err := s.Append(ctx, prev, "acme", "race", task(w, i))
				if err != nil {
					errs <- err
					return
				}
				if res.Existing {
					errs <- fmt.Errorf("distinct event %d/%d reported as existing", w, i)
					return
				}
				conflicts.Add(int64(res.Attempts - 1))
				prev = res.Receipt
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rs, bad, err := s.Chain(ctx, "race")
	if err != nil || len(bad) != 0 {
		t.Fatal(err, bad)
	}
	if len(rs) != total {
		t.Fatalf("chain has %d receipts, want %d", len(rs), total)
	}
	if fs := receipt.VerifyChain(rs); len(fs) != 0 {
		t.Fatalf("chain forked or broken: %v", fs[:min(5, len(fs))])
	}
	seen := map[string]bool{}
	for _, r := range rs[1:] {
		if seen[string(r.Output)] {
			t.Fatalf("event %s recorded twice", r.Output)
		}
		seen[string(r.Output)] = true
	}
	t.Logf("%d receipts, %d lost races retried", len(rs), conflicts.Load())
}

func TestReappendIsNoop(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	g, err := s.Append(ctx, nil, "acme", "c1", genesis("acme"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Append(ctx, g.Receipt, "acme", "c1", task(0, 1))
	if err != nil || first.Existing {
		t.Fatal(err, first)
	}
	// The same event again from the same (now stale) position.
	again, err := s.Append(ctx, g.Receipt, "acme", "c1", task(0, 1), receipt.WithUsage(receipt.Usage{BilledMs: 9}))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Existing || again.Receipt.Hash != first.Receipt.Hash {
		t.Fatalf("re-append wrote a new receipt: %+v", again)
	}
	// A genesis re-sent is the same case start.
	g2, err := s.Append(ctx, nil, "acme", "c1", genesis("acme"))
	if err == nil || !errors.Is(err, ErrCaseExists) {
		// The tail is not the genesis any more, so this is a conflict.
		t.Fatalf("second genesis on a longer chain: %v %+v", err, g2)
	}
	// A different event from the stale position goes to the next seq.
	other, err := s.Append(ctx, g.Receipt, "acme", "c1", task(0, 2))
	if err != nil || other.Existing || other.Receipt.Seq != 2 {
		t.Fatalf("different event: %v %+v", err, other)
	}
	rs, _, err := s.Chain(ctx, "c1")
	if err != nil || len(rs) != 3 || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("chain: %v %d", err, len(rs))
	}
	// Genesis re-sent while it is still the tail is a no-op.
	h, _ := s.Append(ctx, nil, "acme", "c2", genesis("acme"))
	h2, err := s.Append(ctx, nil, "acme", "c2", genesis("acme"))
	if err != nil || !h2.Existing || h2.Receipt.Hash != h.Receipt.Hash {
		t.Fatalf("genesis re-sent: %v %+v", err, h2)
	}
}

// counter counts the requests sent, by operation name, at the Finalize step
// (so SDK retries would be counted too).
type counter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *counter) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("countOps",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				c.ops[awsmiddleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
}

func TestOneWritePerReceipt(t *testing.T) {
	c := &counter{ops: map[string]int{}}
	db, rt, _ := tables(t, c.option)
	c.mu.Lock()
	c.ops = map[string]int{} // forget CreateTable
	c.mu.Unlock()
	ctx := context.Background()
	s := NewReceipts(db, rt)
	res, err := s.Append(ctx, nil, "acme", "c", genesis("acme"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	prev := res.Receipt
	for i := 1; i < n; i++ {
		res, err := s.Append(ctx, prev, "acme", "c", task(0, i))
		if err != nil || res.Attempts != 1 || res.Existing {
			t.Fatal(err, res)
		}
		if res.WriteUnits <= 0 {
			t.Fatalf("consumed write capacity not captured: %+v", res)
		}
		prev = res.Receipt
	}
	if want := map[string]int{"PutItem": n}; !mapsEqual(c.ops, want) {
		t.Fatalf("requests %v, want %v", c.ops, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// appendN writes a chain of n receipts as items of one receipt each, the
// layout written before segments, and returns them.
func appendN(t *testing.T, s *Receipts, caseID string, n int) []*receipt.Receipt {
	t.Helper()
	var prev *receipt.Receipt
	var out []*receipt.Receipt
	for i := 0; i < n; i++ {
		ev := task(0, i)
		if i == 0 {
			ev = genesis("acme")
		}
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		it, err := Item(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it}); err != nil {
			t.Fatal(err)
		}
		prev = r
		out = append(out, prev)
	}
	return out
}

func rawItem(t *testing.T, db *dynamodb.Client, table, caseID string, seq int) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"caseId": &types.AttributeValueMemberS{Value: caseID}, "seq": &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}}})
	if err != nil || out.Item == nil {
		t.Fatalf("get %s/%d: %v", caseID, seq, err)
	}
	return out.Item
}

func putRaw(t *testing.T, db *dynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func withSeq(item map[string]types.AttributeValue, seq int) map[string]types.AttributeValue {
	c := map[string]types.AttributeValue{}
	for k, v := range item {
		c[k] = v
	}
	c["seq"] = &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}
	return c
}

func TestTamperInTable(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	cases := []struct {
		name   string
		tamper func(caseID string, rs []*receipt.Receipt)
		want   []receipt.Kind
		seq    int64
	}{
		{"one byte of a field", func(c string, _ []*receipt.Receipt) {
			it := rawItem(t, db, rt, c, 4)
			r := it["r"].(*types.AttributeValueMemberS).Value
			it["r"] = &types.AttributeValueMemberS{Value: strings.Replace(r, `"/do/0/step"`, `"/do/0/stop"`, 1)}
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.HashMismatch}, 4},
		{"delete", func(c string, _ []*receipt.Receipt) {
			_, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(rt),
				Key: map[string]types.AttributeValue{"caseId": &types.AttributeValueMemberS{Value: c}, "seq": &types.AttributeValueMemberN{Value: "5"}}})
			if err != nil {
				t.Fatal(err)
			}
		}, []receipt.Kind{receipt.Gap}, 5},
		{"swap", func(c string, _ []*receipt.Receipt) {
			a, b := rawItem(t, db, rt, c, 3), rawItem(t, db, rt, c, 4)
			putRaw(t, db, rt, withSeq(a, 4))
			putRaw(t, db, rt, withSeq(b, 3))
		}, []receipt.Kind{receipt.Gap, receipt.UnexpectedSeq}, 3},
		{"insert forged with a correct hash", func(c string, rs []*receipt.Receipt) {
			forged, err := receipt.New(rs[4], "acme", c, history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(`{"refund":true}`)})
			if err != nil {
				t.Fatal(err)
			}
			for i := len(rs) - 1; i >= 5; i-- { // shift 5.. up by one
				putRaw(t, db, rt, withSeq(rawItem(t, db, rt, c, i), i+1))
			}
			it, _ := Item(forged)
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.BrokenLink, receipt.UnexpectedSeq}, 5},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caseID := fmt.Sprintf("tamper-%d", i)
			rs := appendN(t, s, caseID, 10)
			c.tamper(caseID, rs)
			got, bad, err := s.Chain(ctx, caseID)
			if err != nil || len(bad) != 0 {
				t.Fatal(err, bad)
			}
			fs := receipt.VerifyChain(got)
			var ks []receipt.Kind
			for _, f := range fs {
				ks = append(ks, f.Kind)
			}
			slices.Sort(ks)
			if ks = slices.Compact(ks); !slices.Equal(ks, c.want) {
				t.Fatalf("kinds %v, want %v: %v", ks, c.want, fs)
			}
			if fs[0].Seq != c.seq || fs[0].CaseID != caseID || fs[0].Tenant != "acme" {
				t.Fatalf("first finding %+v, want seq %d of %s", fs[0], c.seq, caseID)
			}
		})
	}
}

func TestMalformedItemIsAFinding(t *testing.T) {
	db, rt, _ := tables(t)
	s := NewReceipts(db, rt)
	appendN(t, s, "m", 3)
	it := rawItem(t, db, rt, "m", 1)
	it["r"] = &types.AttributeValueMemberS{Value: "{not json"}
	putRaw(t, db, rt, it)
	rs, bad, err := s.Chain(context.Background(), "m")
	if err != nil || len(rs) != 2 || len(bad) != 1 || bad[0].Kind != receipt.Malformed || bad[0].Seq != 1 {
		t.Fatalf("%v %d %v", err, len(rs), bad)
	}
}

func TestDetachedPayloadGoesToBlobStore(t *testing.T) {
	db, rt, st := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	g := appendN(t, s, "big", 1)[0]
	big := json.RawMessage(`{"x":"` + strings.Repeat("y", receipt.InlineLimit) + `"}`)
	if _, err := s.Append(ctx, g, "acme", "big", history.Event{Type: history.TaskCompleted, Output: big}); err == nil {
		t.Fatal("large payload accepted without a blob store")
	}
	state := NewState(db, st)
	s.Blobs = state
	res, err := s.Append(ctx, g, "acme", "big", history.Event{Type: history.TaskCompleted, Output: big})
	if err != nil {
		t.Fatal(err)
	}
	b, err := state.Blob(ctx, res.Receipt.OutputHash)
	if err != nil || string(b) != string(big) {
		t.Fatalf("blob: %v (%d bytes)", err, len(b))
	}
	if _, err := state.Blob(ctx, strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestAppendExact(t *testing.T) {
	c := &counter{ops: map[string]int{}}
	db, rt, st := tables(t, c.option)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	s.Blobs = NewState(db, st)
	g, err := s.AppendExact(ctx, nil, "acme", "x", genesis("acme"))
	if err != nil || g.Existing {
		t.Fatal(err, g)
	}
	c.mu.Lock()
	c.ops = map[string]int{}
	c.mu.Unlock()
	a, err := s.AppendExact(ctx, g.Receipt, "acme", "x", task(0, 1))
	if err != nil || a.Existing || a.Receipt.Seq != 1 {
		t.Fatal(err, a)
	}
	if want := map[string]int{"PutItem": 1}; !mapsEqual(c.ops, want) {
		t.Fatalf("uncontended exact append sent %v, want %v", c.ops, want)
	}
	// The same event again at the same position: a retried write.
	again, err := s.AppendExact(ctx, g.Receipt, "acme", "x", task(0, 1))
	if err != nil || !again.Existing || again.Receipt.Hash != a.Receipt.Hash {
		t.Fatalf("re-append of the same event = %+v, %v; want the stored receipt", again, err)
	}
	// Another event at a taken position: the caller must re-read.
	if _, err := s.AppendExact(ctx, g.Receipt, "acme", "x", task(0, 2)); !errors.Is(err, ErrConflict) {
		t.Fatalf("append at a taken position = %v, want ErrConflict", err)
	}
	rs, bad, err := s.Chain(ctx, "x")
	if err != nil || len(bad) != 0 || len(rs) != 2 || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("chain after exact appends: %d receipts, %v, %v", len(rs), bad, err)
	}
	evs, err := s.Events(ctx, rs)
	if err != nil || evs[1].Type != history.TaskCompleted || string(evs[1].Output) != `{"g":0,"i":1}` {
		t.Fatalf("events = %+v, %v", evs, err)
	}
}

func TestListenIndexFindsOnlyMatchingCases(t *testing.T) {
	cnt := &counter{ops: map[string]int{}}
	db, _, st := tables(t, cnt.option)
	ctx := context.Background()
	c := NewCases(db, st)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	claim := func(id string) ListenKey {
		return ListenKey{Type: "claim.decided", Fields: []ListenField{{Name: "claim", From: "${ .subject }", Value: json.RawMessage(`"` + id + `"`)}}}
	}
	anyEvent := ListenKey{}
	// 50 claims wait, each for its own decision; two cases wait for any event.
	for i := range 50 {
		must(c.Subscribe(ctx, "acme", fmt.Sprintf("case-%02d", i), []ListenKey{claim(fmt.Sprintf("clm-%02d", i))}, nil))
	}
	must(c.Subscribe(ctx, "acme", "any-1", []ListenKey{anyEvent}, nil))
	must(c.Subscribe(ctx, "acme", "any-2", []ListenKey{anyEvent, claim("clm-07")}, nil))
	must(c.Subscribe(ctx, "acme#x", "alias-1", []ListenKey{claim("clm-07")}, nil)) // another tenant, same key
	shapes, err := c.ListenShapes(ctx, "acme")
	must(err)
	if len(shapes) != 2 {
		t.Fatalf("shapes = %+v, want the claim shape and the any-event shape", shapes)
	}
	for _, sh := range shapes {
		for _, f := range sh.Fields {
			if f.Value != nil {
				t.Fatalf("a shape carries a value: %+v", sh)
			}
		}
	}
	cnt.mu.Lock()
	cnt.ops = map[string]int{}
	cnt.mu.Unlock()
	for key, want := range map[string][]string{
		"clm-07": {"any-2", "case-07"},
		"clm-31": {"case-31"},
		"clm-99": nil,
	} {
		got, err := c.Listeners(ctx, "acme", claim(key))
		must(err)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Listeners(%s) = %v, want %v", key, got, want)
		}
	}
	// One read per lookup, however many cases wait.
	if want := map[string]int{"Query": 3}; !mapsEqual(cnt.ops, want) {
		t.Errorf("three lookups sent %v, want %v", cnt.ops, want)
	}
	if got, _ := c.Listeners(ctx, "acme", anyEvent); len(got) != 2 {
		t.Errorf("any-event listeners = %v", got)
	}
	if got, _ := c.Listeners(ctx, "acme#x", claim("clm-07")); !slices.Equal(got, []string{"alias-1"}) {
		t.Errorf("listeners of tenant acme#x = %v", got)
	}
	// A case that now waits for another claim leaves its old entry.
	must(c.Subscribe(ctx, "acme", "case-07", []ListenKey{claim("clm-70")}, []ListenKey{claim("clm-07")}))
	if got, _ := c.Listeners(ctx, "acme", claim("clm-07")); !slices.Equal(got, []string{"any-2"}) {
		t.Errorf("after resubscribe, clm-07 listeners = %v", got)
	}
	if got, _ := c.Listeners(ctx, "acme", claim("clm-70")); !slices.Equal(got, []string{"case-07"}) {
		t.Errorf("after resubscribe, clm-70 listeners = %v", got)
	}
	must(c.Unsubscribe(ctx, "acme", "any-2", []ListenKey{anyEvent, claim("clm-07")}))
	if got, _ := c.Listeners(ctx, "acme", claim("clm-07")); len(got) != 0 {
		t.Errorf("after unsubscribe, clm-07 listeners = %v", got)
	}
	subs, err := c.Subscribers(ctx, "acme")
	must(err)
	if len(subs) != 51 || slices.Contains(subs, "any-2") {
		t.Errorf("subscribers after unsubscribe: %d %v", len(subs), subs)
	}
}

func TestListenKeyDigestsAreUnambiguous(t *testing.T) {
	keys := []ListenKey{
		{},
		{Type: "a"},
		{Type: "ab"},
		{Type: "a", Fields: []ListenField{{Name: "b", From: ".x", Value: json.RawMessage(`1`)}}},
		{Type: "a", Fields: []ListenField{{Name: "b", From: ".x", Value: json.RawMessage(`"1"`)}}},
		{Type: "a", Fields: []ListenField{{Name: "b", From: ".x1", Value: json.RawMessage(`1`)}}},
		{Type: "a", Fields: []ListenField{{Name: "b.x", From: "", Value: json.RawMessage(`1`)}}},
		{Type: "a", Fields: []ListenField{{Name: "b", From: ".x"}, {Name: "c", From: ".y"}}},
	}
	seen := map[string]int{}
	for i, k := range keys {
		if j, dup := seen[k.ID()]; dup {
			t.Errorf("keys %d and %d share the digest %s", j, i, k.ID())
		}
		seen[k.ID()] = i
	}
	v := keys[3]
	if v.shape() != keys[4].shape() || v.shape() == v.ID() || v.WithValues([]json.RawMessage{json.RawMessage(`1`)}).ID() != v.ID() {
		t.Errorf("a shape must ignore values and WithValues must restore them")
	}
}
