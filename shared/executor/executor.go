// Package executor is the SQS-triggered executor's handler: it decodes work
// messages, folds each case's receipt chain into engine state, runs the
// deterministic engine, appends one receipt per event with a conditional
// write, performs the effects the engine asks for and hands timers, parallel
// branches and leftover work back to the queue.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/batch"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/engine"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Chains reads and extends receipt chains.
type Chains interface {
	// Chain reads a case's receipts in order; findings report items that do
	// not decode.
	Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error)
	// AppendExact appends ev right after prev, or fails with
	// store.ErrConflict when another writer extended the chain first with a
	// different event.
	AppendExact(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, ev history.Event, opts ...receipt.Option) (store.Appended, error)
	// Events turns receipts back into the history they record.
	Events(ctx context.Context, rs []*receipt.Receipt) ([]history.Event, error)
}

// Descriptors resolves published workflow descriptors.
type Descriptors interface {
	Resolve(ctx context.Context, ns, name, version string) (*registry.Descriptor, error)
	Load(ctx context.Context, ns, name, version, hash string) (*registry.Descriptor, error)
}

// Sender puts messages on the work queue.
type Sender interface {
	Send(ctx context.Context, msgs ...queue.Message) error
}

// Cases keeps per-case records outside the chain: quarantine, listen
// subscriptions and input blobs.
type Cases interface {
	// Quarantine records integrity findings for a case; first is true the
	// first time the case is quarantined.
	Quarantine(ctx context.Context, tenant, caseID string, findings []receipt.Finding) (first bool, err error)
	// Subscribe records the listen keys a waiting case's events must match
	// and drops the index entries of its stale keys.
	Subscribe(ctx context.Context, tenant, caseID string, keys, stale []store.ListenKey) error
	Unsubscribe(ctx context.Context, tenant, caseID string, keys []store.ListenKey) error
	// ListenShapes and Listeners look up the cases an event matches.
	ListenShapes(ctx context.Context, tenant string) ([]store.ListenKey, error)
	Listeners(ctx context.Context, tenant string, key store.ListenKey) ([]string, error)
	Blob(ctx context.Context, hash string) ([]byte, error)
}

// Secrets resolves the values of the secrets a workflow declares.
type Secrets interface {
	Resolve(ctx context.Context, names []string) (map[string]any, error)
}

// Alerter pages people about integrity problems.
type Alerter interface {
	Alert(ctx context.Context, subject, body string) error
}

// Config tunes the executor.
type Config struct {
	// Workers bounds the cases handled concurrently in one batch.
	Workers int
	// Margin is the remaining invocation time below which no new task starts.
	Margin time.Duration
	// MaxReceiveCount is the queue's redrive threshold, to count messages
	// bound for the dead-letter queue.
	MaxReceiveCount int
	// FanOut hands all but one of a decision's parallel calls to other
	// executors as branch messages.
	FanOut bool
	// MaxConflicts bounds re-reads after losing an append race.
	MaxConflicts int
	// Engine options (step budget, secrets, sub-workflow registry).
	Engine engine.Options
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{Workers: 8, Margin: 5 * time.Second, MaxReceiveCount: 5, FanOut: true, MaxConflicts: 8}
}

// Executor handles batches of work-queue messages. It is safe for concurrent
// use.
type Executor struct {
	cfg     Config
	chains  Chains
	descs   Descriptors
	send    Sender
	cases   Cases
	alerts  Alerter
	secrets Secrets
	calls   *httpcall.Client
	log     *slog.Logger
	now     func() time.Time
	metrics *telemetry.Metrics
	progs   sync.Map   // descriptor hash -> *engine.Program
	froms   expr.Cache // the listen index's correlation expressions
}

// Deps are the executor's collaborators.
type Deps struct {
	Chains      Chains
	Descriptors Descriptors
	Sender      Sender
	Cases       Cases
	Alerts      Alerter
	Secrets     Secrets      // nil: only Config.Engine.Secrets
	HTTP        *http.Client // performs the workflows' calls (wrap its transport in a circuit breaker)
	Log         *slog.Logger
	Metrics     *telemetry.Metrics
	Now         func() time.Time
}

