package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/knhk/knhk/shared/batch"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/engine"
)

// caseRun is one case as this invocation sees it: its chain, the descriptor
// it pinned and the engine state folded from the chain.
type caseRun struct {
	tenant, id string
	receipts   []*receipt.Receipt
	desc       *registry.Descriptor
	prog       *engine.Program
	state      *engine.State
	awaiting   bool              // a listen task waited when the chain was read
	keys       []store.ListenKey // the listen keys it was subscribed with
	read       int               // receipts when the chain was read
	// trace is the trace context of the message being handled; the
	// messages this invocation sends for the case carry it on.
	trace *message.Trace
}

func (c *caseRun) exists() bool { return len(c.receipts) > 0 }

func (c *caseRun) tail() *receipt.Receipt {
	if len(c.receipts) == 0 {
		return nil
	}
	return c.receipts[len(c.receipts)-1]
}

// bind pins the descriptor and compiles it (once per content hash).
func (c *caseRun) bind(x *Executor, d *registry.Descriptor) error {
	if p, ok := x.progs.Load(d.Hash); ok {
		c.desc, c.prog = d, p.(*engine.Program)
		return nil
	}
	p, err := engine.Compile(d.Workflow)
	if err != nil {
		return fmt.Errorf("compile %s: %w", d.Ref(), err)
	}
	x.progs.Store(d.Hash, p)
	c.desc, c.prog = d, p
	return nil
}

// IntegrityError means a case's chain failed verification; the case is
// quarantined and never extended.
type IntegrityError struct {
	CaseID   string
	Findings []receipt.Finding
}

func (e *IntegrityError) Error() string {
	parts := make([]string, 0, len(e.Findings))
	for _, f := range e.Findings {
		parts = append(parts, f.String())
	}
	return fmt.Sprintf("case %s quarantined: %s", e.CaseID, strings.Join(parts, "; "))
}

// open reads a case's chain once, verifies it and folds it into state.
func (x *Executor) open(ctx context.Context, tenant, caseID string) (*caseRun, error) {
	rs, findings, err := x.chains.Chain(ctx, caseID)
	if err != nil {
		return nil, fmt.Errorf("read chain %s: %w", caseID, err)
	}
	c := &caseRun{tenant: tenant, id: caseID, receipts: rs, state: engine.NewState()}
	if len(findings) == 0 {
		findings = receipt.VerifyChain(rs) // every hash and link: one SHA-256 per receipt
	}
	if len(findings) > 0 {
		return nil, x.quarantine(ctx, c, findings)
	}
	if len(rs) == 0 {
		return c, nil
	}
	g := rs[0].Genesis
	if rs[0].Tenant != tenant {
		return nil, batch.Permanent(fmt.Errorf("case %s belongs to tenant %q, not %q", caseID, rs[0].Tenant, tenant))
	}
	d, err := x.descs.Load(ctx, g.Namespace, g.Workflow, g.Version, g.DescriptorHash)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrHashMismatch) {
			return nil, x.faultCase(ctx, c, fmt.Errorf("pinned descriptor %s/%s:%s: %w", g.Namespace, g.Workflow, g.Version, err))
		}
		return nil, fmt.Errorf("load descriptor of %s: %w", caseID, err)
	}
	if err := c.bind(x, d); err != nil {
		return nil, x.faultCase(ctx, c, err)
	}
	evs, err := x.chains.Events(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", caseID, err)
	}
	st, err := engine.Replay(d.Workflow, evs)
	if err != nil {
		return nil, x.quarantine(ctx, c, []receipt.Finding{{Kind: receipt.HistoryInvalid, Tenant: tenant, CaseID: caseID,
			Seq: int64(len(rs) - 1), Detail: err.Error()}})
	}
	c.state = st
	c.read = len(rs)
	c.keys, c.awaiting = x.listenKeys(ctx, c)
	return c, nil
}

