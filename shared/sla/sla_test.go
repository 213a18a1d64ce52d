package sla

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
)

// latencies draws n log-normal latencies in milliseconds (median ~e^mu).
func latencies(seed uint64, n int, mu, sigma float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Exp(mu + sigma*r.NormFloat64())
	}
	return out
}

// exact is the quantile of sorted data at the rank the sketch uses.
func exact(sorted []float64, q float64) float64 {
	return sorted[int(q*float64(len(sorted)-1))]
}

func TestSketchAccuracyAgainstExactQuantiles(t *testing.T) {
	for _, tc := range []struct {
		name      string
		seed      uint64
		n         int
		mu, sigma float64
	}{
		{"fast and narrow", 1, 10_000, math.Log(40), 0.3},
		{"slow and wide", 2, 50_000, math.Log(400), 1.2},
		{"heavy tail", 3, 20_000, math.Log(15), 2.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := latencies(tc.seed, tc.n, tc.mu, tc.sigma)
			s := NewSketch()
			for _, v := range vals {
				if err := s.Add(v); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				got, ok := Quantile(s, q)
				want := exact(vals, q)
				rel := math.Abs(float64(got)/float64(time.Millisecond)-want) / want
				if !ok || rel > RelativeAccuracy {
					t.Errorf("q%v: sketch %v, exact %.3f ms: relative error %.4f > %v", q, got, want, rel, RelativeAccuracy)
				}
			}
		})
	}
}

// Merging per-minute sketches gives exactly the sketch of all the values, so
// percentiles of any window come from merged sketches, never from averaged
// percentiles.
func TestMergedMinutesEqualOneSketch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for trial := range 20 {
		all := NewSketch()
		merged := NewBucket("wf", time.Unix(0, 0))
		minutes := 1 + r.IntN(30)
		for m := range minutes {
			b := NewBucket("wf", time.Unix(int64(m)*60, 0))
			for _, v := range latencies(uint64(trial*100+m), 1+r.IntN(200), math.Log(50), 1) {
				if err := b.Observe(Completed, time.Duration(v*float64(time.Millisecond))); err != nil {
					t.Fatal(err)
				}
				_ = all.Add(float64(time.Duration(v*float64(time.Millisecond))) / float64(time.Millisecond))
			}
			// Stored and read back, as the job does.
			dec, err := DecodeSketch(EncodeSketch(b.Latency))
			if err != nil {
				t.Fatal(err)
			}
			b.Latency = dec
			if err := merged.Merge(b); err != nil {
				t.Fatal(err)
			}
		}
		if merged.Counts.Completed != int64(all.GetCount()) {
			t.Fatalf("trial %d: %d completed, sketch of all counts %v", trial, merged.Counts.Completed, all.GetCount())
		}
		for _, q := range []float64{0, 0.5, 0.99, 0.999, 1} {
			a, _ := Quantile(merged.Latency, q)
			b, _ := Quantile(all, q)
			if a != b {
				t.Fatalf("trial %d q%v: merged %v, one sketch %v", trial, q, a, b)
			}
		}
	}
}

func TestCountsAndBudget(t *testing.T) {
	c := Counts{Completed: 9_980, WorkflowFaulted: 10, PlatformFaulted: 4, TimedOut: 3, DeadLettered: 3}
	if c.Good() != 9_990 || c.Bad() != 10 || c.Valid() != 10_000 || c.Availability() != 0.999 {
		t.Fatalf("counts %+v: good %d bad %d valid %d availability %v", c, c.Good(), c.Bad(), c.Valid(), c.Availability())
	}
	o := DefaultObjective()
	for _, tc := range []struct {
		name      string
		c         Counts
		remaining float64
	}{
		{"untouched", Counts{Completed: 10_000}, 1},
		{"half spent", Counts{Completed: 9_995, TimedOut: 5}, 0.5},
		{"exactly spent", c, 0},
		{"overspent", Counts{Completed: 9_980, PlatformFaulted: 20}, -1},
		{"nothing ended", Counts{}, 1},
	} {
		b := ErrorBudget(o, tc.c)
		if math.Abs(b.Remaining-tc.remaining) > 1e-9 || b.Spent != tc.c.Bad() {
			t.Errorf("%s: budget %+v, want remaining %v", tc.name, b, tc.remaining)
		}
	}
	if b := ErrorBudget(o, Counts{DeadLettered: 1}); math.Abs(b.Remaining+999) > 1e-6 {
		t.Errorf("one bad case of one: remaining %v, want -999 (a thousand budgets spent)", b.Remaining)
	}
	if got := BurnRate(Counts{Completed: 980, PlatformFaulted: 20}, 0.999); math.Abs(got-20) > 1e-9 {
		t.Errorf("2%% errors against 99.9%%: burn %v, want 20", got)
	}
}

