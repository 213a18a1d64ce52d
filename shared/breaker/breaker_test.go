package breaker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a manual clock for deterministic tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type transition struct{ from, to State }

// recorder collects state changes reported through OnStateChange.
type recorder struct {
	mu  sync.Mutex
	got []transition
}

func (r *recorder) record(_ string, from, to State) {
	r.mu.Lock()
	r.got = append(r.got, transition{from, to})
	r.mu.Unlock()
}

func (r *recorder) all() []transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transition(nil), r.got...)
}

var errBoom = errors.New("boom")

type op int

const (
	ok      op = iota // a call that succeeds
	fail              // a call that fails
	rejects           // a call that must be rejected without running
)

type step struct {
	advance   time.Duration // clock advance before the call
	op        op
	wantState State // state after the step
	// wantRetry is the expected RetryAfter of a rejection (checked for rejects).
	wantRetry time.Duration
}

func TestTransitions(t *testing.T) {
	const interval = 10 * time.Second
	cfg := Config{FailureThreshold: 3, SuccessThreshold: 2, OpenInterval: interval}
	tests := []struct {
		name  string
		steps []step
		trans []transition
	}{
		{
			name: "failures below threshold keep it closed and a success resets the count",
			steps: []step{
				{op: fail, wantState: Closed},
				{op: fail, wantState: Closed},
				{op: ok, wantState: Closed},
				{op: fail, wantState: Closed},
				{op: fail, wantState: Closed},
			},
		},
		{
			name: "N consecutive failures open it",
			steps: []step{
				{op: fail, wantState: Closed},
				{op: fail, wantState: Closed},
				{op: fail, wantState: Open},
				{op: rejects, wantState: Open, wantRetry: interval},
			},
			trans: []transition{{Closed, Open}},
		},
		{
			name: "open rejects until the interval has passed",
			steps: []step{
				{op: fail}, {op: fail}, {op: fail, wantState: Open},
				{advance: interval - time.Nanosecond, op: rejects, wantState: Open, wantRetry: time.Nanosecond},
			},
			trans: []transition{{Closed, Open}},
		},
		{
			name: "after the interval M successful probes close it",
			steps: []step{
				{op: fail}, {op: fail}, {op: fail, wantState: Open},
				{advance: interval, op: ok, wantState: HalfOpen},
				{op: ok, wantState: Closed},
				{op: fail, wantState: Closed},
			},
			trans: []transition{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Closed}},
		},
		{
			name: "a half-open failure re-opens it for a fresh interval",
			steps: []step{
				{op: fail}, {op: fail}, {op: fail, wantState: Open},
				{advance: interval, op: ok, wantState: HalfOpen},
				{advance: time.Second, op: fail, wantState: Open},
				{advance: interval - time.Second, op: rejects, wantState: Open, wantRetry: time.Second},
				{advance: time.Second, op: ok, wantState: HalfOpen},
				{op: ok, wantState: Closed},
			},
			trans: []transition{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Open}, {Open, HalfOpen}, {HalfOpen, Closed}},
		},
		{
			name: "the failure count starts afresh after closing",
			steps: []step{
				{op: fail}, {op: fail}, {op: fail, wantState: Open},
				{advance: interval, op: ok, wantState: HalfOpen}, {op: ok, wantState: Closed},
				{op: fail}, {op: fail, wantState: Closed},
				{op: fail, wantState: Open},
			},
			trans: []transition{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Closed}, {Closed, Open}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			rec := &recorder{}
			c := cfg
			c.Clock = clk.Now
			c.OnStateChange = rec.record
			b := New("api.example.com", c)
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				ran := false
				err := b.Do(func() error {
					ran = true
					if s.op == fail {
						return errBoom
					}
					return nil
				})
				switch s.op {
				case rejects:
					var oe *OpenError
					if ran || !errors.As(err, &oe) || !errors.Is(err, ErrOpen) {
						t.Fatalf("step %d: ran=%v err=%v, want rejection", i, ran, err)
					}
					if oe.Host != "api.example.com" || oe.RetryAfter != s.wantRetry {
						t.Fatalf("step %d: rejection %+v, want host api.example.com retry %s", i, oe, s.wantRetry)
					}
				case fail:
					if !ran || !errors.Is(err, errBoom) {
						t.Fatalf("step %d: ran=%v err=%v, want the call's error", i, ran, err)
					}
				case ok:
					if !ran || err != nil {
						t.Fatalf("step %d: ran=%v err=%v, want success", i, ran, err)
					}
				}
				if got := b.State(); got != s.wantState {
					t.Fatalf("step %d: state %s, want %s", i, got, s.wantState)
				}
			}
			if got := rec.all(); fmt.Sprint(got) != fmt.Sprint(tc.trans) {
				t.Fatalf("transitions %v, want %v", got, tc.trans)
			}
		})
	}
}

