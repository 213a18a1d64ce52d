package slajob

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// genBuckets makes per-minute buckets of one workflow over span before end:
// perMinute cases a minute, every badEvery-th bad, latencies 50..149 ms.
func genBuckets(wf string, end time.Time, span time.Duration, perMinute, badEvery int) []*sla.Bucket {
	var out []*sla.Bucket
	i := 0
	for m := end.Add(-span); m.Before(end); m = m.Add(time.Minute) {
		b := sla.NewBucket(wf, m)
		for range perMinute {
			o := sla.Completed
			if badEvery > 0 && i%badEvery == 0 {
				o = sla.PlatformFaulted
			}
			_ = b.Observe(o, time.Duration(50+i%100)*time.Millisecond)
			i++
		}
		out = append(out, b)
	}
	return out
}

// TestRunOnLocalEndpoint: two runs at once compute once (the other finds
// the lease taken), a run fired again for the same minute stores the same
// reports, and the stored reports carry each workflow's figures.
func TestRunOnLocalEndpoint(t *testing.T) {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	table := outs[stack.OutStateTable]
	slis := store.NewSLIs(db, table)
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// One workflow failing 1 in 10 over the last hour, one healthy.
	bad := genBuckets("sla-bad", end, time.Hour, 5, 10)
	good := genBuckets("sla-good", end, time.Hour, 5, 0)
	for i, bs := range [][]*sla.Bucket{bad, good} {
		if err := slis.PutBuckets(ctx, fmt.Sprint("gen", i), bs); err != nil {
			t.Fatal(err)
		}
	}
	newJob := func(out *bytes.Buffer, owner string) *Job {
		j, err := New(Config{Guard: sla.Guard{MinEvents: 10}}, Deps{Buckets: slis, Reports: slis, Lease: store.NewLeases(db, table),
			Out: out, Now: func() time.Time { return end.Add(30 * time.Second) }, Owner: func() string { return owner }})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	// Two runs at once: the first holds the lease while it reads, and the
	// second, started then, does nothing.
	var outA, outB bytes.Buffer
	reading, release := make(chan struct{}), make(chan struct{})
	a, err := New(Config{Guard: sla.Guard{MinEvents: 10}}, Deps{Buckets: gate{slis, reading, release}, Reports: slis,
		Lease: store.NewLeases(db, table), Out: &outA, Now: func() time.Time { return end.Add(30 * time.Second) }, Owner: func() string { return "a" }})
	if err != nil {
		t.Fatal(err)
	}
	var resA Result
	var errA error
	done := make(chan struct{})
	go func() { defer close(done); resA, errA = a.Run(ctx) }()
	<-reading
	resB, errB := newJob(&outB, "b").Run(ctx)
	close(release)
	<-done
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if resA.Skipped || !resB.Skipped || outB.Len() != 0 {
		t.Fatalf("first run skipped=%v, second skipped=%v (metrics %q): want exactly the first to compute", resA.Skipped, resB.Skipped, outB.String())
	}
	if n := bytes.Count(outA.Bytes(), []byte(`"`+telemetry.SLARuns+`":`)); n != 1 {
		t.Fatalf("%d SLARuns documents, want 1", n)
	}
	stored, err := slis.Reports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byWF := map[string]sla.Report{}
	for _, r := range stored {
		byWF[r.Workflow] = r
	}
	rb, rg, all := byWF["sla-bad"], byWF["sla-good"], byWF[Overall]
	if rb.Counts.Valid() != 300 || rb.Counts.PlatformFaulted != 30 || rg.Counts.Bad() != 0 || all.Counts.Valid() != 600 {
		t.Fatalf("counts bad %+v good %+v all %+v", rb.Counts, rg.Counts, all.Counts)
	}
	if len(rb.Alerts()) == 0 || len(rg.Alerts()) != 0 {
		t.Fatalf("alerts bad %v good %v: want the failing workflow to page and the healthy one not", rb.Alerts(), rg.Alerts())
	}
	if rg.Budget.Remaining != 1 || rb.Budget.Remaining >= 0 {
		t.Fatalf("budgets good %v bad %v", rg.Budget.Remaining, rb.Budget.Remaining)
	}
	// Fired again for the same minute: the same reports.
	again, err := newJob(&bytes.Buffer{}, "c").Run(ctx)
	if err != nil || again.Skipped {
		t.Fatalf("second run: %v skipped=%v", err, again.Skipped)
	}
	stored2, err := slis.Reports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stored2) != fmt.Sprint(stored) {
		t.Fatalf("a second run for the same minute changed the reports")
	}
	// A run while another holds the lease does nothing.
	if ok, err := store.NewLeases(db, table).Acquire(ctx, FunctionName, "holder", time.Minute); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	var out bytes.Buffer
	if r, err := newJob(&out, "d").Run(ctx); err != nil || !r.Skipped || out.Len() != 0 {
		t.Fatalf("run under a held lease: %+v %v, metrics %q", r, err, out.String())
	}
}

