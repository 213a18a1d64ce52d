package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two runs racing for a job's lease: exactly one holds it; the other gets it
// once it is released or expired, never before.
func TestLeaseExcludesOverlappingRuns(t *testing.T) {
	db, _, st := tables(t)
	ctx := context.Background()
	l := NewLeases(db, st)
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }

	var held atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := l.Acquire(ctx, "sla", fmt.Sprintf("run-%d", i), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				held.Add(1)
			}
		}()
	}
	wg.Wait()
	if held.Load() != 1 {
		t.Fatalf("%d runs hold the lease at once", held.Load())
	}
	if ok, _ := l.Acquire(ctx, "cost", "run-x", time.Minute); !ok {
		t.Fatal("another job's lease is not free")
	}
	if ok, _ := l.Acquire(ctx, "sla", "late", time.Minute); ok {
		t.Fatal("a held lease was taken")
	}
	// Releasing by someone else does nothing; expiry frees the job.
	if err := l.Release(ctx, "sla", "late"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Acquire(ctx, "sla", "late", time.Minute); ok {
		t.Fatal("a release by a non-owner freed the lease")
	}
	clock = clock.Add(61 * time.Second)
	if ok, _ := l.Acquire(ctx, "sla", "late", time.Minute); !ok {
		t.Fatal("an expired lease was not taken")
	}
	if err := l.Release(ctx, "sla", "late"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Acquire(ctx, "sla", "next", time.Minute); !ok {
		t.Fatal("a released lease was not taken")
	}
	if _, err := l.Acquire(ctx, "", "x", time.Minute); err == nil {
		t.Fatal("a lease without a job was taken")
	}
}