func openBreaker(t *testing.T, clk *clock, cfg Config) *Breaker {
	t.Helper()
	cfg.Clock = clk.Now
	b := New("h", cfg)
	for range b.cfg.FailureThreshold {
		_ = b.Do(func() error { return errBoom })
	}
	if b.State() != Open {
		t.Fatalf("breaker did not open")
	}
	return b
}

func TestHalfOpenLetsOneProbeThrough(t *testing.T) {
	clk := newClock()
	b := openBreaker(t, clk, Config{FailureThreshold: 1, SuccessThreshold: 3, OpenInterval: time.Second})
	clk.Advance(time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatalf("first call after the interval rejected: %v", err)
	}
	_, err = b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || oe.State != HalfOpen || oe.RetryAfter != 0 {
		t.Fatalf("second concurrent call: err=%v, want a half-open rejection", err)
	}
	probe.Done(true)
	if b.State() != HalfOpen {
		t.Fatalf("state %s after 1 of 3 probes", b.State())
	}
	next, err := b.Allow()
	if err != nil {
		t.Fatalf("next probe after a success rejected: %v", err)
	}
	next.Done(true)
	last, err := b.Allow()
	if err != nil {
		t.Fatalf("third probe rejected: %v", err)
	}
	last.Done(true)
	if b.State() != Closed {
		t.Fatalf("state %s after 3 successful probes, want closed", b.State())
	}
}

func TestStaleOutcomesAreIgnored(t *testing.T) {
	clk := newClock()
	b := New("h", Config{FailureThreshold: 2, SuccessThreshold: 1, OpenInterval: time.Second, Clock: clk.Now})
	slow, err := b.Allow() // a call that started while closed and finishes late
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Do(func() error { return errBoom })
	_ = b.Do(func() error { return errBoom })
	if b.State() != Open {
		t.Fatalf("state %s, want open", b.State())
	}
	clk.Advance(time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	slow.Done(true) // must neither close the breaker nor free the probe slot
	if b.State() != HalfOpen {
		t.Fatalf("stale success changed state to %s", b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("stale outcome freed the probe slot: err=%v", err)
	}
	probe.Done(false)
	if b.State() != Open {
		t.Fatalf("probe failure left state %s, want open", b.State())
	}
}

func TestCancelledCallsDoNotCount(t *testing.T) {
	b := New("h", Config{FailureThreshold: 1})
	for range 5 {
		_ = b.Do(func() error { return fmt.Errorf("call: %w", context.Canceled) })
	}
	if b.State() != Closed {
		t.Fatalf("cancellations opened the breaker")
	}
	_ = b.Do(func() error { return context.DeadlineExceeded })
	if b.State() != Open {
		t.Fatalf("a deadline overrun did not count as a failure")
	}
}

func TestPanicCountsAsFailure(t *testing.T) {
	b := New("h", Config{FailureThreshold: 1})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic was swallowed")
			}
		}()
		_ = b.Do(func() error { panic("bad") })
	}()
	if b.State() != Open {
		t.Fatalf("state %s after a panicking call, want open", b.State())
	}
}

func TestZeroTicketIsHarmless(t *testing.T) {
	var tk Ticket
	tk.Done(false) // must not panic
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", State(9): "state(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s.String(), want)
		}
	}
}

// TestPropertyInvariants drives breakers with random outcomes, random
// completion order and random clock advances, and checks after every step:
// an open breaker rejects every call until its interval has passed; at most
// one probe is in flight in half-open; states change only along the allowed
// edges; a closed breaker opens only on its N-th consecutive failure.
func TestPropertyInvariants(t *testing.T) {
	allowed := map[transition]bool{
		{Closed, Open}: true, {Open, HalfOpen}: true, {HalfOpen, Open}: true, {HalfOpen, Closed}: true,
	}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, seed*7919+1))
		clk := newClock()
		interval := time.Duration(1+rng.IntN(5)) * time.Second
		rec := &recorder{}
		b := New("h", Config{
			FailureThreshold: 1 + rng.IntN(4),
			SuccessThreshold: 1 + rng.IntN(3),
			OpenInterval:     interval,
			Clock:            clk.Now,
			OnStateChange:    rec.record,
		})
		var pending []Ticket
		var openedAt time.Time
		consecutive := 0 // failures reported for closed-generation tickets of the current generation
		for i := range 200 {
			switch r := rng.IntN(10); {
			case r < 2:
				clk.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
			case r < 6:
				before := b.State()
				tk, err := b.Allow()
				if err != nil {
					var oe *OpenError
					if !errors.As(err, &oe) {
						t.Fatalf("seed %d step %d: unexpected error %v", seed, i, err)
					}
					if oe.State == Open && !clk.Now().Before(openedAt.Add(interval)) {
						t.Fatalf("seed %d step %d: rejected after the open interval", seed, i)
					}
					continue
				}
				if before == Open && clk.Now().Before(openedAt.Add(interval)) {
					t.Fatalf("seed %d step %d: open breaker let a call through before its interval", seed, i)
				}
				pending = append(pending, tk)
			default:
				if len(pending) == 0 {
					continue
				}
				j := rng.IntN(len(pending))
				tk := pending[j]
				pending = append(pending[:j], pending[j+1:]...)
				success := rng.IntN(2) == 0
				wasClosed := b.State() == Closed && tk.generation == b.generation
				tk.Done(success)
				if wasClosed {
					if success {
						consecutive = 0
					} else {
						consecutive++
					}
					if st := b.State(); (st == Open) != (consecutive >= b.cfg.FailureThreshold) {
						t.Fatalf("seed %d step %d: %d consecutive failures (threshold %d) but state %s",
							seed, i, consecutive, b.cfg.FailureThreshold, st)
					}
				}
			}
			st := b.State()
			if st == Open {
				b.mu.Lock()
				openedAt = b.openedAt
				b.mu.Unlock()
			}
			if st != Closed {
				consecutive = 0
			}
			probes := 0
			for _, tk := range pending {
				if tk.probe && tk.generation == b.generation {
					probes++
				}
			}
			if probes > 1 || (st != HalfOpen && probes > 0) {
				t.Fatalf("seed %d step %d: %d live probes in state %s", seed, i, probes, st)
			}
		}
		prev := Closed
		for _, tr := range rec.all() {
			if !allowed[tr] || tr.from != prev {
				t.Fatalf("seed %d: illegal transition sequence %v", seed, rec.all())
			}
			prev = tr.to
		}
	}
}

