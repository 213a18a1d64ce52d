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
	"go.opentelemetry.io/otel/attribute"

	"github.com/knhk/knhk/shared/batch"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/tenancy"
	"github.com/knhk/knhk/shared/workflow/engine"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/engine/script"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Chains reads and extends receipt chains.
type Chains interface {
	// Chain reads a case's receipts in order; findings report items that do
	// not decode.
	Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error)
	// Range reads the receipts with seq in [from, to].
	Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error)
	// AppendSegment appends evs right after prev as one segment (more when
	// they exceed a segment's bounds), or fails with store.ErrConflict when
	// another writer extended the chain first with different events.
	AppendSegment(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, evs []store.Pending) (store.Appended, error)
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

// Payloads reads the inputs sent by reference from the payloads bucket
// (objects.Payloads), checking each against its hash; a missing one is
// objects.ErrNotFound.
type Payloads interface {
	Blob(ctx context.Context, hash string) ([]byte, error)
}

// Cases keeps per-case records outside the chain: quarantine, listen
// subscriptions and input blobs.
type Cases interface {
	// Quarantine records integrity findings for a case; first is true the
	// first time the case is quarantined.
	Quarantine(ctx context.Context, tenant, caseID string, findings []receipt.Finding) (first bool, err error)
	// Quarantined returns the findings a case was quarantined for, nil
	// when it is not quarantined (a strongly consistent read).
	Quarantined(ctx context.Context, caseID string) ([]receipt.Finding, error)
	// StartConflict records that a start message reused a case's
	// idempotency key with another input; first is true the first time for
	// that input.
	StartConflict(ctx context.Context, c store.StartConflict) (first bool, err error)
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

// Grants lists the tenants granted to a principal (tenancy.Principal of a
// message's SenderId).
type Grants interface {
	Tenants(ctx context.Context, principal string) ([]string, error)
}

// Namespaces says whether a tenant may start the workflows of a registry
// namespace.
type Namespaces interface {
	Authorize(ctx context.Context, tenant, namespace string) error
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
	// SeqRereads bounds the strongly consistent re-reads of a chain that is
	// shorter than a continuation's expectedSeq claims, before the message
	// is dropped as invalid; SeqPause is the pause before the first
	// re-read, doubling after each.
	SeqRereads int
	SeqPause   time.Duration
	// Engine options (step budget, secrets).
	Engine engine.Options
	// Tenancy is the tenant model: the executor's own principal and the
	// tenants open to every sender. It applies when Deps.Grants is set.
	Tenancy tenancy.Policy
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{Workers: 8, Margin: 5 * time.Second, MaxReceiveCount: 5, FanOut: true, MaxConflicts: 8,
		SeqRereads: 3, SeqPause: 50 * time.Millisecond}
}

// Executor handles batches of work-queue messages. It is safe for concurrent
// use.
type Executor struct {
	cfg     Config
	chains  Chains
	descs   Descriptors
	send    Sender
	cases   Cases
	inputs  Payloads
	alerts  Alerter
	secrets Secrets
	grants  Grants
	nss     Namespaces
	slis    SLIs
	calls   *engine.Performer
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
	Payloads    Payloads         // nil: inputs by reference are read from Cases only
	Secrets     Secrets          // nil: only Config.Engine.Secrets
	HTTP        *http.Client     // performs the workflows' calls (wrap its transport in a circuit breaker)
	GRPC        *grpccall.Client // performs gRPC calls (nil: proto files over HTTP, tokens from HTTP's cache)
	Scripts     *script.Runner   // runs scripts (nil: the default bounds)
	Log         *slog.Logger
	Metrics     *telemetry.Metrics
	Now         func() time.Time

	// Grants and Namespaces authorize every message by its sender (nil:
	// every sender may act for every tenant, for tests and tools only).
	Grants     Grants
	Namespaces Namespaces

	// SLIs receives the dead-lettered outcomes (nil: not recorded).
	SLIs SLIs
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
	if cfg.SeqRereads <= 0 {
		cfg.SeqRereads = 3
	}
	return &Executor{cfg: cfg, chains: d.Chains, descs: d.Descriptors, send: d.Sender, cases: d.Cases, inputs: d.Payloads,
		alerts: d.Alerts, secrets: d.Secrets, grants: d.Grants, nss: d.Namespaces, slis: d.SLIs, calls: engine.NewPerformer(&httpcall.Client{HTTP: d.HTTP}, d.GRPC, d.Scripts), log: d.Log, now: d.Now, metrics: d.Metrics}
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
	resp := batch.ProcessSQS(ctx, ev, opts, x.metered(ev.Records, handler.Messages(x.handleMessage)))
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range ev.Records {
		if failed[m.MessageId] && x.cfg.MaxReceiveCount > 0 && batch.ReceiveCount(m) >= x.cfg.MaxReceiveCount {
			x.metrics.Add(telemetry.DLQBound, telemetry.Count, 1)
			x.log.ErrorContext(ctx, "message bound for the dead-letter queue", "messageId", m.MessageId, "receiveCount", batch.ReceiveCount(m))
			x.deadLettered(ctx, m)
		}
	}
	x.metrics.Add(telemetry.BatchItemFailures, telemetry.Count, float64(len(resp.BatchItemFailures)))
	return resp, nil
}

// caseKey groups messages by the case a valid message names or derives. A
// message that fails validation gets no key, so it is a group of its own
// and can never hold back another case's messages; the knhk-case message
// attribute is a routing hint of the sender and is not trusted for this.
func caseKey(m events.SQSMessage) string {
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
	sender := m.Attributes[tenancy.SenderAttribute]
	switch {
	case msg.Start != nil:
		if err := x.authorize(ctx, sender, tenancy.Start, msg.Start.Tenant); err != nil {
			return err
		}
		if err := x.authorizeNamespace(ctx, msg.Start); err != nil {
			return err
		}
		return x.start(ctx, msg.Start)
	case msg.Continue != nil:
		if err := x.authorize(ctx, sender, tenancy.Continue, msg.Continue.Tenant); err != nil {
			return err
		}
		return x.resume(ctx, msg.Continue)
	default:
		raw, err := json.Marshal(msg.Event)
		if err != nil {
			return batch.Permanent(fmt.Errorf("encode event: %w", err))
		}
		tenant := message.EventTenant(msg.Event)
		if err := x.authorize(ctx, sender, tenancy.Signal, tenant); err != nil {
			return err
		}
		return x.deliver(ctx, tenant, msg.Event.Type(), raw, eventTrace(msg.Event.Extensions()))
	}
}

// authorize checks that the sender of a message may act for the tenant it
// names; a refusal is permanent, logged and counted.
func (x *Executor) authorize(ctx context.Context, sender string, act tenancy.Act, tenant string) error {
	if x.grants == nil || x.cfg.Tenancy.Trusted(sender) {
		return nil
	}
	granted, err := x.grants.Tenants(ctx, tenancy.Principal(sender))
	if err != nil {
		return fmt.Errorf("authorize %s for %s: %w", act, tenant, err)
	}
	if err := x.cfg.Tenancy.Decide(sender, granted, act, tenant); err != nil {
		return x.refuse(ctx, err, "principal", tenancy.Principal(sender), "tenant", tenant, "act", string(act))
	}
	return nil
}

// authorizeNamespace checks that a start message's tenant may start the
// workflows of the namespace it names.
func (x *Executor) authorizeNamespace(ctx context.Context, s *message.Start) error {
	if x.nss == nil {
		return nil
	}
	err := x.nss.Authorize(ctx, s.Tenant, s.Workflow.Namespace)
	if errors.Is(err, registry.ErrNamespaceOwned) {
		return x.refuse(ctx, err, "tenant", s.Tenant, "namespace", s.Workflow.Namespace, "act", string(tenancy.Start))
	}
	return err
}

// refuse logs and counts a message refused for its tenant, and drops it.
func (x *Executor) refuse(ctx context.Context, err error, attrs ...any) error {
	x.metrics.Add(telemetry.Unauthorized, telemetry.Count, 1)
	x.log.WarnContext(ctx, "message refused: sender not authorized for the tenant", append(attrs, "error", err.Error())...)
	return batch.Permanent(err)
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
	if err := x.checkStartInput(ctx, s, c); err != nil {
		return err
	}
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
	pins, err := x.pinSubflows(ctx, c, d)
	if err != nil {
		return err
	}
	stim := engine.Start{CaseID: caseID, Input: input, Time: x.now(), Subflows: pins, Genesis: history.Genesis{
		Tenant: s.Tenant, Namespace: d.Namespace, Workflow: d.Name, Version: d.Version, DescriptorHash: d.Hash,
		TraceParent: caseTrace(ctx, s.Trace),
	}}
	return x.drive(ctx, c, stim, "")
}

// checkStartInput compares the input of a start message that found its case
// existing with the input the case was started with (the genesis receipt's
// input hash). Another input under the same idempotency key is a conflict:
// counted, logged and recorded where the submitter can read it, and the
// message is dropped; the case is left alone.
func (x *Executor) checkStartInput(ctx context.Context, s *message.Start, c *caseRun) error {
	raw, err := x.startRaw(ctx, s)
	if err != nil {
		return err
	}
	got, err := receipt.PayloadHash(raw)
	if err != nil {
		return batch.Permanent(fmt.Errorf("start: input is not JSON: %w", err))
	}
	want := c.receipts[0].InputHash
	if got == want {
		return nil
	}
	x.metrics.Add(telemetry.StartConflicts, telemetry.Count, 1)
	x.log.ErrorContext(ctx, "start conflict: idempotency key reused with a different input",
		"workflow", s.Workflow.String(), "idempotencyKey", s.IdempotencyKey, "caseInputHash", want, "messageInputHash", got)
	if _, err := x.cases.StartConflict(ctx, store.StartConflict{Tenant: s.Tenant, CaseID: c.id, IdempotencyKey: s.IdempotencyKey,
		CaseInputHash: want, InputHash: got, At: x.now()}); err != nil {
		return fmt.Errorf("start %s: record conflict: %w", c.id, err)
	}
	return batch.Permanent(fmt.Errorf("start %s: idempotency key %q reused with a different input (sha256 %s, the case was started with %s)",
		c.id, s.IdempotencyKey, got, want))
}

// startRaw returns a start message's input bytes, inline or by reference.
func (x *Executor) startRaw(ctx context.Context, s *message.Start) ([]byte, error) {
	if s.InputRef == "" {
		return s.Input, nil
	}
	hash := s.InputRef[len("sha256:"):]
	if x.inputs != nil {
		b, err := x.inputs.Blob(ctx, hash)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, objects.ErrNotFound) {
			return nil, fmt.Errorf("start: input %s: %w", s.InputRef, err)
		}
		// Not in the bucket: a message from before the bucket, whose input
		// is a blob of the state table.
	}
	b, err := x.cases.Blob(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("start: input %s: %w", s.InputRef, err)
	}
	return b, nil
}

