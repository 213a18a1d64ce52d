package tuner

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
)

type varBuckets struct{ bs []*sla.Bucket }

func (v *varBuckets) Buckets(context.Context, time.Time, time.Time) ([]*sla.Bucket, error) {
	return v.bs, nil
}

type varQueue struct{ waiting int64 }

func (q *varQueue) Depth(context.Context) (int64, int64, error) { return q.waiting, 0, nil }

// TestShellProperties runs the shell over random streams of minutes (each
// with random traffic, latency, failures and backlog, sometimes an
// operator's change of the mapping or a flip of the kill switch) and checks
// after every run: the mapping stays within its bounds, no change is made
// with the kill switch on, every change moves at most one step, every
// rollback restores the value its change replaced, and the verified system
// chain replays into exactly what the mapping holds.
func TestShellProperties(t *testing.T) {
	ctx := context.Background()
	var applied, rolledBack, external, refusedKill int
	for seed := range 40 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		p, err := ParseConfig(`{"enabled":true,"allow":["maxConcurrency","batchSize"],"settle":"3m","bounds":{"maxConcurrency":{"min":3,"max":30}}}`, 40)
		if err != nil {
			t.Fatal(err)
		}
		chain := &memChain{}
		db := &memDB{items: map[string]map[string]types.AttributeValue{}}
		items := Items{DB: db}
		now := t0
		mapping := &fakeMapping{s: MappingSettings{MaxConcurrency: 10 + int64(rng.IntN(10)), BatchSize: 1 + int64(rng.IntN(10))}}
		bk, q := &varBuckets{}, &varQueue{}
		j, err := New(p, Deps{Buckets: bk, Lease: memLease{}, Mapping: mapping, Queue: q, Items: items,
			Chain: &Chain{Store: chain}, Reserved: 40, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		kill := false
		for minute := range 120 {
			now = now.Add(time.Minute)
			bk.bs = nil
			lat := time.Duration(100+rng.IntN(2500)) * time.Millisecond
			for m := range 5 {
				b := sla.NewBucket("w", now.Truncate(time.Minute).Add(-time.Duration(m+1)*time.Minute))
				for range 20 + rng.IntN(40) {
					o := sla.Completed
					if rng.Float64() < 0.02 {
						o = sla.PlatformFaulted
					}
					_ = b.Observe(o, lat+time.Duration(rng.IntN(200))*time.Millisecond)
				}
				bk.bs = append(bk.bs, b)
			}
			q.waiting = int64(rng.IntN(3)) * int64(rng.IntN(500))
			if rng.IntN(40) == 0 {
				mapping.s.MaxConcurrency = 3 + int64(rng.IntN(28)) // an operator's change
			}
			if rng.IntN(25) == 0 {
				kill = !kill
				sw, err := items.Switches(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sw.KillSwitch = &kill
				if err := items.SaveSwitches(ctx, &sw); err != nil {
					t.Fatal(err)
				}
			}
			before := mapping.s
			res, err := j.Run(ctx)
			if err != nil {
				t.Fatalf("seed %d minute %d: %v", seed, minute, err)
			}
			applied, rolledBack, external = applied+len(res.Applied), rolledBack+len(res.RolledBack), external+len(res.External)
			if kill {
				refusedKill += len(res.Refused)
			}
			if kill && (len(res.Applied) > 0 || len(res.RolledBack) > 0 || mapping.s != before) {
				t.Fatalf("seed %d minute %d: changed with the kill switch on: %+v", seed, minute, res)
			}
			if c := mapping.s.MaxConcurrency; (c < 3 || c > 30) && c != before.MaxConcurrency {
				t.Fatalf("seed %d minute %d: concurrency %d outside [3, 30]", seed, minute, c)
			}
			for _, c := range res.Applied {
				if step := max(1, c.Previous/4); c.Value > c.Previous+step || c.Value < c.Previous-step || len(c.Evidence) == 0 {
					t.Fatalf("seed %d minute %d: change %+v exceeds a step or has no evidence", seed, minute, c)
				}
			}
			assertReplays(t, chain.rs, items, mapping)
		}
		// Every rollback restores exactly what its change replaced.
		changes, err := ChangesOf(chain.rs)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]learn.Change{}
		for _, c := range changes {
			byID[c.ID] = c
			if c.RollbackOf != "" {
				orig, ok := byID[c.RollbackOf]
				if !ok || c.Value != orig.Previous || c.Previous != orig.Value || c.Setting != orig.Setting {
					t.Fatalf("seed %d: rollback %+v does not undo %+v", seed, c, orig)
				}
			}
		}
	}
	t.Logf("%d changes applied, %d rolled back, %d external changes recorded, %d refusals under the kill switch", applied, rolledBack, external, refusedKill)
	if applied == 0 || rolledBack == 0 || external == 0 || refusedKill == 0 {
		t.Fatal("the streams did not exercise changes, rollbacks, external changes and the kill switch")
	}
}

func assertReplays(t *testing.T, rs []*receipt.Receipt, items Items, mapping *fakeMapping) {
	t.Helper()
	if fs := receipt.VerifyChain(rs); len(fs) > 0 {
		t.Fatalf("system chain findings: %v", fs)
	}
	changes, err := ChangesOf(rs)
	if err != nil {
		t.Fatal(err)
	}
	st, err := items.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	initial, err := st.InitialSettings()
	if err != nil {
		t.Fatal(err)
	}
	k, err := learn.Replay(initial, changes)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[learn.Setting]int64{{Kind: learn.MaxConcurrency, Target: MappingTarget}: mapping.s.MaxConcurrency,
		{Kind: learn.BatchSize, Target: MappingTarget}: mapping.s.BatchSize} {
		if got, _ := k.Value(s); got != want {
			t.Fatalf("the chain replays %s into %d, the mapping holds %d", s.Key(), got, want)
		}
	}
}

// TestChainIncrementalRead: a chain read by two writers stays whole in
// each (the second's appends are read as a continuation), and a chain with
// a broken link is refused.
func TestChainIncrementalRead(t *testing.T) {
	ctx := context.Background()
	store := &memChain{}
	a, b := &Chain{Store: store}, &Chain{Store: store}
	rec := func(c *Chain, i int) {
		t.Helper()
		if _, err := c.Changes(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Record(ctx, sampleChange(int64(10+i), int64(11+i), t0.Add(time.Duration(i)*time.Minute), i)); err != nil {
			t.Fatal(err)
		}
	}
	rec(a, 0)
	rec(b, 1)
	rec(a, 2)
	for _, c := range []*Chain{a, b, {Store: store}} {
		chs, err := c.Changes(ctx)
		if err != nil || len(chs) != 3 || chs[0].ID != "c0" || chs[1].ID != "c1" || chs[2].ID != "c2" {
			t.Fatalf("changes %+v, %v", chs, err)
		}
	}
	// The last receipt replaced by one forged after the second: the chain
	// breaks and is refused.
	forged, err := receipt.New(store.rs[1], Tenant, CaseID, history.Event{Type: history.EffectCompleted, Task: "/settings/maxConcurrency", Key: "x", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	store.rs[3] = forged
	if _, err := (&Chain{Store: store}).Changes(ctx); !errors.Is(err, ErrChainFindings) {
		t.Fatalf("a chain with a replaced receipt: %v, want ErrChainFindings", err)
	}
}
