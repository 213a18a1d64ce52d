package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/knhk/knhk/shared/workflow/expr"
)

// Wait is a listen task of a case at rest that waits for events, with what
// an event must carry to reach it.
type Wait struct {
	Task    string       // the task's JSON pointer
	Filters []WaitFilter // one per event filter; none: the task takes any event
}

// WaitFilter is what one event filter of a waiting listen task requires.
type WaitFilter struct {
	// Type is the CloudEvent type the filter requires; empty when it admits
	// any type.
	Type string
	// Correlations are the filter's correlation keys that the event alone
	// determines (`from` mentions no variable) and that expect a value not
	// derived from a secret, sorted by name. The filter's other keys and attributes are checked by
	// the engine when the event arrives.
	Correlations []Correlation
}

// Correlation is one correlation key of a waiting filter: the jq expression
// that extracts a value from an event, and the value the case expects.
type Correlation struct {
	Name   string
	From   string
	Expect any // a JSON-like value
}

// ErrNotAtRest means Waits was asked about a case that has work to do: a
// decision would record events.
var ErrNotAtRest = errors.New("the case is not at rest")

// Waits reports the listen tasks of st that wait for events and the
// correlation values they expect, evaluated on each task's input as the
// engine evaluates them when an event arrives. It is pure: it walks the
// workflow as a decision does and records nothing; it fails with
// ErrNotAtRest when the walk would record an event. A case that is not
// running waits for nothing.
func (p *Program) Waits(ctx context.Context, st *State, opts Options) ([]Wait, error) {
	if st.Records == nil || st.Timers == nil {
		return nil, fmt.Errorf("waits: state not initialised (use NewState or Replay)")
	}
	w := &walker{ctx: ctx, p: p, st: st, opts: opts, dec: &Decision{}, budget: opts.StepBudget, probe: true}
	if w.budget <= 0 {
		w.budget = DefaultStepBudget
	}
	if err := w.walk(); err != nil {
		return nil, err
	}
	if w.nondet != nil {
		return nil, w.nondet
	}
	slices.SortFunc(w.waits, func(a, b Wait) int { return strings.Compare(a.Task, b.Task) })
	return w.waits, nil
}

// noteWait records, during a probe, what the blocked listen task n waits
// for. A correlation whose expected value does not evaluate is left to the
// engine, which reports the expression's error when an event arrives.
func (w *walker) noteWait(n *node, in val, sc scope) {
	wt := Wait{Task: n.ptr}
	filters := n.listen.filters
	if u := n.listen.untilBy; u != nil {
		if len(filters) == 0 || len(u.filters) == 0 {
			filters = nil // one side takes any event
		} else {
			filters = append(slices.Clip(filters), u.filters...)
		}
	}
	for i := range filters {
		f := &filters[i]
		var wf WaitFilter
		if want, err := w.eval(f.with, n, in, in, val{}, sc); err == nil {
			if m, ok := want.(map[string]any); ok {
				wf.Type, _ = m["type"].(string)
			}
		}
		for name, c := range f.correlate {
			if c.expect == nil || c.expect.Uses("secrets") || mentionsVariable(c.from) {
				continue // the index must not hold a secret; the engine checks
			}
			exp, err := w.eval(c.expect, n, in, in, val{}, sc)
			if err != nil {
				continue
			}
			wf.Correlations = append(wf.Correlations, Correlation{Name: name, From: c.from.String(), Expect: exp})
		}
		slices.SortFunc(wf.Correlations, func(a, b Correlation) int { return strings.Compare(a.Name, b.Name) })
		wt.Filters = append(wt.Filters, wf)
	}
	w.waits = append(w.waits, wt)
}

// mentionsVariable reports whether an expression may read a variable, so
// that its value on an event depends on more than the event.
func mentionsVariable(e *expr.Expr) bool {
	return strings.Contains(expr.Unwrap(e.String()), "$")
}
