package handler

import (
	"context"
	"sync"
	"time"

	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/meter"
)

// OverheadSink stores usage that belongs to no single case
// (store.Overheads).
type OverheadSink interface {
	Add(ctx context.Context, period string, class cost.Overhead, function string, u cost.Usage) error
}

// Overhead says how a function's own usage is recorded as overhead.
type Overhead struct {
	Sink  OverheadSink
	Class cost.Overhead // cost.Shared or cost.Idle
	// CaseMetered: the handler charges its invocations to the cases it
	// serves (the executor's receipts), so only what is left in
	// meter.Shared is overhead. Otherwise every invocation's billed
	// duration and request are overhead too.
	CaseMetered bool
	// Every is the least time between two writes of one execution
	// environment (0: after every invocation). What is pending is written
	// on SIGTERM too; an environment reclaimed without one loses at most
	// Every of its overhead.
	Every time.Duration
}

// overheads buffers one execution environment's overhead between writes.
type overheads struct {
	o       Overhead
	name    string
	now     func() time.Time
	mu      sync.Mutex
	pending cost.Usage
	last    time.Time
}

func newOverheads(o Overhead, name string) *overheads {
	if o.Sink == nil {
		return nil
	}
	if o.Class == "" {
		o.Class = cost.Shared
	}
	return &overheads{o: o, name: name, now: time.Now}
}

// invocation adds what one invocation that began at start left as
// overhead and writes the buffer when it is due (force: now).
func (b *overheads) invocation(ctx context.Context, start time.Time, force bool) error {
	if b == nil {
		return nil
	}
	u := meter.Shared.Take()
	end := b.now()
	if !b.o.CaseMetered && !start.IsZero() {
		arch, mem := meter.Function()
		u.InvocationMicros += 1_000_000
		if mem > 0 {
			ms := (end.Sub(start) + time.Millisecond - 1) / time.Millisecond
			u.Arch, u.LambdaMBms = arch, int64(ms)*mem
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending.Add(u)
	if !force && b.o.Every > 0 && end.Sub(b.last) < b.o.Every {
		return nil
	}
	if b.pending == (cost.Usage{}) {
		return nil
	}
	if err := b.o.Sink.Add(context.WithoutCancel(ctx), chargeback.Period(end), b.o.Class, b.name, b.pending); err != nil {
		return err // kept for the next write
	}
	b.pending, b.last = cost.Usage{}, end
	return nil
}

// BusyOverheadEvery is how often the functions that run per batch (the
// executor, the verifier) write their overhead: a write per minute and
// environment at most, whatever the traffic.
const BusyOverheadEvery = 30 * time.Second
