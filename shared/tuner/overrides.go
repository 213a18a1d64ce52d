package tuner

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knhk/knhk/shared/learn"
)

// OverrideReader is what the executor reads of the loop's overrides: the
// state-table item, refreshed at most every TTL, held in memory so that
// lookups never block a call.
type OverrideReader struct {
	Items Items
	TTL   time.Duration // default 30 s
	Now   func() time.Time

	mu     sync.Mutex // one refresh at a time
	values atomic.Pointer[map[string]int64]
	read   time.Time
}

// Refresh reads the overrides when the copy in memory is older than TTL.
// On an error the previous values stay in force.
func (r *OverrideReader) Refresh(ctx context.Context) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	ttl := r.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.read.IsZero() && now().Sub(r.read) < ttl {
		return nil
	}
	o, _, err := r.Items.Overrides(ctx)
	if err != nil {
		return err
	}
	r.values.Store(&o)
	r.read = now()
	return nil
}

// Value is a setting's override, if one is in force.
func (r *OverrideReader) Value(s learn.Setting) (int64, bool) {
	m := r.values.Load()
	if m == nil {
		return 0, false
	}
	v, ok := (*m)[s.Key()]
	return v, ok
}

// BreakerThreshold is a dependency's breaker threshold override (0: none),
// as breaker.Config.Threshold takes it.
func (r *OverrideReader) BreakerThreshold(host string) int {
	v, ok := r.Value(learn.Setting{Kind: learn.BreakerThreshold, Target: host})
	if !ok {
		return 0
	}
	return int(v)
}