// startInput decodes a start message's input, inline or by reference.
func (x *Executor) startInput(ctx context.Context, s *message.Start) (any, error) {
	raw, err := x.startRaw(ctx, s)
	if err != nil {
		return nil, err
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
	if g := c.receipts[0].Genesis; g != nil {
		// A hop that came with a trace of its own (a CloudEvent's) joins
		// the case's trace by a link.
		telemetry.LinkTrace(ctx, g.TraceParent, attribute.String("knhk.link", "case"))
	}
	if int64(len(c.receipts)) < m.ExpectedSeq {
		if c, err = x.awaitPosition(ctx, m, c); err != nil {
			return err
		}
	}
	if c.state.Terminal() {
		return nil
	}
	now := x.now()
	switch m.Reason {
	case message.ReasonTimer, message.ReasonRetry:
		// The message's dueAt is a claim; the due time the chain recorded
		// when the timer was scheduled decides.
		t := c.state.Timers[m.Ref]
		if t == nil || t.Fired {
			x.log.InfoContext(ctx, "timer message for no pending timer: ignored", "timer", m.Ref)
			return nil
		}
		if wait := t.Due.Sub(now); wait > 0 {
			// Early (a long wait hops in steps of at most 15 minutes, or the
			// message lied): wait again for the recorded due time.
			return x.send.Send(ctx, x.continuation(c, m.Reason, m.Ref, t.Due, wait))
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

// awaitPosition re-reads a chain shorter than a continuation claims (it may
// be a read racing a write) a bounded number of times, strongly consistent,
// and drops the message as invalid if the chain stays short. The claim alone
// is no evidence against the case: the case is not quarantined (removed
// receipts are the verifier's to find, from the stream).
func (x *Executor) awaitPosition(ctx context.Context, m *message.Continue, c *caseRun) (*caseRun, error) {
	pause := x.cfg.SeqPause
	for range x.cfg.SeqRereads {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause *= 2
		fresh, err := x.open(ctx, m.Tenant, m.CaseID)
		if err != nil {
			return nil, err
		}
		fresh.trace = c.trace
		c = fresh
		if int64(len(c.receipts)) >= m.ExpectedSeq {
			return c, nil
		}
	}
	x.metrics.Add(telemetry.ContinuationsInvalid, telemetry.Count, 1)
	x.log.WarnContext(ctx, "continuation dropped: it claims a longer chain than strongly consistent reads show",
		"reason", string(m.Reason), "expectedSeq", m.ExpectedSeq, "receipts", len(c.receipts), "reads", x.cfg.SeqRereads+1)
	return nil, batch.Permanent(fmt.Errorf("continue %s: expectedSeq %d is ahead of the chain's %d receipts after %d reads: invalid message",
		m.CaseID, m.ExpectedSeq, len(c.receipts), x.cfg.SeqRereads+1))
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

// caseTrace is the trace context a new case records in its genesis: the
// span handling its start message, else the message's own trace context.
func caseTrace(ctx context.Context, t *message.Trace) string {
	if tp := telemetry.TraceParent(ctx); tp != "" {
		return tp
	}
	return traceParent(t)
}

func traceParent(t *message.Trace) string {
	if t == nil {
		return ""
	}
	return t.TraceParent
}
