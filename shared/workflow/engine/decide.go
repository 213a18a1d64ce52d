package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/redact"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// outcome is how a task or task list ended in one walk.
type outcome uint8

const (
	outDone    outcome = iota // completed with a value
	outBlocked                // waits for an effect, timer or event
	outFault                  // raised an error
	outEnd                    // `then: end`: the workflow ends now
	outExit                   // `then: exit`: the enclosing list ends now
)

// val is a JSON-like value with its encoding when known, so that values
// flowing from one event into the next are encoded once.
type val struct {
	v   any
	raw json.RawMessage
}

// result is the outcome of running a task or list.
type result struct {
	out  outcome
	v    val
	err  *history.Error
	then string
}

func done(v val) result             { return result{out: outDone, v: v} }
func fault(e *history.Error) result { return result{out: outFault, err: e} }
func blocked() result               { return result{out: outBlocked} }
func (r result) is(o outcome) bool  { return r.out == o }

// scope holds the variables declared by enclosing loops and catches.
type scope struct {
	extra map[string]any
}

func (s scope) with(kv ...any) scope {
	m := make(map[string]any, len(s.extra)+len(kv)/2)
	for k, v := range s.extra {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return scope{extra: m}
}

// walker runs one decision: it walks the workflow from the top, reusing
// what the history recorded and executing what it did not.
type walker struct {
	ctx     context.Context
	p       *Program
	st      *State
	opts    Options
	now     time.Time
	dec     *Decision
	budget  int
	inbox   map[string]EffectResult
	arrived map[string]any // an event not yet consumed
	secrets any
	red     *redact.Redactor // what recorded events must not hold
	wfVar   any
	input   any    // the case input after the workflow's input transformation
	redrive bool   // repeat the effects of pending calls and timers
	probe   bool   // Waits: record nothing, note what listen tasks wait for
	waits   []Wait // what the probe found
	nondet  error  // where the history and the walk parted, if they did
}

// Decide advances the case st by the stimulus s: it folds the events it
// produces into st and returns them with the effects to perform. A
// stimulus that was already accounted for (a redelivered start, effect
// result or timer) produces nothing.
func (p *Program) Decide(ctx context.Context, st *State, s Stimulus, opts Options) (Decision, error) {
	var dec Decision
	if st.Records == nil || st.Timers == nil {
		return dec, fmt.Errorf("decide: state not initialised (use NewState or Replay)")
	}
	w := &walker{ctx: ctx, p: p, st: st, opts: opts, dec: &dec, budget: opts.StepBudget,
		red: redact.New(opts.Secrets, opts.SensitiveHeaders...)}
	if w.budget <= 0 {
		w.budget = DefaultStepBudget
	}
	switch s := s.(type) {
	case Start:
		if st.Status != StatusNew {
			return dec, nil
		}
		w.now = s.Time
		in := expr.Normalize(s.Input)
		raw, err := json.Marshal(in)
		if err != nil {
			return dec, fmt.Errorf("decide: encode input: %w", err)
		}
		g := s.Genesis
		g.Format = HistoryFormat
		if g.Namespace == "" && g.Workflow == "" {
			g.Namespace, g.Workflow, g.Version = p.wf.Document.Namespace, p.wf.Document.Name, p.wf.Document.Version
		}
		data, _ := json.Marshal(eventData{Case: s.CaseID, Subflows: s.Subflows})
		if lerr := limits.CheckJSON("the case input", raw); lerr != nil {
			// The case exists (its genesis binds the workflow) and ends at
			// once with the reason; the input itself is not recorded.
			if err := w.emit(history.Event{Type: history.CaseStarted, Genesis: &g, Data: data}); err != nil {
				return dec, err
			}
			return dec, w.emit(history.Event{Type: history.CaseFaulted, Error: limitProblem("/", lerr)})
		}
		if err := w.emit(history.Event{Type: history.CaseStarted, Input: raw, Genesis: &g, Data: data}); err != nil {
			return dec, err
		}
	case EffectResult:
		if st.Status != StatusRunning {
			return dec, nil
		}
		r := st.Records[s.ID]
		if r == nil || r.Status != RecRequested {
			return dec, nil // unknown or already consumed: a redelivery
		}
		w.now = s.Time
		w.inbox = map[string]EffectResult{s.ID: s}
	case TimerFired:
		t := st.Timers[s.ID]
		if st.Status != StatusRunning || t == nil || t.Fired {
			return dec, nil
		}
		if s.Time.Before(t.Due) {
			// Early: the time a stimulus claims never beats the due time
			// the history recorded. The timer is asked for again at its
			// recorded due time instead of firing.
			dec.Effects = append(dec.Effects, Effect{Kind: EffectTimer, ID: s.ID, Due: t.Due})
			return dec, nil
		}
		w.now = s.Time
		if err := w.emit(history.Event{Type: history.TimerFired, Key: s.ID}); err != nil {
			return dec, err
		}
	case EventArrived:
		if st.Status != StatusRunning {
			return dec, nil
		}
		w.now = s.Time
		w.arrived = expr.Normalize(s.Event).(map[string]any)
	case Cancel:
		if st.Status != StatusRunning {
			return dec, nil
		}
		w.now = s.Time
		err := Problem(ErrRuntime, "/", "cancelled: %s", s.Reason)
		err.Title = "Cancelled"
		return dec, w.emit(history.Event{Type: history.CaseCancelled, Error: err})
	case Resume:
		if st.Status != StatusRunning {
			return dec, nil
		}
		w.now, w.redrive = s.Time, s.Redrive
	default:
		return dec, fmt.Errorf("decide: unknown stimulus %T", s)
	}
	if err := w.walk(); err != nil {
		return dec, err
	}
	if w.nondet != nil {
		return dec, w.nondet
	}
	return dec, nil
}

// emit appends an event to the decision and folds it into the state. The
// event is redacted first and checked against the limits, so the state is
// always the fold of exactly what the receipts record.
func (w *walker) emit(e history.Event) error {
	if w.probe {
		return fmt.Errorf("waits: the walk would record %s: %w", e.Type, ErrNotAtRest)
	}
	if e.Started.IsZero() {
		e.Started = w.now
	}
	w.redactEvent(&e)
	for _, p := range []struct {
		name string
		raw  []byte
	}{{"input", e.Input}, {"output", e.Output}, {"data", e.Data}} {
		if len(p.raw) == 0 {
			continue
		}
		if err := limits.CheckJSON(p.name, p.raw); err != nil {
			var le *limits.Error
			if errors.As(err, &le) {
				le.What = fmt.Sprintf("the %s of %s %s", p.name, e.Type, e.Task)
			}
			return err
		}
	}
	if err := w.st.Apply(&e); err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	w.dec.Events = append(w.dec.Events, e)
	return nil
}

// walk runs the workflow from the top and settles the case when it ends.
func (w *walker) walk() error {
	if w.st.Status != StatusRunning {
		return nil
	}
	w.secrets = w.secretVars()
	in := val{v: decodeJSON(w.st.Input), raw: w.st.Input}
	res := w.workflowInput(in)
	if res.is(outDone) {
		w.input = res.v.v
		res = w.withTimeout("~timeout", "/", w.p.timeout, func() result {
			return w.runList("", w.p.root, res.v, scope{})
		})
	}
	switch res.out {
	case outBlocked:
		return nil
	case outFault:
		return w.emit(history.Event{Type: history.CaseFaulted, Error: res.err})
	default:
		out, err := w.transform(w.p.output, res.v, "/", scope{}, res.v, nil)
		if err != nil {
			return w.emit(history.Event{Type: history.CaseFaulted, Error: err})
		}
		raw, merr := w.encode(out)
		if merr != nil {
			return w.emit(history.Event{Type: history.CaseFaulted, Error: merr})
		}
		eerr := w.emit(history.Event{Type: history.CaseCompleted, Output: raw})
		if errors.Is(eerr, limits.ErrLimit) {
			return w.emit(history.Event{Type: history.CaseFaulted, Error: limitProblem("/", eerr)})
		}
		return eerr
	}
}

func (w *walker) workflowInput(in val) result {
	if w.p.input == nil {
		return done(in)
	}
	if w.p.input.schema != nil {
		if err := w.p.input.schema.Validate(in.v); err != nil {
			return fault(Problem(ErrValidation, "/", "workflow input: %v", err))
		}
	}
	v, err := w.transform(&dataFlow{tpl: w.p.input.tpl}, in, "/", scope{}, in, nil)
	if err != nil {
		return fault(err)
	}
	return done(v)
}

// encode returns v's JSON encoding, computing it once.
func (w *walker) encode(v val) (json.RawMessage, *history.Error) {
	if v.raw != nil {
		return v.raw, nil
	}
	b, err := json.Marshal(v.v)
	if err != nil {
		return nil, Problem(ErrRuntime, "", "encode value: %v", err)
	}
	return b, nil
}

func (w *walker) encoded(v val) val {
	if v.raw == nil {
		v.raw, _ = w.encode(v)
	}
	return v
}

// vars builds the expression variables for a task.
func (w *walker) vars(n *node, in, out val, sc scope, uses func(string) bool) expr.Vars {
	vs := expr.Vars{Input: in.v, Output: out.v, Extra: sc.extra, Secrets: w.secrets, Runtime: runtimeVar}
	if uses == nil || uses("context") {
		vs.Context = w.st.context()
	}
	if uses == nil || uses("workflow") {
		vs.Workflow = w.workflowVar()
	}
	if n != nil && (uses == nil || uses("task")) {
		vs.Task = map[string]any{
			"name":      n.name,
			"reference": n.ptr,
			"input":     in.v,
			"output":    out.v,
			"startedAt": timeVar(w.now),
		}
	}
	return vs
}

var runtimeVar = map[string]any{"name": "knhk", "version": RuntimeVersion}

func timeVar(t time.Time) map[string]any {
	return map[string]any{
		"iso8601": t.UTC().Format(time.RFC3339Nano),
		"epoch":   map[string]any{"seconds": int(t.Unix()), "milliseconds": int(t.UnixMilli())},
	}
}

func (w *walker) workflowVar() any {
	if w.wfVar == nil {
		w.wfVar = map[string]any{
			"id":         w.st.CaseID,
			"definition": w.p.defJSON,
			"input":      w.input,
			"startedAt":  timeVar(w.st.StartedAt),
		}
	}
	return w.wfVar
}

func (w *walker) secretVars() any {
	if len(w.p.wf.Use.Secrets) == 0 {
		return map[string]any{}
	}
	m := make(map[string]any, len(w.p.wf.Use.Secrets))
	for _, name := range w.p.wf.Use.Secrets {
		if v, ok := w.opts.Secrets[name]; ok {
			m[name] = expr.Normalize(v)
		}
	}
	return m
}

// eval evaluates a template for task n, turning failures into DSL
// expression errors raised at n.
func (w *walker) eval(t *expr.Template, n *node, data, in, out val, sc scope) (any, *history.Error) {
	if t.IsConstant() {
		v, _ := t.Eval(w.ctx, nil, expr.Vars{})
		return v, nil
	}
	v, err := t.Eval(w.ctx, data.v, w.vars(n, in, out, sc, t.Uses))
	if err != nil {
		return nil, exprProblem(err, ptrOf(n))
	}
	return v, nil
}

func (w *walker) evalBool(e *expr.Expr, n *node, data, in val, sc scope) (bool, *history.Error) {
	b, err := e.EvalBool(w.ctx, data.v, w.vars(n, in, val{}, sc, e.Uses))
	if err != nil {
		return false, exprProblem(err, ptrOf(n))
	}
	return b, nil
}

func ptrOf(n *node) string {
	if n == nil {
		return "/"
	}
	return n.ptr
}

func exprProblem(err error, instance string) *history.Error {
	if xe, ok := err.(*expr.Error); ok {
		return xe.Problem(instance)
	}
	return Problem(ErrExpression, instance, "%v", err)
}

// transform applies an input/output/export data flow to data.
func (w *walker) transform(f *dataFlow, data val, instance string, sc scope, in val, n *node) (val, *history.Error) {
	if f == nil {
		return data, nil
	}
	out := data
	if f.tpl != nil {
		v, err := w.eval(f.tpl, n, data, in, data, sc)
		if err != nil {
			if err.Instance == "/" || err.Instance == "" {
				err.Instance = instance
			}
			return val{}, err
		}
		out = val{v: v}
	}
	if f.schema != nil {
		if err := f.schema.Validate(out.v); err != nil {
			return val{}, Problem(ErrValidation, instance, "%v", err)
		}
	}
	return out, nil
}

// runList runs a task list in the frame whose occurrence keys start with
// frame, following flow directives.
func (w *walker) runList(frame string, l *list, in val, sc scope) result {
	cur := in
	var entries []int // entries per index, once a jump happened
	for idx := 0; idx < len(l.nodes); {
		n := l.nodes[idx]
		key := frame + "/" + strconv.Itoa(idx)
		if entries != nil {
			if k := entries[idx]; k > 0 {
				key += "#" + strconv.Itoa(k)
			}
			entries[idx]++
		}
		r := w.runNode(key, n, cur, sc, false)
		switch r.out {
		case outBlocked, outFault, outEnd:
			return r
		}
		cur = r.v
		then := r.then
		if r.out == outExit {
			then = "exit"
		}
		if then == "" {
			then = n.t.Then
		}
		switch then {
		case "", "continue":
			idx++
		case "exit":
			return done(cur)
		case "end":
			return result{out: outEnd, v: cur}
		default:
			j, ok := l.index[then]
			if !ok {
				return fault(Problem(ErrConfiguration, n.ptr, "then: no task named %q", then))
			}
			if entries == nil {
				entries = make([]int, len(l.nodes))
				for i := 0; i <= idx; i++ {
					entries[i] = 1
				}
			}
			idx = j
		}
	}
	return done(cur)
}

// runNode runs one task occurrence.
func (w *walker) runNode(key string, n *node, in val, sc scope, branch bool) result {
	if rec := w.st.Records[key]; rec != nil {
		if rec.Task != n.ptr {
			// The history recorded another task at this occurrence: the
			// walk and the history part, and nothing more is decided.
			if w.nondet == nil {
				w.nondet = &NondeterminismError{Key: key, Detail: fmt.Sprintf("the history recorded task %s here, the workflow walks %s", rec.Task, n.ptr)}
			}
			return blocked()
		}
		switch rec.Status {
		case RecDone:
			return result{out: outDone, v: val{v: rec.value(), raw: rec.Output}, then: rec.Then}
		case RecFaulted:
			return fault(rec.Error)
		}
	} else {
		if w.budget <= 0 {
			return w.fail(key, n, Problem(ErrRuntime, n.ptr, "step budget exhausted: more than %d task executions for one stimulus (a loop that never ends?)", w.budgetLimit()))
		}
		w.budget--
	}
	if n.cfgErr != nil {
		return w.fail(key, n, n.cfgErr)
	}
	if n.ifx != nil {
		ok, err := w.evalBool(n.ifx, n, in, in, sc)
		if err != nil {
			return w.fail(key, n, err)
		}
		if !ok {
			in = w.encoded(in)
			if e := w.emit(history.Event{Type: history.TaskSkipped, Task: n.ptr, Key: key, Output: in.raw}); e != nil {
				return w.emitFailed(key, n, e)
			}
			return done(w.recorded(key, in))
		}
	}
	taskIn, err := w.transform(n.input, in, n.ptr, sc, in, n)
	if err != nil {
		return w.fail(key, n, err)
	}
	r := w.withTimeout(key+"~timeout", n.ptr, n.t.Timeout, func() result {
		return w.exec(key, n, taskIn, sc)
	})
	switch r.out {
	case outBlocked, outEnd:
		return r
	case outFault:
		if isLeaf(n) {
			return w.fail(key, n, r.err)
		}
		return r
	}
	out, err := w.transform(n.output, r.v, n.ptr, sc, taskIn, n)
	if err != nil {
		return w.fail(key, n, err)
	}
	var data eventData
	data.Then = r.then
	if n.export != nil {
		c, err := w.transform(n.export, out, n.ptr, sc, taskIn, n)
		if err != nil {
			return w.fail(key, n, err)
		}
		data.Context, err = w.encode(c)
		if err != nil {
			return w.fail(key, n, err)
		}
	}
	out = w.encoded(out)
	taskIn = w.encoded(taskIn)
	ev := history.Event{Type: history.TaskCompleted, Task: n.ptr, Key: key, Input: taskIn.raw, Output: out.raw}
	switch {
	case branch:
		ev.Type, ev.Branch = history.BranchCompleted, key
	case n.kind == "fork":
		ev.Type = history.BranchJoined
	case n.kind == "emit":
		ev.Type = history.EventEmitted
	}
	if data.Then != "" || data.Context != nil {
		ev.Data, _ = json.Marshal(data)
	}
	if e := w.emit(ev); e != nil {
		return w.emitFailed(key, n, e)
	}
	return result{out: r.out, v: w.recorded(key, out), then: r.then}
}

func (w *walker) budgetLimit() int {
	if w.opts.StepBudget > 0 {
		return w.opts.StepBudget
	}
	return DefaultStepBudget
}

// recorded is the value the occurrence key recorded as its output when
// redaction changed v: the walk goes on with what a replay sees.
func (w *walker) recorded(key string, v val) val {
	rec := w.st.Records[key]
	if rec == nil || rec.Status != RecDone || bytes.Equal(rec.Output, v.raw) {
		return v
	}
	return val{v: rec.value(), raw: rec.Output}
}

// emitFailed turns a failed emit of task n's event into the task's fault:
// a value over a limit is the task's error, with the limit as its reason.
func (w *walker) emitFailed(key string, n *node, err error) result {
	if errors.Is(err, limits.ErrLimit) {
		return w.fail(key, n, limitProblem(n.ptr, err))
	}
	return fault(Problem(ErrRuntime, n.ptr, "%v", err))
}

// isLeaf reports whether faults of n originate in n itself.
func isLeaf(n *node) bool {
	switch n.kind {
	case "do", "for", "fork", "try":
		return false
	}
	return n.fn == nil && n.run == nil
}

// fail records that the occurrence key of n raised err.
func (w *walker) fail(key string, n *node, err *history.Error) result {
	if err.Instance == "" {
		err.Instance = n.ptr
	}
	if !w.st.Has(history.TaskFaulted, key, 0) {
		if e := w.emit(history.Event{Type: history.TaskFaulted, Task: n.ptr, Key: key, Error: err}); e != nil {
			return fault(Problem(ErrRuntime, n.ptr, "%v", e))
		}
	}
	return fault(err)
}

// withTimeout runs f under the timeout t: a timer keyed key is scheduled
// when f blocks, and once it has fired the work faults with a timeout error.
func (w *walker) withTimeout(key, instance string, t *dsl.Timeout, f func() result) result {
	if t == nil {
		return f()
	}
	if tm := w.st.Timers[key]; tm != nil && tm.Fired {
		return fault(Problem(ErrTimeout, instance, "timed out: deadline %s passed", tm.Due.UTC().Format(time.RFC3339Nano)))
	}
	r := f()
	if r.out != outBlocked {
		return r
	}
	if tm := w.st.Timers[key]; tm != nil {
		w.redriveTimer(key, instance, tm)
		return r
	}
	d, err := w.timeoutDuration(t)
	if err != nil {
		return fault(Problem(ErrConfiguration, instance, "%v", err))
	}
	w.schedule(key, instance, w.now.Add(d))
	return r
}

func (w *walker) timeoutDuration(t *dsl.Timeout) (time.Duration, error) {
	after := t.After
	if t.Ref != "" {
		def := w.p.wf.Use.Timeouts[t.Ref]
		if def == nil {
			return 0, fmt.Errorf("unknown timeout %q", t.Ref)
		}
		after = &def.After
	}
	if after == nil {
		return 0, fmt.Errorf("timeout without duration")
	}
	if after.Expr != "" {
		return 0, fmt.Errorf("timeouts given as expressions are not supported")
	}
	return after.Value, nil
}

// redriveTimer repeats the effect of a pending timer when the stimulus asks
// for outstanding effects again.
func (w *walker) redriveTimer(key, task string, t *Timer) {
	if w.redrive && !t.Fired {
		w.dec.Effects = append(w.dec.Effects, Effect{Kind: EffectTimer, ID: key, Task: task, Due: t.Due})
	}
}

// schedule records a timer and asks the shell to fire it at due.
func (w *walker) schedule(key, task string, due time.Time) {
	data, _ := json.Marshal(eventData{Due: due})
	if err := w.emit(history.Event{Type: history.TimerScheduled, Task: task, Key: key, Data: data}); err != nil {
		return
	}
	w.dec.Effects = append(w.dec.Effects, Effect{Kind: EffectTimer, ID: key, Task: task, Due: due})
}
