package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/receipt"
)

func pending(evs ...history.Event) []Pending {
	out := make([]Pending, len(evs))
	for i, ev := range evs {
		out[i] = Pending{Event: ev}
	}
	return out
}

func tasks(g, from, n int) []history.Event {
	evs := make([]history.Event, n)
	for i := range evs {
		evs[i] = task(g, from+i)
	}
	return evs
}

// appendSegments writes a chain as segments of the given sizes (the first
// starting with the genesis) and returns its receipts.
func appendSegments(t *testing.T, s *Receipts, caseID string, sizes ...int) []*receipt.Receipt {
	t.Helper()
	var all []*receipt.Receipt
	var prev *receipt.Receipt
	for _, n := range sizes {
		evs := tasks(0, len(all), n)
		if prev == nil {
			evs[0] = genesis("acme")
		}
		res, err := s.AppendSegment(context.Background(), prev, "acme", caseID, pending(evs...))
		// Existing is allowed: under load the SDK retries a write whose
		// answer was lost, and the retry finds the very segment it wrote
		// (which the callers' chain checks then read back).
		if err != nil || len(res.Receipts) != n {
			t.Fatalf("append segment of %d: %v %+v", n, err, res)
		}
		all = append(all, res.Receipts...)
		prev = res.Receipt
	}
	return all
}

// items reads a case's stored items, in key order.
func items(t *testing.T, db *dynamodb.Client, table, caseID string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := db.Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("caseId = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: caseID}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

func hashes(rs []*receipt.Receipt) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Hash
	}
	return out
}

// A five-task case written in one step is one conditional write, and reads
// back as the same seven receipts (same canonical bytes, same hashes).
func TestSegmentIsOneWrite(t *testing.T) {
	c := &counter{ops: map[string]int{}}
	db, rt, _ := tables(t, c.option)
	c.mu.Lock()
	c.ops = map[string]int{}
	c.mu.Unlock()
	ctx := context.Background()
	s := NewReceipts(db, rt)
	evs := append([]history.Event{genesis("acme")}, tasks(0, 1, 5)...)
	evs = append(evs, history.Event{Type: history.CaseCompleted})
	res, err := s.AppendSegment(ctx, nil, "acme", "five", pending(evs...))
	if err != nil || res.Existing || res.Attempts != 1 || len(res.Receipts) != 7 || res.WriteUnits <= 0 {
		t.Fatalf("%v %+v", err, res)
	}
	if want := map[string]int{"PutItem": 1}; !mapsEqual(c.ops, want) {
		t.Fatalf("requests %v, want %v", c.ops, want)
	}
	rs, bad, err := s.Chain(ctx, "five")
	if err != nil || len(bad) != 0 || !slices.Equal(hashes(rs), hashes(res.Receipts)) || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("chain: %v %v %d", err, bad, len(rs))
	}
	for i, r := range rs {
		a, _ := r.Canonical()
		b, _ := res.Receipts[i].Canonical()
		if string(a) != string(b) {
			t.Fatalf("seq %d reads back as %s, wrote %s", i, a, b)
		}
	}
	its := items(t, db, rt, "five")
	if len(its) != 1 {
		t.Fatalf("%d items, want 1", len(its))
	}
	for _, e := range its[0][receipt.AttrReceipts].(*types.AttributeValueMemberL).Value {
		if v := e.(*types.AttributeValueMemberS).Value; strings.Contains(v, `"five"`) || strings.Contains(v, `"prevHash"`) {
			t.Fatalf("stored receipt repeats what the item carries: %s", v)
		}
	}
	// The compact item bills fewer write units than one item per receipt.
	var legacy float64
	for _, r := range rs {
		it, _ := Item(r)
		out, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(rt), Item: withCase(it, "five-legacy"),
			ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal})
		if err != nil {
			t.Fatal(err)
		}
		legacy += units(out.ConsumedCapacity)
	}
	if res.WriteUnits >= legacy {
		t.Fatalf("segment write units %v, one item per receipt %v", res.WriteUnits, legacy)
	}
	t.Logf("five-task case: 1 write, %v write units (one item per receipt: 7 writes, %v units)", res.WriteUnits, legacy)
}

func withCase(item map[string]types.AttributeValue, caseID string) map[string]types.AttributeValue {
	c := map[string]types.AttributeValue{}
	for k, v := range item {
		c[k] = v
	}
	c["caseId"] = &types.AttributeValueMemberS{Value: caseID}
	return c
}

