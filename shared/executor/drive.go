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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/knhk/knhk/shared/batch"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/engine"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
)

// caseRun is one case as this invocation sees it: its chain, the descriptor
// it pinned and the engine state folded from the chain.
type caseRun struct {
	tenant, id string
	receipts   []*receipt.Receipt
	desc       *registry.Descriptor
	prog       *engine.Program
	subs       engine.Pinned // the sub-workflows pinned at genesis
	state      *engine.State
	awaiting   bool              // a listen task waited when the chain was read
	keys       []store.ListenKey // the listen keys it was subscribed with
	read       int               // receipts when the chain was read
	// unsaved are the events decided since the chain was last written,
	// with the stimuli that produced them (decided again if the write
	// loses a race); flush writes them as one segment.
	unsaved  []unsaved
	consumed []engine.Stimulus
	// trace is the trace context of the message being handled; the
	// messages this invocation sends for the case carry it on.
	trace *message.Trace
}

// unsaved is one decided event not yet in the chain, with the usage its
// receipt records and the function that gives that usage back when no
// receipt is written for it.
type unsaved struct {
	p   store.Pending
	put func()
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
	// A quarantined case refuses every message until an operator releases
	// it (knhk case release).
	held, err := x.cases.Quarantined(ctx, caseID)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", caseID, err)
	}
	if len(held) > 0 {
		x.metrics.Add(telemetry.QuarantineRefused, telemetry.Count, 1)
		return nil, batch.Permanent(fmt.Errorf("%w (release with `knhk case release %s`)", &IntegrityError{CaseID: caseID, Findings: held}, caseID))
	}
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
	if c.subs, err = x.loadSubflows(ctx, st.Subflows); err != nil {
		if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrHashMismatch) {
			return nil, x.faultCase(ctx, c, err)
		}
		return nil, fmt.Errorf("case %s: %w", caseID, err)
	}
	c.read = len(rs)
	c.keys, c.awaiting = x.listenKeys(ctx, c)
	return c, nil
}

// maxSubflowDepth bounds the nesting of sub-workflows a case pins.
const maxSubflowDepth = 16