// New builds an executor.
func New(cfg Config, d Deps) *Executor {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = telemetry.NewMetrics(telemetry.Namespace)
	}
	if cfg.MaxConflicts <= 0 {
		cfg.MaxConflicts = 8
	}
	return &Executor{cfg: cfg, chains: d.Chains, descs: d.Descriptors, send: d.Sender, cases: d.Cases,
		alerts: d.Alerts, secrets: d.Secrets, calls: &httpcall.Client{HTTP: d.HTTP}, log: d.Log, now: d.Now, metrics: d.Metrics}
}

// Handle processes one SQS batch: messages of one case in order, different
// cases concurrently. It reports transient failures as batch item failures
// and drops permanent ones after logging and counting them.
func (x *Executor) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	opts := batch.SQSOptions{
		Options: batch.Options{
			Workers:        x.cfg.Workers,
			DeadlineMargin: x.cfg.Margin,
			Clock:          x.now,
			OnPermanent: func(ctx context.Context, id string, err error) {
				x.metrics.Add(telemetry.PermanentErrors, telemetry.Count, 1)
				x.log.ErrorContext(ctx, "message dropped: permanent error", "messageId", id, "error", err.Error())
			},
			OnFailure: func(ctx context.Context, id string, reason error) {
				x.log.WarnContext(ctx, "message returned to the queue", "messageId", id, "reason", reason.Error())
			},
		},
		Key: caseKey,
	}
	resp := batch.ProcessSQS(ctx, ev, opts, x.handleMessage)
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range ev.Records {
		if failed[m.MessageId] && x.cfg.MaxReceiveCount > 0 && batch.ReceiveCount(m) >= x.cfg.MaxReceiveCount {
			x.metrics.Add(telemetry.DLQBound, telemetry.Count, 1)
			x.log.ErrorContext(ctx, "message bound for the dead-letter queue", "messageId", m.MessageId, "receiveCount", batch.ReceiveCount(m))
		}
	}
	x.metrics.Add(telemetry.BatchItemFailures, telemetry.Count, float64(len(resp.BatchItemFailures)))
	return resp, nil
}

// caseKey groups messages by case: the knhk-case attribute when the sender
// set it, else the case named or derived by the body.
func caseKey(m events.SQSMessage) string {
	if a, ok := m.MessageAttributes[queue.CaseAttribute]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	msg, err := message.Decode([]byte(m.Body))
	if err != nil {
		return ""
	}
	switch {
	case msg.Start != nil:
		return msg.Start.CaseID()
	case msg.Continue != nil:
		return msg.Continue.CaseID
	default:
		return ""
	}
}

func (x *Executor) handleMessage(ctx context.Context, m events.SQSMessage) error {
	msg, err := message.Decode([]byte(m.Body))
	if err != nil {
		return batch.Permanent(err)
	}
	switch {
	case msg.Start != nil:
		return x.start(ctx, msg.Start)
	case msg.Continue != nil:
		return x.resume(ctx, msg.Continue)
	default:
		raw, err := json.Marshal(msg.Event)
		if err != nil {
			return batch.Permanent(fmt.Errorf("encode event: %w", err))
		}
		tenant := message.DefaultTenant
		if t, ok := msg.Event.Extensions()["knhktenant"].(string); ok && t != "" {
			tenant = t
		}
		return x.deliver(ctx, tenant, msg.Event.Type(), raw, eventTrace(msg.Event.Extensions()))
	}
}

// start opens a case, or resumes the one a copy of the message opened.
func (x *Executor) start(ctx context.Context, s *message.Start) error {
	caseID := s.CaseID()
	ctx = withTrace(telemetry.WithCase(ctx, s.Tenant, caseID), s.Trace)
	// Most start messages name a new case, so the chain is not read first:
	// the genesis receipt's conditional write tells a duplicate apart.
	err := x.startNew(ctx, s, caseID)
	if !errors.Is(err, errCaseExists) {
		return err
	}
	c, err := x.open(ctx, s.Tenant, caseID)
	if err != nil {
		return err
	}
	if !c.exists() {
		return fmt.Errorf("start %s: the genesis write conflicted but the chain is empty", caseID)
	}
	c.trace = s.Trace
	x.log.InfoContext(ctx, "duplicate start message: case exists", "workflow", s.Workflow.String(), "status", string(c.state.Status))
	if c.state.Terminal() {
		return nil
	}
	return x.drive(ctx, c, engine.Resume{Time: x.now(), Redrive: true}, "")
}