// Segments are bounded in receipts and in bytes; a run longer than a bound
// becomes several items, each written at its chain position.
func TestSegmentBounds(t *testing.T) {
	db, rt, st := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	s.Blobs = NewState(db, st)
	n := 2*receipt.MaxSegmentReceipts + 5
	evs := append([]history.Event{genesis("acme")}, tasks(0, 1, n-1)...)
	res, err := s.AppendSegment(ctx, nil, "acme", "many", pending(evs...))
	if err != nil || res.Attempts != 3 || len(res.Receipts) != n {
		t.Fatalf("%v attempts %d receipts %d", err, res.Attempts, len(res.Receipts))
	}
	// Payloads near the inline limit: the byte bound splits them.
	fat := make([]history.Event, 20)
	for i := range fat {
		fat[i] = history.Event{Type: history.TaskCompleted, Task: "/do/0/step",
			Output: json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", receipt.InlineLimit-40)))}
	}
	big, err := s.AppendSegment(ctx, res.Receipt, "acme", "many", pending(fat...))
	if err != nil || len(big.Receipts) != len(fat) {
		t.Fatal(err, len(big.Receipts))
	}
	if min := (len(fat)*receipt.InlineLimit + receipt.MaxSegmentBytes - 1) / receipt.MaxSegmentBytes; big.Attempts < min {
		t.Fatalf("%d items for %d KiB, want at least %d", big.Attempts, len(fat)*receipt.InlineLimit>>10, min)
	}
	its := items(t, db, rt, "many")
	if len(its) != 3+big.Attempts {
		t.Fatalf("%d items, want %d", len(its), 3+big.Attempts)
	}
	for _, it := range its {
		l := it[receipt.AttrReceipts].(*types.AttributeValueMemberL).Value
		size := 0
		for _, e := range l {
			size += len(e.(*types.AttributeValueMemberS).Value)
		}
		if len(l) > receipt.MaxSegmentReceipts || size > receipt.MaxSegmentBytes {
			t.Fatalf("item at %v holds %d receipts, %d bytes", it["seq"], len(l), size)
		}
	}
	rs, bad, err := s.Chain(ctx, "many")
	if err != nil || len(bad) != 0 || len(rs) != n+len(fat) || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("chain: %v %v %d", err, bad, len(rs))
	}
}

// A retried segment write whose first try landed returns the stored
// receipts; other events at a taken position are a conflict.
func TestSegmentRetryAndConflict(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	g := appendSegments(t, s, "r", 1)[0]
	first, err := s.AppendSegment(ctx, g, "acme", "r", pending(tasks(0, 1, 3)...))
	if err != nil || first.Existing {
		t.Fatal(err, first)
	}
	again, err := s.AppendSegment(ctx, g, "acme", "r", pending(tasks(0, 1, 3)...))
	if err != nil || !again.Existing || !slices.Equal(hashes(again.Receipts), hashes(first.Receipts)) {
		t.Fatalf("retried write: %v %+v", err, again)
	}
	if re, err := s.AppendSegment(ctx, nil, "acme", "r", pending(genesis("acme"))); err != nil || !re.Existing || re.Receipt.Hash != g.Hash {
		t.Fatalf("the same start again: %v %+v", err, re)
	}
	other := genesis("acme")
	other.Input = json.RawMessage(`{"order":2}`)
	for name, evs := range map[string][]history.Event{
		"other events":   tasks(1, 1, 3),
		"a prefix":       tasks(0, 1, 2),
		"a longer run":   tasks(0, 1, 4),
		"one event":      tasks(1, 1, 1),
		"a second start": {other},
	} {
		prev := g
		if name == "a second start" {
			prev = nil
		}
		if _, err := s.AppendSegment(ctx, prev, "acme", "r", pending(evs...)); !errors.Is(err, ErrConflict) {
			t.Errorf("%s at a taken position: %v, want ErrConflict", name, err)
		}
	}
	rs, _, err := s.Chain(ctx, "r")
	if err != nil || len(rs) != 4 || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("chain: %v %d", err, len(rs))
	}
}

