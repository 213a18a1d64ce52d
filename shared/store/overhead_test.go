package store

import (
	"context"
	"sync"
	"testing"

	"github.com/knhk/knhk/shared/cost"
)

// TestOverheads: concurrent adds of one function's overhead sum exactly on
// the real endpoint; classes, functions and architectures stay apart, and
// periods do not mix.
func TestOverheads(t *testing.T) {
	db, _, st := tables(t)
	ctx := context.Background()
	o := NewOverheads(db, st)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- o.Add(ctx, "2026-12", cost.Shared, "verifier", cost.Usage{Arch: cost.Arm64, InvocationMicros: 1_000_000,
				LambdaMBms: 128 * 7, ReadUnits: 0.5, DynamoRequests: 1})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, add := range []struct {
		period string
		class  cost.Overhead
		fn     string
		u      cost.Usage
	}{
		{"2026-12", cost.Idle, "sla", cost.Usage{Arch: cost.X86, InvocationMicros: 1_000_000, SNSPublishes: 2}},
		{"2026-12", cost.Shared, "executor", cost.Usage{SQSRequests: 3}},
		{"2026-12", cost.Shared, "executor", cost.Usage{}}, // nothing to write
		{"2026-11", cost.Shared, "verifier", cost.Usage{SQSRequests: 100}},
	} {
		if err := o.Add(ctx, add.period, add.class, add.fn, add.u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := o.Period(ctx, "2026-12")
	if err != nil {
		t.Fatal(err)
	}
	want := []Overhead{
		{cost.Idle, "sla", cost.Usage{Arch: cost.X86, InvocationMicros: 1_000_000, SNSPublishes: 2}},
		{cost.Shared, "executor", cost.Usage{SQSRequests: 3}},
		{cost.Shared, "verifier", cost.Usage{Arch: cost.Arm64, InvocationMicros: 8_000_000, LambdaMBms: 8 * 128 * 7, ReadUnits: 4, DynamoRequests: 8}},
	}
	if len(got) != len(want) {
		t.Fatalf("Period = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	shared, idle := Split(got)
	if len(shared) != 2 || len(idle) != 1 || idle[0].SNSPublishes != 2 {
		t.Fatalf("Split: shared %+v idle %+v", shared, idle)
	}
}

// TestOverheadsSince: the difference of two readings is what was added in
// between, by class, function and architecture.
func TestOverheadsSince(t *testing.T) {
	before := []Overhead{{cost.Shared, "verifier", cost.Usage{Arch: cost.Arm64, SQSRequests: 2, ReadUnits: 1}},
		{cost.Idle, "sla", cost.Usage{SNSPublishes: 1}}}
	after := []Overhead{{cost.Shared, "executor", cost.Usage{SQSRequests: 5}},
		{cost.Shared, "verifier", cost.Usage{Arch: cost.Arm64, SQSRequests: 7, ReadUnits: 1}},
		{cost.Idle, "sla", cost.Usage{SNSPublishes: 1}}}
	got := Since(before, after)
	want := []Overhead{{cost.Shared, "executor", cost.Usage{SQSRequests: 5}},
		{cost.Shared, "verifier", cost.Usage{Arch: cost.Arm64, SQSRequests: 5}}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Since = %+v, want %+v", got, want)
	}
}