// drive feeds stimuli to the engine until the case rests: it appends every
// event, performs calls, and sends timers and parallel branches to the
// queue. only restricts the effects of the first decision (a redrive for a
// branch message) to that branch's call.
func (x *Executor) drive(ctx context.Context, c *caseRun, first engine.Stimulus, only string) error {
	pending := []engine.Stimulus{first}
	conflicts := 0
	opts, err := x.engineOptions(ctx, c)
	if err != nil {
		return err
	}
	for len(pending) > 0 {
		if x.lowOnTime(ctx) {
			x.metrics.Add(telemetry.DeadlineDeferred, telemetry.Count, 1)
			x.log.WarnContext(ctx, "invocation nearly out of time: case handed back to the queue")
			return x.send.Send(ctx, x.continuation(c, message.ReasonResume, "", time.Time{}, 0))
		}
		s := pending[0]
		pending = pending[1:]
		dec, err := c.prog.Decide(ctx, c.state, s, opts)
		if err != nil {
			return x.faultCase(ctx, c, fmt.Errorf("engine: %w", err))
		}
		if err := x.appendAll(ctx, c, dec.Events); errors.Is(err, store.ErrConflict) {
			if _, ok := s.(engine.Start); ok && !c.exists() {
				return errCaseExists // the genesis is taken: a duplicate start
			}
			conflicts++
			x.metrics.Add(telemetry.AppendConflicts, telemetry.Count, 1)
			if conflicts > x.cfg.MaxConflicts {
				return fmt.Errorf("case %s: lost %d append races: %w", c.id, conflicts, err)
			}
			fresh, err := x.open(ctx, c.tenant, c.id)
			if err != nil {
				return err
			}
			fresh.trace = c.trace
			*c = *fresh
			// Re-decide the stimulus on the fresh history (the engine
			// ignores it if the winner consumed it), then walk on.
			pending = append([]engine.Stimulus{s, engine.Resume{Time: x.now()}}, pending...)
			continue
		} else if err != nil {
			return err
		}
		next, err := x.perform(ctx, c, dec.Effects, only)
		if err != nil {
			return err
		}
		only = "" // the restriction covers the redriven effects only
		pending = append(pending, next...)
	}
	return x.settle(ctx, c)
}

// engineOptions adds the values of the secrets the case's workflow declares.
func (x *Executor) engineOptions(ctx context.Context, c *caseRun) (engine.Options, error) {
	opts := x.cfg.Engine
	names := c.desc.Workflow.Use.Secrets
	if x.secrets == nil || len(names) == 0 {
		return opts, nil
	}
	vals, err := x.secrets.Resolve(ctx, names)
	if err != nil {
		return opts, fmt.Errorf("case %s: secrets: %w", c.id, err)
	}
	merged := make(map[string]any, len(opts.Secrets)+len(vals))
	for k, v := range opts.Secrets {
		merged[k] = v
	}
	for k, v := range vals {
		merged[k] = v
	}
	opts.Secrets = merged
	return opts, nil
}

// appendAll appends the decision's events, one conditional write each.
func (x *Executor) appendAll(ctx context.Context, c *caseRun, evs []history.Event) error {
	for i := range evs {
		ev := evs[i]
		res, err := x.chains.AppendExact(ctx, c.tail(), c.tenant, c.id, ev)
		if err != nil {
			if errors.Is(err, store.ErrConflict) {
				return err
			}
			return fmt.Errorf("append %s to %s: %w", ev.Type, c.id, err)
		}
		c.receipts = append(c.receipts, res.Receipt)
		if !res.Existing {
			x.metrics.Add(telemetry.ReceiptsAppended, telemetry.Count, 1)
		}
		x.count(c, ev)
	}
	return nil
}

// count records the metrics an event stands for.
func (x *Executor) count(c *caseRun, ev history.Event) {
	switch ev.Type {
	case history.CaseStarted:
		x.metrics.Add(telemetry.CasesStarted, telemetry.Count, 1)
	case history.TaskCompleted, history.TaskFaulted:
		x.metrics.Add(telemetry.TasksExecuted, telemetry.Count, 1)
		if !ev.Started.IsZero() && !ev.Ended.IsZero() {
			x.metrics.Add(telemetry.TaskDuration, telemetry.Milliseconds, float64(ev.Ended.Sub(ev.Started).Milliseconds()))
		}
	case history.CaseCompleted, history.CaseFaulted, history.CaseCancelled:
		name := map[history.Type]string{history.CaseCompleted: telemetry.CasesCompleted,
			history.CaseFaulted: telemetry.CasesFaulted, history.CaseCancelled: telemetry.CasesCancelled}[ev.Type]
		x.metrics.Add(name, telemetry.Count, 1)
		if !c.state.StartedAt.IsZero() {
			x.metrics.Add(telemetry.CaseDuration, telemetry.Milliseconds, float64(x.now().Sub(c.state.StartedAt).Milliseconds()))
		}
	}
}