// A chain written before segments (one receipt per item) still reads,
// verifies and extends: the case continues with segments after its last
// item, and Range and Tail read across both layouts.
func TestOldChainsReadAndExtend(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	old := appendN(t, s, "m", 4)
	tail, err := s.Tail(ctx, "m")
	if err != nil || tail.Hash != old[3].Hash {
		t.Fatalf("tail of an old chain: %v %v", err, tail)
	}
	res, err := s.AppendSegment(ctx, tail, "acme", "m", pending(tasks(0, 4, 5)...))
	if err != nil || res.Receipts[0].Seq != 4 || res.Receipts[0].PrevHash != old[3].Hash {
		t.Fatalf("extend: %v %+v", err, res)
	}
	if _, err := s.AppendExact(ctx, old[2], "acme", "m", task(9, 9)); !errors.Is(err, ErrConflict) {
		t.Fatalf("append at an old item's position: %v", err)
	}
	rs, bad, err := s.Chain(ctx, "m")
	if err != nil || len(bad) != 0 || len(rs) != 9 || len(receipt.VerifyChain(rs)) != 0 {
		t.Fatalf("mixed chain: %v %v %d %v", err, bad, len(rs), receipt.VerifyChain(rs))
	}
	evs, err := s.Events(ctx, rs)
	if err != nil || len(evs) != 9 || string(evs[6].Output) != `{"g":0,"i":6}` {
		t.Fatalf("history: %v %d", err, len(evs))
	}
	if tail, err := s.Tail(ctx, "m"); err != nil || tail.Seq != 8 {
		t.Fatalf("tail after extension: %v %v", err, tail)
	}
	for _, c := range []struct{ from, to int64 }{{0, 8}, {2, 5}, {5, 6}, {6, 6}, {8, 20}, {3, 3}} {
		got, bad, err := s.Range(ctx, "m", c.from, c.to)
		want := rs[c.from : min(c.to, 8)+1]
		if err != nil || len(bad) != 0 || !slices.Equal(hashes(got), hashes(want)) {
			t.Errorf("Range(%d, %d) = %d receipts %v %v, want %d", c.from, c.to, len(got), bad, err, len(want))
		}
	}
}