// pinSubflows resolves, once, every sub-workflow the case can run (those of
// its sub-workflows too) and returns the pins its genesis records; the
// engine then decides from the pinned documents with no registry I/O. Each
// must be the case tenant's or shared.
func (x *Executor) pinSubflows(ctx context.Context, c *caseRun, d *registry.Descriptor) ([]history.Subflow, error) {
	var pins []history.Subflow
	c.subs = engine.Pinned{}
	var walk func(d *registry.Descriptor, depth int) error
	walk = func(d *registry.Descriptor, depth int) error {
		for _, ref := range d.Workflow.Subflows() {
			key := engine.PinKey(ref.Namespace, ref.Name, ref.Version)
			if _, done := c.subs[key]; done {
				continue
			}
			if depth >= maxSubflowDepth {
				return batch.Permanent(fmt.Errorf("start %s: sub-workflows nested deeper than %d (at %s)", c.id, maxSubflowDepth, key))
			}
			if x.nss != nil {
				if err := x.nss.Authorize(ctx, c.tenant, ref.Namespace); errors.Is(err, registry.ErrNamespaceOwned) {
					return x.refuse(ctx, fmt.Errorf("start %s: sub-workflow %s: %w", c.id, key, err), "tenant", c.tenant, "namespace", ref.Namespace, "act", "run workflow")
				} else if err != nil {
					return err
				}
			}
			version := ref.Version
			if version == "latest" {
				version = ""
			}
			sub, err := x.descs.Resolve(ctx, ref.Namespace, ref.Name, version)
			if errors.Is(err, registry.ErrNotFound) {
				return batch.Permanent(fmt.Errorf("start %s: unknown sub-workflow %s: %w", c.id, key, err))
			}
			if err != nil {
				return fmt.Errorf("start %s: sub-workflow %s: %w", c.id, key, err)
			}
			c.subs[key] = sub.Workflow
			pin := history.Subflow{Namespace: sub.Namespace, Name: sub.Name, Version: sub.Version, Hash: sub.Hash}
			if ref.Version != sub.Version {
				pin.Requested = ref.Version
			}
			pins = append(pins, pin)
			if err := walk(sub, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d, 0); err != nil {
		return nil, err
	}
	return pins, nil
}

// loadSubflows loads the sub-workflows a case pinned, by content hash (the
// registry cache answers them without I/O once seen).
func (x *Executor) loadSubflows(ctx context.Context, pins []history.Subflow) (engine.Pinned, error) {
	if len(pins) == 0 {
		return nil, nil
	}
	subs := make(engine.Pinned, len(pins))
	for _, p := range pins {
		d, err := x.descs.Load(ctx, p.Namespace, p.Name, p.Version, p.Hash)
		if err != nil {
			return nil, fmt.Errorf("pinned sub-workflow %s/%s:%s: %w", p.Namespace, p.Name, p.Version, err)
		}
		requested := p.Version
		if p.Requested != "" {
			requested = p.Requested
		}
		subs[engine.PinKey(p.Namespace, p.Name, requested)] = d.Workflow
	}
	return subs, nil
}

// drive feeds stimuli to the engine until the case rests: it records every
// event, performs calls, and sends timers and parallel branches to the
// queue. The events of pure steps accumulate and are written as one segment
// before the next external effect (a call, an emit, a message to the queue)
// and when the case rests, so the chain always records an intent before its
// effect. only restricts the effects of the first decision (a redrive for a
// branch message) to that branch's call.
func (x *Executor) drive(ctx context.Context, c *caseRun, first engine.Stimulus, only string) error {
	pending := []engine.Stimulus{first}
	conflicts := 0
	opts, err := x.engineOptions(ctx, c)
	if err != nil {
		return err
	}
	// retry re-reads the chain after a lost race and re-decides the
	// stimuli whose events were not written (the engine ignores those the
	// winner consumed), then walks on.
	retry := func(err error, again []engine.Stimulus) error {
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
		pending = append(append(again, engine.Resume{Time: x.now()}), pending...)
		return nil
	}
	// flush writes the unsaved events; conflict reports a lost race that
	// retry handled (the walk continues from the fresh chain).
	flush := func() (conflict bool, err error) {
		startless, again := !c.exists(), c.consumed
		_, start := firstStimulus(again).(engine.Start)
		err = x.flush(ctx, c)
		if !errors.Is(err, store.ErrConflict) {
			return false, err
		}
		if start && startless {
			return true, errCaseExists // the genesis is taken: a duplicate start
		}
		return true, retry(err, again)
	}
	handBack := func() error {
		// After a lost race the continuation resumes from the fresh chain:
		// it redrives whatever the chain shows requested without a result.
		if _, err := flush(); err != nil {
			return err
		}
		x.metrics.Add(telemetry.DeadlineDeferred, telemetry.Count, 1)
		x.log.WarnContext(ctx, "invocation nearly out of time: case handed back to the queue")
		return x.send.Send(ctx, x.continuation(c, message.ReasonResume, "", time.Time{}, 0))
	}
	deferred := false // calls left to the resume continuation
	for {
		if len(pending) == 0 {
			if deferred {
				// The resume redrives the calls the chain shows requested
				// without a result.
				return handBack()
			}
			conflict, err := flush()
			if err != nil {
				return err
			}
			if !conflict {
				return x.settle(ctx, c)
			}
			continue // decide the lost stimuli again on the fresh chain
		}
		// Near the deadline no new call starts, but a result already
		// obtained is recorded first: calling again would repeat the effect.
		low := x.lowOnTime(ctx)
		if _, obtained := pending[0].(engine.EffectResult); low && !obtained {
			return handBack()
		}
		s := pending[0]
		pending = pending[1:]
		dec, err := c.prog.Decide(ctx, c.state, s, opts)
		if errors.Is(err, engine.ErrNondeterministic) {
			// The engine no longer decides what the chain recorded: the case
			// is held as it is, for an operator, and never extended.
			return x.quarantine(ctx, c, []receipt.Finding{{Kind: receipt.HistoryInvalid, Tenant: c.tenant, CaseID: c.id,
				Seq: int64(len(c.receipts) - 1), Detail: err.Error()}})
		}
		if err != nil {
			return x.faultCase(ctx, c, fmt.Errorf("engine: %w", err))
		}
		c.consumed = append(c.consumed, s)
		x.stage(ctx, c, dec.Events)
		if x.external(dec.Effects, only) || len(c.unsaved) >= receipt.MaxSegmentReceipts {
			// Persist before the effect; pure steps' events wait.
			if conflict, err := flush(); err != nil {
				return err
			} else if conflict {
				continue
			}
		}
		next, skipped, err := x.perform(ctx, c, dec.Effects, only, low)
		if err != nil {
			return err
		}
		deferred = deferred || skipped
		only = "" // the restriction covers the redriven effects only
		pending = append(pending, next...)
	}
}

func firstStimulus(ss []engine.Stimulus) engine.Stimulus {
	if len(ss) == 0 {
		return nil
	}
	return ss[0]
}

// external reports whether performing effects reaches outside the case: a
// call, an emit, or a message to the queue (a timer not yet due, a
// branch). Only due timers are not: they fire inline.
func (x *Executor) external(effects []engine.Effect, only string) bool {
	for _, e := range effects {
		switch e.Kind {
		case engine.EffectTimer:
			if only == "" && e.Due.Sub(x.now()) > 0 {
				return true
			}
		case engine.EffectEmit:
			if only == "" && e.Event != nil {
				return true
			}
		default:
			if only == "" || e.ID == only {
				return true
			}
		}
	}
	return false
}

// engineOptions adds the case's pinned sub-workflows and the values of the
// secrets its workflow declares.
func (x *Executor) engineOptions(ctx context.Context, c *caseRun) (engine.Options, error) {
	opts := x.cfg.Engine
	if c.subs != nil {
		opts.Registry = c.subs
	}
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

// stage adds a decision's events to the case's unsaved events, each with
// the usage metered since the event before it.
func (x *Executor) stage(ctx context.Context, c *caseRun, evs []history.Event) {
	for _, ev := range evs {
		opts, put := usage(ctx)
		c.unsaved = append(c.unsaved, unsaved{p: store.Pending{Event: ev, Options: opts}, put: put})
	}
}

// flush writes the case's unsaved events after its tail, as one segment
// (more only beyond a segment's bounds), in one span. On store.ErrConflict
// nothing of them is kept: the caller re-reads the chain.
func (x *Executor) flush(ctx context.Context, c *caseRun) (err error) {
	if len(c.unsaved) == 0 {
		c.consumed = nil
		return nil
	}
	evs := make([]store.Pending, len(c.unsaved))
	for i, u := range c.unsaved {
		evs[i] = u.p
	}
	if telemetry.Recording(ctx) {
		types := make([]string, len(evs))
		for i, p := range evs {
			types[i] = string(p.Event.Type)
		}
		var span trace.Span
		ctx, span = telemetry.StartSpan(ctx, "append receipts", attribute.StringSlice(telemetry.SpanEvents, types),
			attribute.Int(telemetry.SpanSeq, len(c.receipts)))
		defer func() { telemetry.EndSpan(span, err) }()
	}
	res, err := x.chains.AppendSegment(meter.Off(ctx), c.tail(), c.tenant, c.id, evs)
	chargeLost(ctx, res.Lost)
	written := c.unsaved
	c.unsaved, c.consumed = nil, nil
	if err != nil || res.Existing {
		for _, u := range written {
			u.put()
		}
	}
	if err != nil {
		// What was written before a later item of the run failed is in
		// the chain; a re-read picks it up.
		c.receipts = append(c.receipts, res.Receipts...)
		if errors.Is(err, store.ErrConflict) {
			return err
		}
		if errors.Is(err, limits.ErrLimit) {
			// The engine checks the limits first; this only guards a
			// value it could not see. Permanent: a redelivery cannot help.
			return x.faultCase(ctx, c, fmt.Errorf("append: %w", err))
		}
		return fmt.Errorf("append %d events to %s: %w", len(evs), c.id, err)
	}
	c.receipts = append(c.receipts, res.Receipts...)
	if !res.Existing {
		x.metrics.Add(telemetry.ReceiptsAppended, telemetry.Count, float64(len(res.Receipts)))
	}
	for _, p := range evs {
		x.count(c, p.Event)
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
// calls performed inline. With noCalls (the invocation is nearly out of
// time) it starts no call and reports whether it skipped any.
func (x *Executor) perform(ctx context.Context, c *caseRun, effects []engine.Effect, only string, noCalls bool) ([]engine.Stimulus, bool, error) {
	var (
		calls []engine.Effect
		out   []queue.Message
		next  []engine.Stimulus
	)
	for _, e := range effects {
		switch e.Kind {
		case engine.EffectHTTP, engine.EffectOpenAPI, engine.EffectGRPC, engine.EffectScript:
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
			ev.SetExtension(message.TenantExtension, c.tenant)
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
	skipped := noCalls && len(calls) > 0
	if skipped {
		calls = nil
	}
	if x.cfg.FanOut && len(calls) > 1 {
		for _, e := range calls[1:] {
			out = append(out, x.continuation(c, message.ReasonBranch, e.ID, time.Time{}, 0))
		}
		calls = calls[:1]
	}
	if len(out) > 0 {
		if err := x.send.Send(ctx, out...); err != nil {
			return nil, false, fmt.Errorf("case %s: send continuations: %w", c.id, err)
		}
	}
	results, cut := x.call(ctx, c, calls)
	return append(next, results...), skipped || cut, nil
}

// call performs calls concurrently and returns their results as stimuli.
// Every call carries an Idempotency-Key derived from the case and the call's
// occurrence in the history, the same for every redelivery and redrive of
// that call, and a timeout that ends before the invocation's remaining time
// drops below the margin. A call cut short by that limit has no result: it
// is left to the resume continuation (cut is true), which calls again with
// the same key in an invocation with time for it.
func (x *Executor) call(ctx context.Context, c *caseRun, calls []engine.Effect) (results []engine.Stimulus, cut bool) {
	callCtx := ctx
	if dl, ok := ctx.Deadline(); ok && len(calls) > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithDeadline(ctx, dl.Add(-x.cfg.Margin))
		defer cancel()
	}
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
			key := httpcall.IdempotencyKey(c.id, e.ID)
			spanCtx, span := telemetry.StartSpan(callCtx, "task "+e.ID, attribute.String(telemetry.SpanTask, e.ID))
			v, err = x.calls.Perform(spanCtx, e, key)
			if err != nil && callCtx.Err() != nil {
				telemetry.EndSpan(span, errors.New("cut by the invocation's time limit"))
				return // cut by the invocation's time limit, not answered
			}
			if err != nil {
				telemetry.EndSpan(span, fmt.Errorf("%s (status %d): %s", err.Type, err.Status, err.Detail))
			} else {
				telemetry.EndSpan(span, nil)
			}
			out[i] = engine.EffectResult{ID: e.ID, Output: v, Error: err, Time: x.now()}
		}()
	}
	wg.Wait()
	results = out[:0]
	for _, s := range out {
		if s == nil {
			cut = true
			continue
		}
		results = append(results, s)
	}
	if cut {
		x.log.WarnContext(ctx, "call cut short by the invocation's remaining time: left to the resume continuation")
	}
	return results, cut
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
	if errors.Is(cause, limits.ErrLimit) {
		ev.Error.Type, ev.Error.Status, ev.Error.Title = engine.ErrRuntime, 413, "Limit Exceeded"
	}
	// The fault follows the events decided before it.
	x.stage(ctx, c, []history.Event{ev})
	evs := make([]store.Pending, len(c.unsaved))
	for i, u := range c.unsaved {
		evs[i] = u.p
	}
	c.unsaved, c.consumed = nil, nil
	res, err := x.chains.AppendSegment(meter.Off(ctx), c.tail(), c.tenant, c.id, evs)
	chargeLost(ctx, res.Lost)
	if err != nil && !errors.Is(err, store.ErrConflict) {
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