// perform carries out a decision's effects and returns the stimuli of the
// calls performed inline.
func (x *Executor) perform(ctx context.Context, c *caseRun, effects []engine.Effect, only string) ([]engine.Stimulus, error) {
	var (
		calls []engine.Effect
		out   []queue.Message
		next  []engine.Stimulus
	)
	for _, e := range effects {
		switch e.Kind {
		case engine.EffectHTTP, engine.EffectOpenAPI:
			if only == "" || e.ID == only {
				calls = append(calls, e)
			}
		case engine.EffectTimer:
			if only != "" {
				continue // a branch message performs its call only
			}
			if wait := e.Due.Sub(x.now()); wait > 0 {
				out = append(out, x.continuation(c, message.ReasonTimer, e.ID, e.Due, wait))
			} else {
				next = append(next, engine.TimerFired{ID: e.ID, Time: x.now()})
			}
		case engine.EffectEmit:
			if only != "" || e.Event == nil {
				continue
			}
			ev := e.Event.Clone()
			ev.SetExtension("knhktenant", c.tenant)
			if _, set := ev.Extensions()["traceparent"]; !set && c.trace != nil && c.trace.TraceParent != "" {
				// CloudEvents' distributed tracing extension: a listener
				// continues the emitting case's trace.
				ev.SetExtension("traceparent", c.trace.TraceParent)
				if c.trace.TraceState != "" {
					ev.SetExtension("tracestate", c.trace.TraceState)
				}
			}
			out = append(out, queue.Message{Body: ev}) // structured-mode JSON
		}
	}
	if x.cfg.FanOut && len(calls) > 1 {
		for _, e := range calls[1:] {
			out = append(out, x.continuation(c, message.ReasonBranch, e.ID, time.Time{}, 0))
		}
		calls = calls[:1]
	}
	if len(out) > 0 {
		if err := x.send.Send(ctx, out...); err != nil {
			return nil, fmt.Errorf("case %s: send continuations: %w", c.id, err)
		}
	}
	return append(next, x.call(ctx, calls)...), nil
}

// call performs calls concurrently and returns their results as stimuli.
func (x *Executor) call(ctx context.Context, calls []engine.Effect) []engine.Stimulus {
	out := make([]engine.Stimulus, len(calls))
	var wg sync.WaitGroup
	for i, e := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				v   any
				err *history.Error
			)
			if e.Kind == engine.EffectOpenAPI {
				v, err = x.calls.DoOpenAPI(ctx, *e.OpenAPI)
			} else {
				v, err = x.calls.Do(ctx, *e.HTTP)
			}
			out[i] = engine.EffectResult{ID: e.ID, Output: v, Error: err, Time: x.now()}
		}()
	}
	wg.Wait()
	return out
}

// continuation builds a message that resumes the case, due at dueAt (zero:
// now) and delivered after delay.
func (x *Executor) continuation(c *caseRun, reason message.Reason, ref string, dueAt time.Time, delay time.Duration) queue.Message {
	return queue.Message{CaseID: c.id, Delay: delay, TraceParent: traceParent(c.trace), Body: &message.Continue{
		Kind: message.KindContinue, Tenant: c.tenant, CaseID: c.id, Reason: reason, Ref: ref,
		ExpectedSeq: int64(len(c.receipts)), DueAt: dueAt, Trace: c.trace,
	}}
}

