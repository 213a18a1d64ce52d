// Package breaker provides per-host circuit breakers for calls a Lambda makes
// to the outside world (HTTP tasks, webhooks). A breaker that has seen too many
// consecutive failures opens and rejects calls fast, then lets a single probe
// through after an interval and closes again after enough successful probes.
//
// Breaker state lives in the memory of one execution environment: each warm
// Lambda instance keeps its own view of every host.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is the state of one breaker.
type State int

// The states of a breaker.
const (
	Closed   State = iota // calls pass; consecutive failures are counted
	Open                  // calls are rejected until the open interval has passed
	HalfOpen              // one probe at a time passes; others are rejected
)

// String returns the lower-case name of the state.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	default:
		return fmt.Sprintf("state(%d)", int(s))
	}
}

// ErrOpen is matched (errors.Is) by every rejection of a breaker. The concrete
// error is an *OpenError carrying the host and when to retry.
var ErrOpen = errors.New("circuit breaker open")

// OpenError is returned instead of running a call the breaker rejects.
type OpenError struct {
	Host  string // the key of the breaker, usually a host name
	State State  // Open, or HalfOpen when a probe is already in flight
	// RetryAfter is how long until the breaker lets a probe through; zero in
	// HalfOpen, where the outcome of the probe in flight decides.
	RetryAfter time.Duration
}

// Error describes the rejection.
func (e *OpenError) Error() string {
	if e.State == HalfOpen {
		return fmt.Sprintf("circuit breaker for %q is half-open with a probe in flight", e.Host)
	}
	return fmt.Sprintf("circuit breaker for %q is open, retry after %s", e.Host, e.RetryAfter)
}

// Is makes errors.Is(err, ErrOpen) true for every *OpenError.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Breaker is the circuit breaker of one key. It is safe for concurrent use.
type Breaker struct {
	key string
	cfg Config

	report sync.Mutex // serialises state-change callbacks in the order of the changes

	mu         sync.Mutex
	state      State
	generation uint64    // incremented on every state change; stale outcomes are ignored
	failures   int       // consecutive failures while closed
	successes  int       // consecutive probe successes while half-open
	openedAt   time.Time // when the breaker last opened
	probing    bool      // a half-open probe is in flight
}

// New returns a closed breaker for key. Zero fields of cfg take their defaults.
func New(key string, cfg Config) *Breaker {
	return &Breaker{key: key, cfg: cfg.withDefaults()}
}

// threshold is the failures that open the breaker now.
func (b *Breaker) threshold() int {
	if b.cfg.Threshold != nil {
		if n := b.cfg.Threshold(b.key); n > 0 {
			return n
		}
	}
	return b.cfg.FailureThreshold
}

// Key returns the key the breaker was made for.
func (b *Breaker) Key() string { return b.key }

// State returns the current state. An open breaker whose interval has passed
// still reports Open until the next call turns it half-open.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// Ticket is the permission to make one call. Exactly one of Done's outcomes
// must be reported for every ticket, once.
type Ticket struct {
	b          *Breaker
	generation uint64
	probe      bool
}

// Allow asks for permission to make a call. It returns an *OpenError (which
// matches ErrOpen) when the call must not be made.
func (b *Breaker) Allow() (Ticket, error) {
	now := b.cfg.Clock()
	b.mu.Lock()
	var change func()
	defer func() { b.unlockAndReport(change) }()
	switch b.state {
	case Open:
		reopen := b.openedAt.Add(b.cfg.OpenInterval)
		if now.Before(reopen) {
			return Ticket{}, &OpenError{Host: b.key, State: Open, RetryAfter: reopen.Sub(now)}
		}
		change = b.setState(HalfOpen, now)
		b.probing = true
		return Ticket{b: b, generation: b.generation, probe: true}, nil
	case HalfOpen:
		if b.probing {
			return Ticket{}, &OpenError{Host: b.key, State: HalfOpen}
		}
		b.probing = true
		return Ticket{b: b, generation: b.generation, probe: true}, nil
	default:
		return Ticket{b: b, generation: b.generation}, nil
	}
}

// Done reports the outcome of the call the ticket allowed. Outcomes of calls
// that began before the latest state change are ignored, except that a probe
// always releases its slot.
func (t Ticket) Done(success bool) {
	b := t.b
	if b == nil {
		return
	}
	now := b.cfg.Clock()
	b.mu.Lock()
	var change func()
	defer func() { b.unlockAndReport(change) }()
	if t.generation != b.generation {
		return
	}
	switch b.state {
	case Closed:
		if success {
			b.failures = 0
			return
		}
		b.failures++
		if b.failures >= b.threshold() {
			change = b.setState(Open, now)
		}
	case HalfOpen:
		if !t.probe {
			return
		}
		b.probing = false
		if !success {
			change = b.setState(Open, now)
			return
		}
		b.successes++
		if b.successes >= b.cfg.SuccessThreshold {
			change = b.setState(Closed, now)
		}
	}
}

// setState moves to state to, resetting counters, and returns the callback
// invocation to run once the lock is released (nil if there is no callback).
// The caller holds b.mu.
func (b *Breaker) setState(to State, now time.Time) func() {
	from := b.state
	b.state = to
	b.generation++
	b.failures = 0
	b.successes = 0
	b.probing = false
	if to == Open {
		b.openedAt = now
	}
	if cb := b.cfg.OnStateChange; cb != nil {
		key := b.key
		return func() { cb(key, from, to) }
	}
	return nil
}

// unlockAndReport releases b.mu and runs the state-change callback, if any.
// The report lock is taken before b.mu is released, so callbacks run one at a
// time and in the order of the changes they report.
func (b *Breaker) unlockAndReport(change func()) {
	if change == nil {
		b.mu.Unlock()
		return
	}
	b.report.Lock()
	b.mu.Unlock()
	defer b.report.Unlock()
	change()
}

// Do runs fn if the breaker allows it and records its outcome: an error for
// which Config.IsFailure is true counts as a failure, anything else as a
// success. It returns fn's error, or an *OpenError without calling fn. If fn
// panics, the call is recorded as a failure and the panic continues. A nil fn
// is an error and counts as nothing.
func (b *Breaker) Do(fn func() error) error {
	if fn == nil {
		return errNilFunc
	}
	t, err := b.Allow()
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			t.Done(false)
		}
	}()
	err = fn()
	done = true
	t.Done(!b.cfg.IsFailure(err))
	return err
}

var errNilFunc = errors.New("breaker: nil function")

// defaultIsFailure counts every error except a cancelled context: the caller
// giving up says nothing about the health of the host.
func defaultIsFailure(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled)
}