// BenchmarkCompute100k: 30 days of per-minute buckets holding 100,000 cases
// of 4 workflows, reports for every workflow and the platform.
func BenchmarkCompute100k(b *testing.B) {
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var bs []*sla.Bucket
	for i := range 4 {
		// 43,200 minutes per workflow; 25,000 cases each: one every ~1.7 min.
		all := genBuckets(fmt.Sprint("wf", i), end, 30*24*time.Hour, 1, 1000)
		bs = append(bs, all[:25000]...)
	}
	j, err := New(Config{}, Deps{Buckets: nopStore{}, Reports: nopStore{}, Lease: nopStore{}})
	if err != nil {
		b.Fatal(err)
	}
	sketchBytes := 0
	for _, x := range bs {
		sketchBytes += len(sla.EncodeSketch(x.Latency))
	}
	b.ResetTimer()
	for range b.N {
		if _, err := j.Compute(bs, end); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sketchBytes)/float64(len(bs)), "sketch-bytes/bucket")
}

// gate is a bucket store whose reads signal reading and wait for release.
type gate struct {
	inner            Buckets
	reading, release chan struct{}
}

func (g gate) Buckets(ctx context.Context, from, to time.Time) ([]*sla.Bucket, error) {
	close(g.reading)
	<-g.release
	return g.inner.Buckets(ctx, from, to)
}

type nopStore struct{}

func (nopStore) Buckets(context.Context, time.Time, time.Time) ([]*sla.Bucket, error) {
	return nil, nil
}
func (nopStore) PutReports(context.Context, []sla.Report) error { return nil }
func (nopStore) Acquire(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}
func (nopStore) Release(context.Context, string, string) error { return nil }

// TestPublishedBurnRespectsGuard: a quiet hour's single failure burns far
// over 14.4x, yet the long window's published burn is 0 under the guard,
// so the long AND short alarm cannot fire; with enough events it is the
// real burn.
func TestPublishedBurnRespectsGuard(t *testing.T) {
	end := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	b := sla.NewBucket("w", end.Add(-2*time.Minute))
	_ = b.Observe(sla.PlatformFaulted, time.Second)
	for _, tc := range []struct {
		min  int64
		want string
	}{{10, `"SLABurnRate":0`}, {1, `"SLABurnRate":999.99`}} {
		var out bytes.Buffer
		j, err := New(Config{Guard: sla.Guard{MinEvents: tc.min}}, Deps{Buckets: nopStore{}, Reports: nopStore{}, Lease: nopStore{}, Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := j.Compute([]*sla.Bucket{b}, end)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.publish(rs); err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, `"page-1h-long"`) && strings.Contains(l, `"ALL"`) {
				line = l
			}
		}
		if !strings.Contains(line, tc.want) {
			t.Fatalf("min events %d: page-1h-long document %s, want %s", tc.min, line, tc.want)
		}
	}
}

// TestCanaryIsASecondSLI: the canary's probes get a report of their own and
// do not count towards the platform's, which holds every case and no probe.
func TestCanaryIsASecondSLI(t *testing.T) {
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	bs := genBuckets("payments/transfer", end, time.Hour, 10, 0)
	probes := genBuckets(sla.CanaryProbes, end, time.Hour, 1, 2) // every other probe fails
	j, err := New(Config{}, Deps{Buckets: nopStore{}, Reports: nopStore{}, Lease: nopStore{}, Out: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := j.Compute(append(bs, probes...), end)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]sla.Report{}
	for _, r := range rs {
		by[r.Workflow] = r
	}
	all, canary := by[Overall], by[sla.CanaryProbes]
	if all.Counts != (sla.Counts{Completed: 600}) || all.Availability != 1 {
		t.Errorf("platform %+v availability %v, want the 600 cases only, all good", all.Counts, all.Availability)
	}
	if canary.Counts != (sla.Counts{Completed: 30, PlatformFaulted: 30}) || canary.Availability != 0.5 {
		t.Errorf("canary %+v availability %v, want 30 of 60 probes good", canary.Counts, canary.Availability)
	}
	if len(rs) != 3 {
		t.Errorf("%d reports, want the platform's, the workflow's and the canary's", len(rs))
	}
}