// settle keeps the listen subscription in step with the case: present with
// the listen keys of its waiting listen tasks, absent otherwise. A case
// that waits and recorded nothing new (a redelivered message) is
// subscribed again, in case the write that followed its wait was lost.
func (x *Executor) settle(ctx context.Context, c *caseRun) error {
	keys, now := []store.ListenKey(nil), false
	if !c.state.Terminal() {
		keys, now = x.listenKeys(ctx, c)
	}
	switch {
	case now && (!c.awaiting || !slices.EqualFunc(keys, c.keys, sameKey) || len(c.receipts) == c.read):
		var stale []store.ListenKey
		if c.awaiting {
			stale = c.keys
		}
		if err := x.cases.Subscribe(ctx, c.tenant, c.id, keys, stale); err != nil {
			return fmt.Errorf("case %s: subscribe: %w", c.id, err)
		}
	case !now && c.awaiting:
		if err := x.cases.Unsubscribe(ctx, c.tenant, c.id, c.keys); err != nil {
			return fmt.Errorf("case %s: unsubscribe: %w", c.id, err)
		}
	}
	c.awaiting, c.keys, c.read = now, keys, len(c.receipts)
	if c.state.Terminal() {
		x.log.InfoContext(telemetry.WithSeq(ctx, int64(len(c.receipts)-1)), "case ended", "status", string(c.state.Status))
	}
	return nil
}

// listenKeys reports whether a listen task of the case waits, and the
// listen keys of its waits: per event filter, its type and the correlation
// values the engine expects (see engine.Waits). When the engine cannot tell
// (the case is not at rest), the case takes every event of its tenant: the
// engine still decides what matches.
func (x *Executor) listenKeys(ctx context.Context, c *caseRun) ([]store.ListenKey, bool) {
	waiting := false
	for _, r := range c.state.Records {
		if r.Status == engine.RecAwaiting {
			waiting = true
			break
		}
	}
	if !waiting {
		return nil, false
	}
	waits, err := c.prog.Waits(ctx, c.state, x.cfg.Engine)
	if err != nil {
		x.log.WarnContext(ctx, "listen keys unknown: the case takes every event of its tenant", "error", err.Error())
		return []store.ListenKey{{}}, true
	}
	var keys []store.ListenKey
	for _, w := range waits {
		if len(w.Filters) == 0 {
			keys = append(keys, store.ListenKey{})
		}
		for _, f := range w.Filters {
			k := store.ListenKey{Type: f.Type}
			for _, co := range f.Correlations {
				v, err := json.Marshal(co.Expect)
				if err != nil {
					continue // left to the engine
				}
				k.Fields = append(k.Fields, store.ListenField{Name: co.Name, From: co.From, Value: v})
			}
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b store.ListenKey) int { return strings.Compare(a.ID(), b.ID()) })
	return slices.CompactFunc(keys, sameKey), true
}

func sameKey(a, b store.ListenKey) bool { return a.ID() == b.ID() }

// quarantine records integrity findings, alerts once per case, and drops the
// message: a broken chain is never extended.
func (x *Executor) quarantine(ctx context.Context, c *caseRun, findings []receipt.Finding) error {
	x.metrics.Add(telemetry.IntegrityFindings, telemetry.Count, float64(len(findings)))
	ierr := &IntegrityError{CaseID: c.id, Findings: findings}
	x.log.ErrorContext(ctx, "integrity finding: case quarantined", "findings", len(findings), "error", ierr.Error())
	first, err := x.cases.Quarantine(ctx, c.tenant, c.id, findings)
	if err != nil {
		return fmt.Errorf("quarantine %s: %w", c.id, err)
	}
	if first && x.alerts != nil {
		if err := x.alerts.Alert(ctx, "KNHK integrity finding: case "+c.id, ierr.Error()); err != nil {
			return fmt.Errorf("alert for %s: %w", c.id, err)
		}
	}
	return batch.Permanent(ierr)
}

// faultCase records a permanent error of an existing case as its final
// receipt and drops the message.
func (x *Executor) faultCase(ctx context.Context, c *caseRun, cause error) error {
	if !c.exists() {
		return batch.Permanent(cause)
	}
	ev := history.Event{Type: history.CaseFaulted, Error: &history.Error{
		Type: engine.ErrConfiguration, Status: 500, Title: "Case cannot continue", Detail: cause.Error(),
	}}
	if _, err := x.chains.AppendExact(ctx, c.tail(), c.tenant, c.id, ev); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record fault of %s (%v): %w", c.id, cause, err)
	}
	x.metrics.Add(telemetry.CasesFaulted, telemetry.Count, 1)
	return batch.Permanent(cause)
}

// lowOnTime reports whether the invocation's remaining time is below the
// margin.
func (x *Executor) lowOnTime(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && dl.Sub(x.now()) < x.cfg.Margin
}