// Racing appenders on one case, each writing segments of random sizes from
// its own (often stale) tail, still make one linear chain: no gap, no
// overlap, every event once. Checked over several random runs.
func TestRacingSegmentAppenders(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	const workers = 16
	for run := range 3 {
		seed := uint64(time.Now().UnixNano()) + uint64(run)
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			caseID := fmt.Sprintf("race-%d", run)
			g := appendSegments(t, s, caseID, 1)[0]
			rnd := rand.New(rand.NewPCG(seed, 1))
			plans := make([][]int, workers) // segment sizes per worker
			total := 1
			for w := range plans {
				for range 4 + rnd.IntN(4) {
					n := 1 + rnd.IntN(12)
					plans[w] = append(plans[w], n)
					total += n
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					prev, next := g, 0
					for _, n := range plans[w] {
						evs := pending(tasks(w, next, n)...)
						next += n
						for attempt := 0; ; attempt++ {
							res, err := s.AppendSegment(ctx, prev, "acme", caseID, evs)
							if err == nil {
								if res.Existing {
									errs <- fmt.Errorf("worker %d: distinct events reported as existing", w)
									return
								}
								prev = res.Receipt
								break
							}
							if !errors.Is(err, ErrConflict) || attempt > 500 {
								errs <- fmt.Errorf("worker %d: %w", w, err)
								return
							}
							if prev, err = s.Tail(ctx, caseID); err != nil {
								errs <- err
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			rs, bad, err := s.Chain(ctx, caseID)
			if err != nil || len(bad) != 0 || len(rs) != total {
				t.Fatalf("chain: %v %v %d receipts, want %d", err, bad, len(rs), total)
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
			// The items partition 0..total-1: each starts where the one
			// before it ended.
			at := int64(0)
			for _, it := range items(t, db, rt, caseID) {
				first, last := itemSeq(it), mustN(t, it[receipt.AttrLast])
				if first != at || last < first {
					t.Fatalf("item [%d, %d] after seq %d: overlap or gap", first, last, at-1)
				}
				at = last + 1
			}
			if at != int64(total) {
				t.Fatalf("items end at %d, want %d", at-1, total-1)
			}
		})
	}
}

func mustN(t *testing.T, v types.AttributeValue) int64 {
	t.Helper()
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("not a number: %v", v)
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// segmentAt returns the item holding seq and the index of seq in it.
func segmentAt(t *testing.T, db *dynamodb.Client, table, caseID string, seq int64) (map[string]types.AttributeValue, int) {
	t.Helper()
	for _, it := range items(t, db, table, caseID) {
		if first := itemSeq(it); first <= seq && seq <= mustN(t, it[receipt.AttrLast]) {
			return it, int(seq - first)
		}
	}
	t.Fatalf("no item holds %s/%d", caseID, seq)
	return nil, 0
}

func setStored(it map[string]types.AttributeValue, i int, v string) {
	l := slices.Clone(it[receipt.AttrReceipts].(*types.AttributeValueMemberL).Value)
	l[i] = &types.AttributeValueMemberS{Value: v}
	it[receipt.AttrReceipts] = &types.AttributeValueMemberL{Value: l}
}

func stored(it map[string]types.AttributeValue, i int) string {
	return it[receipt.AttrReceipts].(*types.AttributeValueMemberL).Value[i].(*types.AttributeValueMemberS).Value
}

// Every tamper class applied to segment items is found by a chain
// verification. Segments: [0] [1..3] [4..5] [6..9].
func TestTamperSegmentsInTable(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	del := func(c string, seq int) {
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(rt),
			Key: map[string]types.AttributeValue{"caseId": &types.AttributeValueMemberS{Value: c}, "seq": &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}}}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		tamper  func(caseID string, rs []*receipt.Receipt)
		want    []receipt.Kind
		seq     int64
		badItem bool // a Malformed finding from the read itself
	}{
		{"one byte of a field", func(c string, _ []*receipt.Receipt) {
			it, i := segmentAt(t, db, rt, c, 5)
			setStored(it, i, strings.Replace(stored(it, i), `"/do/0/step"`, `"/do/0/stop"`, 1))
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.HashMismatch}, 5, false},
		{"a stored hash rewritten", func(c string, _ []*receipt.Receipt) {
			it, i := segmentAt(t, db, rt, c, 2)
			v := stored(it, i)
			j := strings.Index(v, `"hash":"`) + len(`"hash":"`)
			setStored(it, i, v[:j]+strings.Repeat("0", 64)+v[j+64:])
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.HashMismatch}, 2, false},
		{"the segment's prevHash", func(c string, rs []*receipt.Receipt) {
			it, _ := segmentAt(t, db, rt, c, 4)
			it[receipt.AttrPrevHash] = &types.AttributeValueMemberS{Value: rs[1].Hash}
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.BrokenLink, receipt.HashMismatch}, 4, false},
		{"delete a segment", func(c string, _ []*receipt.Receipt) { del(c, 4) }, []receipt.Kind{receipt.Gap}, 4, false},
		{"delete a receipt inside a segment", func(c string, _ []*receipt.Receipt) {
			it, _ := segmentAt(t, db, rt, c, 1)
			l := it[receipt.AttrReceipts].(*types.AttributeValueMemberL).Value
			it[receipt.AttrReceipts] = &types.AttributeValueMemberL{Value: append(slices.Clone(l[:1]), l[2:]...)}
			it[receipt.AttrLast] = &types.AttributeValueMemberN{Value: "2"}
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.Gap, receipt.HashMismatch}, 2, false},
		{"swap two segments", func(c string, _ []*receipt.Receipt) {
			a, _ := segmentAt(t, db, rt, c, 1)
			b, _ := segmentAt(t, db, rt, c, 4)
			putRaw(t, db, rt, withSeq(a, 4))
			putRaw(t, db, rt, withSeq(b, 1))
		}, []receipt.Kind{receipt.BrokenLink, receipt.Gap, receipt.HashMismatch, receipt.UnexpectedSeq}, 1, false},
		{"insert a forged segment with correct hashes", func(c string, rs []*receipt.Receipt) {
			forged, err := receipt.New(rs[5], "acme", c, history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(`{"refund":true}`)})
			if err != nil {
				t.Fatal(err)
			}
			it, _ := segmentAt(t, db, rt, c, 6)
			del(c, 6)
			putRaw(t, db, rt, withSeq(it, 7))
			f, _ := SegmentItem([]*receipt.Receipt{forged})
			putRaw(t, db, rt, f)
		}, []receipt.Kind{receipt.BrokenLink, receipt.HashMismatch}, 7, false},
		{"a stored receipt that does not decode", func(c string, _ []*receipt.Receipt) {
			it, i := segmentAt(t, db, rt, c, 2)
			setStored(it, i, "{not json")
			putRaw(t, db, rt, it)
		}, []receipt.Kind{receipt.Gap}, 2, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caseID := fmt.Sprintf("tamper-seg-%d", i)
			rs := appendSegments(t, s, caseID, 1, 3, 2, 4)
			c.tamper(caseID, rs)
			got, bad, err := s.Chain(ctx, caseID)
			if err != nil || (len(bad) != 0) != c.badItem {
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
			if len(fs) > 0 && (fs[0].Seq != c.seq || fs[0].CaseID != caseID || fs[0].Tenant != "acme") {
				t.Fatalf("first finding %+v, want seq %d of %s", fs[0], c.seq, caseID)
			}
			if c.badItem && (bad[0].Kind != receipt.Malformed || bad[0].Seq != 2 || len(bad) != 2) {
				t.Fatalf("undecodable receipts: %v, want seqs 2 and 3 malformed", bad)
			}
		})
	}
}

// The stream of a table holding segments: each inserted segment verifies;
// a change or deletion of a segment is a finding for every receipt in it.
func TestStreamRecordsOfSegments(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	rs := appendSegments(t, NewReceipts(db, rt), "streamed-seg", 3, 3)
	it, _ := segmentAt(t, db, rt, "streamed-seg", 3)
	setStored(it, 1, strings.Replace(stored(it, 1), `"/do/0/step"`, `"/do/0/stop"`, 1))
	putRaw(t, db, rt, it)
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(rt),
		Key: map[string]types.AttributeValue{"caseId": &types.AttributeValueMemberS{Value: "streamed-seg"}, "seq": &types.AttributeValueMemberN{Value: "0"}}}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := endpoint.Config(ctx)
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(rt)})
	if err != nil {
		t.Fatal(err)
	}
	sc := dynamodbstreams.NewFromConfig(cfg)
	sd, err := sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: desc.Table.LatestStreamArn})
	if err != nil || len(sd.StreamDescription.Shards) == 0 {
		t.Fatal(err)
	}
	type got struct {
		kind      receipt.Kind
		seq       int64
		exp, actl string
	}
	var fs []got
	var names []string
	inserted := 0
	for _, sh := range sd.StreamDescription.Shards {
		itr, err := sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: desc.Table.LatestStreamArn,
			ShardId: sh.ShardId, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: itr.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range lambdasvc.DynamoDBEvent(recs.Records, "", "").Records {
			names = append(names, ev.EventName)
			if ev.EventName == "INSERT" {
				got, _ := receipt.StreamReceipts(ev.Change.NewImage)
				inserted += len(got)
			}
			for _, f := range receipt.VerifyStreamRecord(ev) {
				fs = append(fs, got{f.Kind, f.Seq, f.Expected, f.Actual})
			}
		}
	}
	if want := []string{"INSERT", "INSERT", "MODIFY", "REMOVE"}; !slices.Equal(names, want) || inserted != 6 {
		t.Fatalf("stream events %v (%d receipts inserted), want %v", names, inserted, want)
	}
	want := []got{
		// The changed receipt keeps its stored hash: the change shows as
		// a HashMismatch when the chain is verified.
		{receipt.Modified, 3, rs[3].Hash, rs[3].Hash}, {receipt.Modified, 4, rs[4].Hash, rs[4].Hash}, {receipt.Modified, 5, rs[5].Hash, rs[5].Hash},
		{receipt.Removed, 0, rs[0].Hash, ""}, {receipt.Removed, 1, rs[1].Hash, ""}, {receipt.Removed, 2, rs[2].Hash, ""},
	}
	if !slices.Equal(fs, want) {
		t.Fatalf("findings %v\nwant %v", fs, want)
	}
}