// errCaseExists means a start message's genesis receipt lost its conditional
// write: the case exists.
var errCaseExists = errors.New("case exists")

// startNew starts a case assumed new; it returns errCaseExists when the
// genesis receipt is taken.
func (x *Executor) startNew(ctx context.Context, s *message.Start, caseID string) error {
	d, err := x.descs.Resolve(ctx, s.Workflow.Namespace, s.Workflow.Name, s.Workflow.Version)
	if errors.Is(err, registry.ErrNotFound) {
		return batch.Permanent(fmt.Errorf("start %s: unknown workflow %s: %w", caseID, s.Workflow, err))
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", caseID, err)
	}
	input, err := x.startInput(ctx, s)
	if err != nil {
		return err
	}
	c := &caseRun{tenant: s.Tenant, id: caseID, state: engine.NewState(), trace: s.Trace}
	if err := c.bind(x, d); err != nil {
		return batch.Permanent(err)
	}
	stim := engine.Start{CaseID: caseID, Input: input, Time: x.now(), Genesis: history.Genesis{
		Tenant: s.Tenant, Namespace: d.Namespace, Workflow: d.Name, Version: d.Version, DescriptorHash: d.Hash,
	}}
	return x.drive(ctx, c, stim, "")
}

// startInput decodes a start message's input, inline or by reference.
func (x *Executor) startInput(ctx context.Context, s *message.Start) (any, error) {
	raw := []byte(s.Input)
	if s.InputRef != "" {
		b, err := x.cases.Blob(ctx, s.InputRef[len("sha256:"):])
		if err != nil {
			return nil, fmt.Errorf("start: input %s: %w", s.InputRef, err)
		}
		raw = b
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, batch.Permanent(fmt.Errorf("start: input is not JSON: %w", err))
	}
	return v, nil
}

// resume continues a case for a branch, timer, retry, event or leftover work.
func (x *Executor) resume(ctx context.Context, m *message.Continue) error {
	ctx = withTrace(telemetry.WithCase(ctx, m.Tenant, m.CaseID), m.Trace)
	c, err := x.open(ctx, m.Tenant, m.CaseID)
	if err != nil {
		return err
	}
	if !c.exists() {
		return batch.Permanent(fmt.Errorf("continue %s: no such case", m.CaseID))
	}
	c.trace = m.Trace
	if n := int64(len(c.receipts)); n < m.ExpectedSeq {
		// The message saw a longer chain than the table holds now: receipts
		// were removed from its tail, which chain verification alone cannot see.
		return x.quarantine(ctx, c, []receipt.Finding{{Kind: receipt.Truncated, Tenant: m.Tenant, CaseID: m.CaseID, Seq: n,
			Expected: fmt.Sprintf("at least %d receipts", m.ExpectedSeq), Actual: fmt.Sprintf("%d receipts", n)}})
	}
	if c.state.Terminal() {
		return nil
	}
	now := x.now()
	switch m.Reason {
	case message.ReasonTimer, message.ReasonRetry:
		if wait := m.DueAt.Sub(now); wait > time.Second {
			// Longer than one SQS delay: hop again.
			return x.send.Send(ctx, queue.Message{Body: m, Delay: wait, CaseID: m.CaseID, TraceParent: traceParent(m.Trace)})
		}
		return x.drive(ctx, c, engine.TimerFired{ID: m.Ref, Time: now}, "")
	case message.ReasonEvent:
		var ev map[string]any
		if err := json.Unmarshal(m.Event, &ev); err != nil {
			return batch.Permanent(fmt.Errorf("continue %s: event: %w", m.CaseID, err))
		}
		return x.drive(ctx, c, engine.EventArrived{Event: ev, Time: now}, "")
	case message.ReasonBranch:
		return x.drive(ctx, c, engine.Resume{Time: now, Redrive: true}, m.Ref)
	default:
		return x.drive(ctx, c, engine.Resume{Time: now, Redrive: true}, "")
	}
}

