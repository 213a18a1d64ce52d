package executor

import (
	"context"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/receipt"
)

// step meters one message's work for its case: the requests its context's
// Meter counted and the time since the case's previous receipt in this
// invocation. Each receipt records what the step consumed since the one
// before it; what is left when the message is done (the last receipt's own
// write, continuation messages) is shared cost.
type step struct {
	m      meter.Meter
	now    func() time.Time
	last   time.Time
	micros int64 // share of the invocation not yet recorded
	arch   cost.Arch
	memMB  int64
}

type stepKey struct{}

// metered wraps a message handler so that each message of a batch of n
// carries its own step meter, charged 1/n of the invocation (the remainder
// of a million micros to the first messages, so the shares add up to one).
func (x *Executor) metered(records []events.SQSMessage, h func(context.Context, events.SQSMessage) error) func(context.Context, events.SQSMessage) error {
	arch, mem := meter.Function()
	n := int64(max(len(records), 1))
	share, extra := 1_000_000/n, 1_000_000%n
	index := make(map[string]int, len(records))
	for i, r := range records {
		index[r.MessageId] = i
	}
	return func(ctx context.Context, msg events.SQSMessage) error {
		s := &step{now: x.now, last: x.now(), micros: share, arch: arch, memMB: mem}
		if i, ok := index[msg.MessageId]; ok && int64(i) < extra {
			s.micros++
		}
		err := h(context.WithValue(meter.With(ctx, &s.m), stepKey{}, s), msg)
		meter.Shared.Add(s.take())
		return err
	}
}

// take returns the step's usage since the previous take.
func (s *step) take() cost.Usage {
	u := s.m.Take()
	now := s.now()
	if s.memMB > 0 {
		ms := (now.Sub(s.last) + time.Millisecond - 1) / time.Millisecond
		u.Arch, u.LambdaMBms = s.arch, int64(ms)*s.memMB
	}
	u.InvocationMicros += s.micros
	s.last, s.micros = now, 0
	return u
}

// usage takes the step's usage for the receipt about to be appended; put
// gives it back when no receipt was written.
func usage(ctx context.Context) (opts []receipt.Option, put func()) {
	s, _ := ctx.Value(stepKey{}).(*step)
	if s == nil {
		return nil, func() {}
	}
	u := s.take()
	return []receipt.Option{receipt.WithUsage(meter.Receipt(u, s.memMB))}, func() { s.m.Add(u) }
}

// chargeLost adds u, usage no request's meter saw (what an append made
// under meter.Off lost to a concurrent writer of the same chain), to the
// case's step: its next receipt records it, or shared cost when no receipt
// follows in the invocation. A lost race is the case's own: only writers of
// the same chain contend for its positions.
func chargeLost(ctx context.Context, u cost.Usage) {
	if u == (cost.Usage{}) {
		return
	}
	if s, _ := ctx.Value(stepKey{}).(*step); s != nil {
		s.m.Add(u)
		return
	}
	meter.Shared.Add(u)
}