// StoredChain and EachChain report one billed size per stored item, so a
// chain's own writes are priced per segment, not per receipt: segments of
// 1, 3 and 4 receipts are three items, and a chain kept one item per
// receipt (the layout before segments) is one item per receipt.
func TestStoredItemSizes(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	appendSegments(t, s, "segs", 1, 3, 4)
	var prev *receipt.Receipt
	for _, ev := range append([]history.Event{genesis("acme")}, tasks(0, 1, 2)...) {
		res, err := s.Append(ctx, prev, "acme", "legacy", ev)
		if err != nil {
			t.Fatal(err)
		}
		prev = res.Receipt
	}
	billed := func(caseID string) []int {
		var out []int
		for _, it := range items(t, db, rt, caseID) {
			out = append(out, meter.ItemSize(it))
		}
		return out
	}
	rs, sizes, bad, err := s.StoredChain(ctx, "segs")
	if err != nil || len(bad) != 0 || len(rs) != 8 {
		t.Fatalf("stored chain: %v %v %d receipts", err, bad, len(rs))
	}
	if want := billed("segs"); len(want) != 3 || !slices.Equal(sizes, want) {
		t.Fatalf("item sizes %v, want the three items' %v", sizes, want)
	}
	got := map[string][]int{}
	if _, err := s.EachChain(ctx, func(caseID string, rs []*receipt.Receipt, items []int) error {
		got[caseID] = items
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"segs", "legacy"} {
		want := billed(id)
		slices.Sort(want)
		have := slices.Clone(got[id])
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("EachChain %s: item sizes %v, want %v", id, got[id], want)
		}
	}
	if len(got["legacy"]) != 3 {
		t.Errorf("a chain of one item per receipt: %d sizes for 3 receipts", len(got["legacy"]))
	}
}