// deliver hands an external event to the waiting cases it matches: for each
// listen-key shape of the tenant that admits the event's type, it evaluates
// the shape's correlation expressions on the event and reads the cases
// subscribed with those values. Each matching case gets one event message;
// the engine checks the event again (every filter and correlation). The
// cost is one read per shape, whatever the number of waiting cases.
func (x *Executor) deliver(ctx context.Context, tenant, eventType string, event json.RawMessage, trace *message.Trace) error {
	shapes, err := x.cases.ListenShapes(ctx, tenant)
	if err != nil {
		return fmt.Errorf("deliver event: %w", err)
	}
	var ev any
	if err := json.Unmarshal(event, &ev); err != nil {
		return batch.Permanent(fmt.Errorf("deliver event: %w", err))
	}
	ev = expr.Normalize(ev)
	var ids []string
	for _, sh := range shapes {
		if sh.Type != "" && sh.Type != eventType {
			continue
		}
		key, err := x.eventKey(ctx, sh, ev)
		if err != nil {
			// This shape's cases cannot want the event: their engine would
			// fail on the same expression.
			x.log.WarnContext(ctx, "event skipped for a listen key: correlation does not evaluate", "tenant", tenant, "type", eventType, "error", err.Error())
			continue
		}
		found, err := x.cases.Listeners(ctx, tenant, key)
		if err != nil {
			return fmt.Errorf("deliver event: %w", err)
		}
		ids = append(ids, found...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		x.metrics.Add(telemetry.EventsUnmatched, telemetry.Count, 1)
		x.log.InfoContext(ctx, "event matched no waiting case", "tenant", tenant, "type", eventType)
		return nil
	}
	msgs := make([]queue.Message, 0, len(ids))
	for _, id := range ids {
		msgs = append(msgs, queue.Message{CaseID: id, TraceParent: traceParent(trace), Body: message.Continue{
			Kind: message.KindContinue, Tenant: tenant, CaseID: id, Reason: message.ReasonEvent, Event: event, Trace: trace,
		}})
	}
	if err := x.send.Send(ctx, msgs...); err != nil {
		return err
	}
	x.metrics.Add(telemetry.EventsDelivered, telemetry.Count, float64(len(msgs)))
	return nil
}

// eventKey is the listen key an event has under shape sh: each field's
// expression evaluated on the event alone (compiled once per source).
func (x *Executor) eventKey(ctx context.Context, sh store.ListenKey, ev any) (store.ListenKey, error) {
	values := make([]json.RawMessage, len(sh.Fields))
	for i, f := range sh.Fields {
		e, err := x.froms.Compile(f.From)
		if err != nil {
			return sh, err
		}
		v, err := e.Eval(ctx, ev, expr.Vars{})
		if err != nil {
			return sh, err
		}
		if values[i], err = json.Marshal(v); err != nil {
			return sh, fmt.Errorf("correlation %s: %w", f.Name, err)
		}
	}
	return sh.WithValues(values), nil
}

// withTrace adds a message's trace id and correlation id to the log context.
func withTrace(ctx context.Context, t *message.Trace) context.Context {
	if t == nil {
		return ctx
	}
	if id, _, ok := telemetry.ParseTraceparent(t.TraceParent); ok {
		ctx = telemetry.WithTraceID(ctx, id)
	}
	if t.CorrelationID != "" {
		ctx = telemetry.WithCorrelationID(ctx, t.CorrelationID)
	}
	return ctx
}

// eventTrace is the trace context a CloudEvent carries in the distributed
// tracing extension, or nil.
func eventTrace(ext map[string]any) *message.Trace {
	tp, _ := ext["traceparent"].(string)
	if _, _, ok := telemetry.ParseTraceparent(tp); !ok {
		return nil
	}
	ts, _ := ext["tracestate"].(string)
	return &message.Trace{TraceParent: tp, TraceState: ts}
}

func traceParent(t *message.Trace) string {
	if t == nil {
		return ""
	}
	return t.TraceParent
}