func TestObjectiveValidation(t *testing.T) {
	if err := DefaultObjective().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Objective{
		{Availability: 1, P50: time.Millisecond, P99: time.Second, Window: time.Hour},
		{Availability: 0.99, P50: time.Second, P99: time.Millisecond, Window: time.Hour},
		{Availability: 0.99, P50: time.Millisecond, P99: time.Second, Window: time.Second},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
}

// timeline builds per-minute counts: perMinute cases a minute for the span
// before end, with the given error fraction in the given recent span.
type phase struct {
	ago, length time.Duration // the phase covers [end-ago, end-ago+length)
	errRate     float64
}

func timeline(end time.Time, span time.Duration, perMinute int64, base float64, phases ...phase) Series {
	s := Series{}
	for m := end.Add(-span); m.Before(end); m = m.Add(time.Minute) {
		rate := base
		for _, p := range phases {
			if from := end.Add(-p.ago); !m.Before(from) && m.Before(from.Add(p.length)) {
				rate = p.errRate
			}
		}
		bad := int64(math.Round(rate * float64(perMinute)))
		s.Add(m, Counts{Completed: perMinute - bad, PlatformFaulted: bad})
	}
	return s
}

// The alerts the Workbook's table predicts for each timeline, with a 99.9 %
// objective (the budget's error rate is 0.1 %).
func TestBurnRateAlertsOnTimelines(t *testing.T) {
	end := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const span = 4 * 24 * time.Hour
	for _, tc := range []struct {
		name   string
		series Series
		want   []string
	}{
		{"steady within budget (0.5x)", timeline(end, span, 1000, 0.0005), nil},
		{"2% errors for 70 minutes (20x)", timeline(end, span, 1000, 0, phase{70 * time.Minute, 70 * time.Minute, 0.02}), []string{"page-1h"}},
		{"0.7% errors for 7 hours (7x)", timeline(end, span, 1000, 0, phase{7 * time.Hour, 7 * time.Hour, 0.007}), []string{"page-6h"}},
		{"0.35% errors for a day (3.5x)", timeline(end, span, 1000, 0, phase{24 * time.Hour, 24 * time.Hour, 0.0035}), []string{"ticket-1d", "ticket-3d"}},
		{"0.15% errors for 3 days (1.5x)", timeline(end, span, 1000, 0, phase{72 * time.Hour, 72 * time.Hour, 0.0015}), []string{"ticket-3d"}},
		{"outage over 10 minutes ago (short window recovered)", timeline(end, span, 1000, 0, phase{40 * time.Minute, 30 * time.Minute, 0.05}), nil},
		{"total outage for 10 minutes", timeline(end, span, 1000, 0, phase{10 * time.Minute, 10 * time.Minute, 1}), []string{"page-1h", "page-6h", "ticket-1d", "ticket-3d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Evaluate(tc.series, end, 0.999, WorkbookRules(), Guard{MinEvents: 100}) {
				got = append(got, a.Rule.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("alerts %v, want %v", got, tc.want)
			}
		})
	}
}

// One failure in a quiet hour burns at a huge rate, but the guard keeps it
// from paging; the same failure among enough cases pages.
func TestMinimumEventsGuard(t *testing.T) {
	end := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	quiet := Series{}
	quiet.Add(end.Add(-50*time.Minute), Counts{Completed: 1})
	quiet.Add(end.Add(-20*time.Minute), Counts{Completed: 1})
	quiet.Add(end.Add(-2*time.Minute), Counts{PlatformFaulted: 1})
	burns := Burns(quiet, end, 0.999, WorkbookRules(), Guard{MinEvents: 50})
	if !burns[0].Guarded || burns[0].Firing || burns[0].Long < 14.4 {
		t.Fatalf("quiet hour: %+v", burns[0])
	}
	if a := Evaluate(quiet, end, 0.999, WorkbookRules(), Guard{MinEvents: 50}); len(a) != 0 {
		t.Fatalf("quiet hour paged: %+v", a)
	}
	if a := Evaluate(quiet, end, 0.999, WorkbookRules(), Guard{MinEvents: 3}); len(a) == 0 || a[0].Rule.Name != "page-1h" {
		t.Fatalf("with a guard of 3 events the failure must page: %+v", a)
	}
}

func TestScaledRulesKeepFactors(t *testing.T) {
	s := Scaled(WorkbookRules(), 60)
	if s[0].Long != time.Minute || s[0].Short != time.Minute || s[1].Long != 6*time.Minute || s[3].Short != 6*time.Minute || s[2].Factor != 3 {
		t.Fatalf("scaled rules %+v", s)
	}
	if WorkbookRules()[0].Long != time.Hour {
		t.Fatal("Scaled changed the workbook's rules")
	}
}

func TestComputeReport(t *testing.T) {
	end := time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC)
	o := Objective{Availability: 0.99, P50: 100 * time.Millisecond, P99: 300 * time.Millisecond, Window: time.Hour}
	var buckets []*Bucket
	// Two hours of one case a second: 50 ms, except 1 in 50 at 500 ms and a
	// platform fault every 200th case; the older hour is outside the window.
	for m := range 120 {
		b := NewBucket("wf", end.Add(-time.Duration(120-m)*time.Minute))
		for i := range 60 {
			lat, out := 50*time.Millisecond, Completed
			if i%50 == 0 {
				lat = 500 * time.Millisecond
			}
			if (m*60+i)%200 == 0 {
				out = PlatformFaulted
			}
			if m < 60 {
				out = DeadLettered // only outside the window
			}
			if err := b.Observe(out, lat); err != nil {
				t.Fatal(err)
			}
		}
		buckets = append(buckets, b)
	}
	r, err := Compute("wf", o, buckets, end, WorkbookRules(), Guard{MinEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Valid() != 3600 || r.Counts.PlatformFaulted != 18 || r.Counts.DeadLettered != 0 {
		t.Fatalf("window counts %+v", r.Counts)
	}
	if math.Abs(r.Availability-0.995) > 1e-9 || math.Abs(r.Budget.Remaining-0.5) > 1e-9 {
		t.Fatalf("availability %v, budget %+v", r.Availability, r.Budget)
	}
	near := func(d, want time.Duration) bool { return math.Abs(float64(d-want)) <= RelativeAccuracy*float64(want) }
	if !r.Latency || !near(r.P50, 50*time.Millisecond) || !near(r.P99, 500*time.Millisecond) || !r.LatencyBreach {
		t.Fatalf("latency p50 %v p99 %v breach %v", r.P50, r.P99, r.LatencyBreach)
	}
	if !r.From.Equal(end.Truncate(time.Minute).Add(-time.Hour)) {
		t.Fatalf("window from %v", r.From)
	}
	// The dead letters of the older hour are outside the report's window but
	// inside the longer burn windows: the tickets fire (their short windows,
	// 2 h and 6 h, reach them too); the pages do not (0.5x in the last hour).
	var names []string
	for _, a := range r.Alerts() {
		names = append(names, a.Rule.Name)
	}
	if !slices.Equal(names, []string{"ticket-1d", "ticket-3d"}) {
		t.Fatalf("alerts %v", names)
	}
	if _, err := Compute("wf", Objective{}, buckets, end, nil, Guard{}); err == nil {
		t.Fatal("an invalid objective computed")
	}
}

func BenchmarkBucketObserve(b *testing.B) {
	bk := NewBucket("wf", time.Unix(0, 0))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = bk.Observe(Completed, time.Duration(1+i%5000)*time.Millisecond)
	}
}

func BenchmarkMergeMinuteSketches(b *testing.B) {
	src := NewBucket("wf", time.Unix(0, 0))
	for _, v := range latencies(1, 1000, math.Log(80), 1) {
		_ = src.Observe(Completed, time.Duration(v*float64(time.Millisecond)))
	}
	enc := EncodeSketch(src.Latency)
	b.ReportMetric(float64(len(enc)), "bytes/sketch")
	b.ReportAllocs()
	for b.Loop() {
		s, err := DecodeSketch(enc)
		if err != nil {
			b.Fatal(err)
		}
		dst := NewSketch()
		_ = dst.MergeWith(s)
	}
}

func TestOutcomeOf(t *testing.T) {
	const spec = "https://serverlessworkflow.io/spec/1.0.0/errors/"
	for _, tc := range []struct {
		name string
		t    history.Type
		e    *history.Error
		want Outcome
		ok   bool
	}{
		{"completed", history.CaseCompleted, nil, Completed, true},
		{"cancelled is not counted", history.CaseCancelled, nil, 0, false},
		{"not terminal", history.TaskFaulted, &history.Error{Status: 500}, 0, false},
		{"timeout type", history.CaseFaulted, &history.Error{Type: spec + "timeout", Status: 408}, TimedOut, true},
		{"timeout type without status", history.CaseFaulted, &history.Error{Type: spec + "timeout"}, TimedOut, true},
		{"gateway timeout", history.CaseFaulted, &history.Error{Type: spec + "communication", Status: 504}, TimedOut, true},
		{"dependency failed", history.CaseFaulted, &history.Error{Type: spec + "communication", Status: 503}, PlatformFaulted, true},
		{"runtime", history.CaseFaulted, &history.Error{Type: spec + "runtime", Status: 500}, PlatformFaulted, true},
		{"no error", history.CaseFaulted, nil, PlatformFaulted, true},
		{"no status", history.CaseFaulted, &history.Error{Type: "https://acme.example/errors/declined"}, PlatformFaulted, true},
		{"raised business error", history.CaseFaulted, &history.Error{Type: "https://acme.example/errors/declined", Status: 402}, WorkflowFaulted, true},
		{"validation", history.CaseFaulted, &history.Error{Type: spec + "validation", Status: 400}, WorkflowFaulted, true},
		{"authorization", history.CaseFaulted, &history.Error{Type: spec + "authorization", Status: 403}, WorkflowFaulted, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := OutcomeOf(tc.t, tc.e)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("OutcomeOf = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