// TestConcurrentCallers hammers a Set from many goroutines (run with -race),
// checks that every host's breaker went through legal transitions only, and
// that a half-open breaker lets exactly one of many concurrent callers through.
func TestConcurrentCallers(t *testing.T) {
	clk := newClock()
	var mu sync.Mutex
	perHost := map[string][]transition{}
	s := NewSet(Config{
		FailureThreshold: 2, SuccessThreshold: 2, OpenInterval: time.Millisecond, Clock: clk.Now,
		OnStateChange: func(key string, from, to State) {
			mu.Lock()
			perHost[key] = append(perHost[key], transition{from, to})
			mu.Unlock()
		},
	})
	hosts := []string{"a.example", "b.example", "c.example"}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			for range 500 {
				h := hosts[rng.IntN(len(hosts))]
				fail := rng.IntN(3) == 0
				_ = s.Do(h, func() error {
					if fail {
						return errBoom
					}
					return nil
				})
				if rng.IntN(4) == 0 {
					clk.Advance(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	allowedEdge := map[transition]bool{
		{Closed, Open}: true, {Open, HalfOpen}: true, {HalfOpen, Open}: true, {HalfOpen, Closed}: true,
	}
	mu.Lock()
	if len(perHost) == 0 {
		t.Fatalf("no state changes under a 1-in-3 failure rate")
	}
	for h, trs := range perHost {
		prev := Closed
		for _, tr := range trs {
			if !allowedEdge[tr] || tr.from != prev {
				t.Fatalf("%s: illegal transition sequence %v", h, trs)
			}
			prev = tr.to
		}
		if s.State(h) != prev {
			t.Fatalf("%s: final state %s, last reported %s", h, s.State(h), prev)
		}
	}
	mu.Unlock()

	b := openBreaker(t, clk, Config{FailureThreshold: 1, OpenInterval: time.Second})
	clk.Advance(time.Second)
	var allowed atomic.Int32
	var wg2 sync.WaitGroup
	for range 32 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			if _, err := b.Allow(); err == nil {
				allowed.Add(1)
			}
		}()
	}
	wg2.Wait()
	if allowed.Load() != 1 {
		t.Fatalf("%d concurrent callers got through a half-open breaker, want 1", allowed.Load())
	}
}

func TestNilFunction(t *testing.T) {
	b := New("h", Config{FailureThreshold: 1})
	if err := b.Do(nil); err == nil {
		t.Fatal("nil function accepted")
	}
	if b.State() != Closed {
		t.Fatal("a nil function counted as a failure")
	}
}

// TestThresholdOverride: a key's threshold from Config.Threshold replaces
// FailureThreshold for that key only, and takes effect at the next failure.
func TestThresholdOverride(t *testing.T) {
	var over atomic.Int64
	over.Store(2)
	s := NewSet(Config{FailureThreshold: 5, Clock: newClock().Now, Threshold: func(key string) int {
		if key == "slow.example" {
			return int(over.Load())
		}
		return 0
	}})
	fail := func(key string, n int) {
		for range n {
			_ = s.Do(key, func() error { return errors.New("boom") })
		}
	}
	fail("slow.example", 2)
	fail("other.example", 4)
	if s.State("slow.example") != Open || s.State("other.example") != Closed {
		t.Fatalf("after 2 and 4 failures: %v, %v; want open (threshold 2), closed (threshold 5)", s.State("slow.example"), s.State("other.example"))
	}
	over.Store(0) // the override removed: the default applies again
	fail("third.example", 4)
	if s.State("third.example") != Closed {
		t.Fatal("a key without override opened before the default threshold")
	}
}