// A conditional write that loses its position stores nothing but is billed:
// Lost counts it (one request, the write units of the larger of the item
// offered and the item in place) and the read that resolved it, as the
// endpoint reported that read; a write that lands loses nothing.
func TestLostWritesAreCounted(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	big := func(g, i int) history.Event {
		ev := task(g, i)
		ev.Output = json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 2500)))
		return ev
	}
	for _, c := range []struct {
		name    string
		first   []history.Event // written first at the position (none: free)
		second  []history.Event // then appended at the same position
		lost    bool
		wantErr error
	}{
		{name: "free position", second: tasks(0, 1, 2)},
		{name: "retried write", first: tasks(0, 1, 2), second: tasks(0, 1, 2), lost: true},
		{name: "rival's smaller item", first: tasks(1, 1, 1), second: []history.Event{big(0, 1)}, lost: true, wantErr: ErrConflict},
		{name: "rival's larger item", first: []history.Event{big(1, 1)}, second: tasks(0, 1, 1), lost: true, wantErr: ErrConflict},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := "lost-" + strings.ReplaceAll(c.name, " ", "-")
			g := appendSegments(t, s, id, 1)[0]
			if c.first != nil {
				if _, err := s.AppendSegment(ctx, g, "acme", id, pending(c.first...)); err != nil {
					t.Fatal(err)
				}
			}
			inPlace := itemAt(t, db, rt, id, 1)
			res, err := s.AppendSegment(ctx, g, "acme", id, pending(c.second...))
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("append: %v, want %v", err, c.wantErr)
			}
			if !c.lost {
				if res.Lost != (cost.Usage{}) {
					t.Fatalf("a write that landed lost %+v", res.Lost)
				}
				return
			}
			r, err := receipt.New(g, "acme", id, c.second[0])
			if err != nil {
				t.Fatal(err)
			}
			rs := []*receipt.Receipt{r}
			for _, ev := range c.second[1:] {
				n, err := receipt.New(rs[len(rs)-1], "acme", id, ev)
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, n)
			}
			offered, err := SegmentItem(rs)
			if err != nil {
				t.Fatal(err)
			}
			kbs := func(n int) float64 { return float64((n + 1023) / 1024) }
			want := cost.Usage{DynamoRequests: 2, ReadUnits: res.ReadUnits,
				WriteUnits: max(kbs(meter.ItemSize(offered)), kbs(meter.ItemSize(inPlace)))}
			if res.Lost != want || res.ReadUnits <= 0 {
				t.Fatalf("lost %+v, want %+v (in place %d B, offered %d B)", res.Lost, want, meter.ItemSize(inPlace), meter.ItemSize(offered))
			}
		})
	}
}

// itemAt reads the stored item at a case's seq (nil when absent).
func itemAt(t *testing.T, db *dynamodb.Client, table, caseID string, seq int) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{receipt.AttrCase: &types.AttributeValueMemberS{Value: caseID},
			receipt.AttrSeq: &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}
