package tuner

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/store"
)

// memDB keeps items by sort key, ignoring conditions (one writer).
type memDB struct {
	items map[string]map[string]types.AttributeValue
}

func (m *memDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{Item: m.items[in.Key[store.AttrSK].(*types.AttributeValueMemberS).Value]}, nil
}

func (m *memDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	m.items[in.Item[store.AttrSK].(*types.AttributeValueMemberS).Value] = in.Item
	return &dynamodb.PutItemOutput{}, nil
}

type memChain struct{ rs []*receipt.Receipt }

func (c *memChain) Append(_ context.Context, prev *receipt.Receipt, tenant, caseID string, ev history.Event, opts ...receipt.Option) (store.Appended, error) {
	r, err := receipt.New(prev, tenant, caseID, ev, opts...)
	if err != nil {
		return store.Appended{}, err
	}
	c.rs = append(c.rs, r)
	return store.Appended{Receipt: r}, nil
}

func (c *memChain) Chain(context.Context, string) ([]*receipt.Receipt, []receipt.Finding, error) {
	return slices.Clone(c.rs), nil, nil
}

func (c *memChain) Range(_ context.Context, _ string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error) {
	var out []*receipt.Receipt
	for _, r := range c.rs {
		if r.Seq >= from && r.Seq <= to {
			out = append(out, r)
		}
	}
	return out, nil, nil
}

type memBuckets []*sla.Bucket

func (b memBuckets) Buckets(context.Context, time.Time, time.Time) ([]*sla.Bucket, error) {
	return b, nil
}

type memLease struct{}

func (memLease) Acquire(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}
func (memLease) Release(context.Context, string, string) error { return nil }

// BenchmarkRun is one run of the loop without its I/O: state and switches
// read, a system chain of 200 changes replayed and verified, five minutes
// of buckets of 20 workflows merged, the plan judged and admitted, the
// state written. A latency above its objective makes every run plan a
// change that the cooldown then refuses.
//
// warm is a run in an execution environment that ran before (it reads only
// the receipts appended since); cold reads and verifies the whole chain.
func BenchmarkRun(b *testing.B) {
	b.Run("warm", func(b *testing.B) { benchmarkRun(b, false) })
	b.Run("cold", func(b *testing.B) { benchmarkRun(b, true) })
}

func benchmarkRun(b *testing.B, cold bool) {
	ctx := context.Background()
	p, err := ParseConfig(`{"enabled":true,"allow":["maxConcurrency"],"cooldown":"5m"}`, 50)
	if err != nil {
		b.Fatal(err)
	}
	var bs memBuckets
	for w := range 20 {
		for m := range 5 {
			bk := sla.NewBucket(string(rune('a'+w)), t0.Add(-time.Duration(5-m)*time.Minute))
			for i := range 50 {
				_ = bk.Observe(sla.Completed, time.Duration(200+i*40)*time.Millisecond)
			}
			bs = append(bs, bk)
		}
	}
	chain := &memChain{}
	now := t0
	mapping := &fakeMapping{s: MappingSettings{MaxConcurrency: 40, BatchSize: 10}}
	j, err := New(p, Deps{Buckets: bs, Lease: memLease{}, Mapping: mapping, Queue: fakeQueue{}, Items: Items{DB: &memDB{items: map[string]map[string]types.AttributeValue{}}},
		Chain: &Chain{Store: chain}, Reserved: 50, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	// 200 changes already recorded (rising and falling by one).
	c := &Chain{Store: chain}
	for i := range 200 {
		from, to := int64(40), int64(41)
		if i%2 == 1 {
			from, to = 41, 40
		}
		ch := sampleChange(from, to, t0.Add(-time.Duration(400-i)*time.Minute), i)
		if _, err := c.Record(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if cold {
			j.d.Chain = &Chain{Store: chain}
		}
		if _, err := j.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func sampleChange(from, to int64, at time.Time, i int) learn.Change {
	return learn.Change{ID: fmt.Sprintf("c%d", i), Setting: learn.Setting{Kind: learn.MaxConcurrency, Target: MappingTarget},
		Previous: from, Value: to, At: at, Rule: "concurrency-backlog",
		Evidence: []learn.Evidence{{Metric: "OldestAge", Value: 60, Threshold: 30}}, Expected: learn.Effect{Metric: "OldestAge", Direction: -1}}
}
