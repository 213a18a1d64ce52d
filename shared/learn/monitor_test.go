package learn

import (
	"math"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/sla"
)

func TestSeriesFromBuckets(t *testing.T) {
	b := func(wf string, minute int, o sla.Outcome, ms ...int) *sla.Bucket {
		x := sla.NewBucket(wf, t0.Add(time.Duration(minute)*time.Minute))
		for _, v := range ms {
			if err := x.Observe(o, time.Duration(v)*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	bs := []*sla.Bucket{
		b("pay", 0, sla.Completed, 100, 100, 100),
		b("pay", 0, sla.PlatformFaulted, 1000, 1000, 1000), // a second batch's bucket of the same minute
		b("pay", 2, sla.Completed, 200),
		b("pay", 9, sla.Completed, 5), // outside the span
		b("ship", 1, sla.TimedOut, 50),
	}
	ss, err := SeriesFromBuckets(bs, t0, t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	pay := ss["pay"]
	if pay == nil || len(pay.P99) != 3 {
		t.Fatalf("pay = %+v", pay)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= want*0.02 }
	if !near(pay.P99[0], 1000) || !near(pay.P99[1], 1000) || !near(pay.P99[2], 200) {
		t.Fatalf("pay p99 = %v, want ≈[1000 1000 200] (a quiet minute carries the last p99)", pay.P99)
	}
	if pay.Failure[0] != 0.5 || pay.Failure[1] != 0 || pay.Volume[0] != 6 || pay.Volume[2] != 1 {
		t.Fatalf("pay failure %v volume %v", pay.Failure, pay.Volume)
	}
	if s := ss["ship"]; s == nil || s.Failure[1] != 1 {
		t.Fatalf("ship = %+v", s)
	}
	if _, err := SeriesFromBuckets(bs, t0, t0); err == nil {
		t.Fatal("empty span accepted")
	}
}
