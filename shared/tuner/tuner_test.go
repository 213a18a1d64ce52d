package tuner

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/store"
)

// fakeMapping plays the work queue mapping; the Lambda adapter has its own
// test against the local Lambda API.
type fakeMapping struct {
	s    MappingSettings
	sets []string
}

func (f *fakeMapping) Settings(context.Context) (MappingSettings, error) { return f.s, nil }
func (f *fakeMapping) Set(_ context.Context, k learn.SettingKind, v int64) error {
	switch k {
	case learn.MaxConcurrency:
		f.s.MaxConcurrency = v
	case learn.BatchSize:
		f.s.BatchSize = v
	default:
		return errors.New("not a mapping setting")
	}
	f.sets = append(f.sets, string(k))
	return nil
}

type fakeQueue struct{ waiting int64 }

func (q fakeQueue) Depth(context.Context) (int64, int64, error) { return q.waiting, 0, nil }

// rig is a tuner over the local endpoint's tables.
type rig struct {
	t        *testing.T
	ctx      context.Context
	job      *Job
	slis     *store.SLIs
	receipts *store.Receipts
	items    Items
	mapping  *fakeMapping
	now      time.Time
	requests atomic.Int64 // DynamoDB requests made
	batch    int
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func newRig(t *testing.T, guard string) *rig {
	t.Helper()
	ctx := context.Background()
	ep := localaws.StartT(t)
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, ctx: ctx, now: t0, mapping: &fakeMapping{s: MappingSettings{MaxConcurrency: 8, BatchSize: 5}}}
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			r.requests.Add(1)
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
	ddb := dynamodb.NewFromConfig(cfg)
	const receiptsTable, stateTable = "tuner-receipts", "tuner-state"
	if err := store.CreateTables(ctx, ddb, receiptsTable, stateTable); err != nil {
		t.Fatal(err)
	}
	p, err := ParseConfig(guard, 10)
	if err != nil {
		t.Fatal(err)
	}
	r.slis = store.NewSLIs(ddb, stateTable)
	r.receipts = store.NewReceipts(ddb, receiptsTable)
	r.items = Items{DB: ddb, Table: stateTable}
	r.job, err = New(p, Deps{Buckets: r.slis, Lease: store.NewLeases(ddb, stateTable), Mapping: r.mapping, Queue: fakeQueue{},
		Items: r.items, Chain: &Chain{Store: r.receipts}, Reserved: 10, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// traffic writes n cases a minute over the 5 minutes before the rig's
// clock, each taking latency.
func (r *rig) traffic(n int, latency time.Duration) {
	r.t.Helper()
	var bs []*sla.Bucket
	end := r.now.Truncate(time.Minute)
	for m := end.Add(-5 * time.Minute); m.Before(end); m = m.Add(time.Minute) {
		b := sla.NewBucket("orders/place", m)
		for range n {
			if err := b.Observe(sla.Completed, latency); err != nil {
				r.t.Fatal(err)
			}
		}
		bs = append(bs, b)
	}
	r.batch++
	if err := r.slis.PutBuckets(r.ctx, "b"+string(rune('a'+r.batch)), bs); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) run() Result {
	r.t.Helper()
	res, err := r.job.Run(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// replayed checks that the system chain verifies and replays into what the
// system holds, and returns its changes.
func (r *rig) replayed() []learn.Change {
	r.t.Helper()
	rs, bad, err := r.receipts.Chain(r.ctx, CaseID)
	if err != nil {
		r.t.Fatal(err)
	}
	if fs := append(bad, receipt.VerifyChain(rs)...); len(fs) > 0 {
		r.t.Fatalf("system chain findings: %v", fs)
	}
	for _, x := range rs {
		if x.Tenant != Tenant {
			r.t.Fatalf("system chain receipt under tenant %q", x.Tenant)
		}
	}
	changes, err := ChangesOf(rs)
	if err != nil {
		r.t.Fatal(err)
	}
	st, err := r.items.State(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	initial, err := st.InitialSettings()
	if err != nil {
		r.t.Fatal(err)
	}
	k, err := learn.Replay(initial, changes)
	if err != nil {
		r.t.Fatal(err)
	}
	for s, want := range map[learn.Setting]int64{{Kind: learn.MaxConcurrency, Target: MappingTarget}: r.mapping.s.MaxConcurrency,
		{Kind: learn.BatchSize, Target: MappingTarget}: r.mapping.s.BatchSize} {
		if got, _ := k.Value(s); got != want {
			r.t.Errorf("the chain replays %s into %d, the mapping holds %d", s.Key(), got, want)
		}
	}
	return changes
}

func TestChangeJudgedAndRolledBack(t *testing.T) {
	r := newRig(t, `{"enabled":true,"allow":["maxConcurrency"],"settle":"5m"}`)
	// p99 2 s against an objective of 1 s: the gradient rule lowers the
	// limit, by at most a quarter.
	r.traffic(30, 2*time.Second)
	before := r.requests.Load()
	res := r.run()
	perRun := r.requests.Load() - before
	if len(res.Applied) != 1 || res.Applied[0].Value != 6 || r.mapping.s.MaxConcurrency != 6 {
		t.Fatalf("applied %+v, mapping %d: want 8 → 6", res.Applied, r.mapping.s.MaxConcurrency)
	}
	t.Logf("DynamoDB requests in a run that applies a change: %d", perRun)
	if ch := r.replayed(); len(ch) != 1 || ch[0].Rule != "concurrency-gradient" || len(ch[0].Evidence) == 0 {
		t.Fatalf("chain records %+v", ch)
	}

	// Within the settle time nothing is judged or changed.
	r.now = r.now.Add(2 * time.Minute)
	before = r.requests.Load()
	if res := r.run(); len(res.Applied)+len(res.RolledBack)+len(res.Kept) != 0 {
		t.Fatalf("acted within the settle time: %+v", res)
	}
	t.Logf("DynamoDB requests in a run that changes nothing: %d", r.requests.Load()-before)

	// After it, the window is worse (p99 3 s): the change is rolled back
	// to exactly its previous value.
	r.now = t0.Add(6 * time.Minute)
	r.traffic(30, 3*time.Second)
	res = r.run()
	if len(res.RolledBack) != 1 || r.mapping.s.MaxConcurrency != 8 || res.RolledBack[0].RollbackOf != res.RolledBack[0].ID[len("rollback-"):] {
		t.Fatalf("rolled back %+v, mapping %d: want back to 8", res.RolledBack, r.mapping.s.MaxConcurrency)
	}
	st, err := r.items.State(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Verdicts) != 1 || st.Verdicts[0].Kept || !strings.Contains(st.Verdicts[0].Reason, "p99") {
		t.Fatalf("verdicts %+v", st.Verdicts)
	}
	if ch := r.replayed(); len(ch) != 2 || ch[1].Rule != "rollback" {
		t.Fatalf("chain records %+v", ch)
	}

	// A change made outside the loop is recorded, and the chain still
	// replays into the system.
	r.mapping.s.MaxConcurrency = 5
	r.now = t0.Add(7 * time.Minute)
	res = r.run()
	if len(res.External) != 1 || res.External[0].Previous != 8 || res.External[0].Value != 5 {
		t.Fatalf("external %+v", res.External)
	}
	r.replayed()
}

func TestKillSwitchAndRecommendOnly(t *testing.T) {
	r := newRig(t, `{"enabled":true,"allow":["maxConcurrency"]}`)
	r.traffic(30, 2*time.Second)
	on, off := true, false
	sw := Switches{KillSwitch: &on}
	if err := r.items.SaveSwitches(r.ctx, &sw); err != nil {
		t.Fatal(err)
	}
	res := r.run()
	if len(res.Applied) != 0 || r.mapping.sets != nil || !res.KillSwitch {
		t.Fatalf("changed with the kill switch on: %+v", res)
	}
	if len(res.Refused) == 0 || !strings.Contains(res.Refused[0].Reason, "kill switch") {
		t.Fatalf("refusals %+v", res.Refused)
	}

	// Recommendation-only: the plan stays open until an operator approves.
	sw.KillSwitch, sw.RecommendOnly = &off, &on
	if err := r.items.SaveSwitches(r.ctx, &sw); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(time.Minute)
	res = r.run()
	if len(res.Applied) != 0 || len(res.Open) != 1 || r.mapping.sets != nil {
		t.Fatalf("recommend-only run: %+v", res)
	}
	id := res.Open[0].ID
	// Planned again a minute later, it keeps its id.
	r.now = r.now.Add(time.Minute)
	if res = r.run(); len(res.Open) != 1 || res.Open[0].ID != id {
		t.Fatalf("open after a second plan: %+v, want id %s", res.Open, id)
	}
	if err := Decide(r.ctx, r.items, id, true, r.now); err != nil {
		t.Fatal(err)
	}
	if err := Decide(r.ctx, r.items, "nope", true, r.now); err == nil {
		t.Error("a decision on an unknown recommendation was accepted")
	}
	r.now = r.now.Add(time.Minute)
	res = r.run()
	if len(res.Applied) != 1 || r.mapping.s.MaxConcurrency != 6 || len(res.Decided) != 1 || res.Decided[0].Outcome != "applied" {
		t.Fatalf("approved run: %+v", res)
	}
	r.replayed()
}

// TestOverrideReader: the executor's view of the overrides follows the
// state table within its TTL and keeps the last values when a read fails.
func TestOverrideReader(t *testing.T) {
	r := newRig(t, "")
	now := t0
	or := &OverrideReader{Items: r.items, TTL: 30 * time.Second, Now: func() time.Time { return now }}
	if err := or.Refresh(r.ctx); err != nil {
		t.Fatal(err)
	}
	if n := or.BreakerThreshold("pay.example"); n != 0 {
		t.Fatalf("threshold %d before any override", n)
	}
	host := learn.Setting{Kind: learn.BreakerThreshold, Target: "pay.example"}
	if err := r.items.SetOverride(r.ctx, host, 3); err != nil {
		t.Fatal(err)
	}
	before := r.requests.Load()
	if err := or.Refresh(r.ctx); err != nil || or.BreakerThreshold("pay.example") != 0 || r.requests.Load() != before {
		t.Fatal("refreshed within the TTL")
	}
	now = now.Add(31 * time.Second)
	if err := or.Refresh(r.ctx); err != nil || or.BreakerThreshold("pay.example") != 3 {
		t.Fatalf("after the TTL: %d, %v", or.BreakerThreshold("pay.example"), err)
	}
	now = now.Add(31 * time.Second)
	broken := &OverrideReader{Items: Items{DB: r.items.DB, Table: "no-such-table"}, Now: func() time.Time { return now }}
	broken.values.Store(or.values.Load())
	if err := broken.Refresh(r.ctx); err == nil || broken.BreakerThreshold("pay.example") != 3 {
		t.Fatalf("a failed read: %v, threshold %d; want an error and the last values kept", err, broken.BreakerThreshold("pay.example"))
	}
}
