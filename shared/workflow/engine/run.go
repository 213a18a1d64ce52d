package engine

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/engine/script"
)

// Publisher is the outbound port for emitted CloudEvents.
type Publisher interface {
	Publish(ctx context.Context, ev cloudevents.Event) error
}

// RunOptions configure an in-process run.
type RunOptions struct {
	Options
	CaseID  string
	Genesis history.Genesis
	// HTTPClient performs HTTP and OpenAPI calls (nil: http.DefaultClient).
	HTTPClient *http.Client
	// GRPC performs gRPC calls (nil: a client that loads proto files over
	// http(s) only); Scripts runs scripts (nil: the default bounds).
	GRPC    *grpccall.Client
	Scripts *script.Runner
	// Publisher receives emitted events (nil: they are dropped).
	Publisher Publisher
	// Clock gives the time stamped on stimuli (nil: time.Now).
	Clock func() time.Time
	// RealTimers makes waits and retry delays really sleep; otherwise a
	// virtual clock jumps to the next due timer at once.
	RealTimers bool
	// Events are delivered, in order, to the case whenever it waits with no
	// effect or timer outstanding (listen tasks).
	Events []map[string]any
	// MaxStimuli bounds the stimuli of one run (0: 100,000).
	MaxStimuli int
	// OnDecision, when set, sees every stimulus and what the engine decided
	// on it, in order (a replay corpus records them).
	OnDecision func(Stimulus, Decision)
}

// RunResult is the outcome of an in-process run.
type RunResult struct {
	Status  Status
	Output  any
	Error   *history.Error
	History []history.Event
	State   *State
}

// Run executes wf on input in-process: it starts a case, performs every
// effect the core asks for (HTTP calls concurrently, timers on a virtual
// or real clock, emits through the publisher), feeds the results back and
// stops when the case ends or cannot advance.
func Run(ctx context.Context, wf *dsl.Workflow, input any, opts RunOptions) (*RunResult, error) {
	p, err := programFor(wf)
	if err != nil {
		return nil, err
	}
	return p.Run(ctx, input, opts)
}

// Run is the package-level Run on a compiled program.
func (p *Program) Run(ctx context.Context, input any, opts RunOptions) (*RunResult, error) {
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	virtual := time.Time{}
	now := func() time.Time {
		if !opts.RealTimers && !virtual.IsZero() {
			return virtual
		}
		return clock()
	}
	client := NewPerformer(&httpcall.Client{HTTP: opts.HTTPClient}, opts.GRPC, opts.Scripts)
	st := NewState()
	res := &RunResult{State: st}
	timers := map[string]time.Time{}
	events := opts.Events
	maxStimuli := opts.MaxStimuli
	if maxStimuli <= 0 {
		maxStimuli = 100000
	}
	queue := []Stimulus{Start{CaseID: opts.CaseID, Input: input, Genesis: opts.Genesis, Time: now()}}
	for n := 0; len(queue) > 0; n++ {
		if n >= maxStimuli {
			return res, fmt.Errorf("run: more than %d stimuli", maxStimuli)
		}
		s := queue[0]
		queue = queue[1:]
		dec, err := p.Decide(ctx, st, s, opts.Options)
		if err != nil {
			return res, err
		}
		if opts.OnDecision != nil {
			opts.OnDecision(s, dec)
		}
		res.History = append(res.History, dec.Events...)
		var calls []Effect
		for _, e := range dec.Effects {
			switch e.Kind {
			case EffectTimer:
				timers[e.ID] = e.Due
			case EffectEmit:
				if opts.Publisher != nil && e.Event != nil {
					if err := opts.Publisher.Publish(ctx, *e.Event); err != nil {
						return res, fmt.Errorf("run: publish: %w", err)
					}
				}
			default:
				calls = append(calls, e)
			}
		}
		if st.Terminal() {
			break
		}
		queue = append(queue, performCalls(ctx, client, calls, now)...)
		if len(queue) > 0 {
			continue
		}
		if len(events) > 0 {
			queue = append(queue, EventArrived{Event: events[0], Time: now()})
			events = events[1:]
			continue
		}
		if id, due, ok := nextTimer(timers); ok {
			delete(timers, id)
			if opts.RealTimers {
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return res, ctx.Err()
					}
				}
			} else if due.After(now()) {
				virtual = due
			}
			queue = append(queue, TimerFired{ID: id, Time: now()})
		}
	}
	res.Status, res.Error = st.Status, st.Error
	if st.Status == StatusCompleted {
		res.Output = decodeJSON(st.Output)
	}
	return res, nil
}

// nextTimer returns the earliest due timer (ties broken by id).
func nextTimer(timers map[string]time.Time) (string, time.Time, bool) {
	ids := make([]string, 0, len(timers))
	for id := range timers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := timers[ids[i]], timers[ids[j]]
		if a.Equal(b) {
			return ids[i] < ids[j]
		}
		return a.Before(b)
	})
	if len(ids) == 0 {
		return "", time.Time{}, false
	}
	return ids[0], timers[ids[0]], true
}

// performCalls performs calls and scripts concurrently and returns
// their results in request order.
func performCalls(ctx context.Context, c *Performer, calls []Effect, now func() time.Time) []Stimulus {
	out := make([]Stimulus, len(calls))
	var wg sync.WaitGroup
	for i, e := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, perr := c.Perform(ctx, e, "")
			out[i] = EffectResult{ID: e.ID, Output: v, Error: perr}
		}()
	}
	wg.Wait()
	t := now()
	for i := range out {
		r := out[i].(EffectResult)
		r.Time = t
		out[i] = r
	}
	return out
}
