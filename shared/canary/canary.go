// Package canary is the health canary: every minute it starts a small
// built-in workflow under a reserved tenant and judges the cases it started
// before from the verified chain: a case is healthy when the verifier's
// watermark has passed its terminal receipt, that receipt is a completion,
// no finding was recorded for the case, and it ended within the freshness
// bound of its submission. It is the availability signal that holds when
// real traffic is quiet.
package canary

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

// FunctionName is the canary's short name and its metrics' Function
// dimension.
const FunctionName = "canary"

// Tenant is the reserved tenant the canary's cases run under; Namespace is
// the reserved namespace its workflow is published to (owned by Tenant).
const (
	Tenant    = "knhk-canary"
	Namespace = "knhk-canary"
)

// EnvFreshness carries the freshness bound (a Go duration).
const EnvFreshness = "KNHK_CANARY_FRESHNESS"

// DefaultFreshness is how long a canary case may take from submission to a
// verified completion.
const DefaultFreshness = 2 * time.Minute

// Workflow is the built-in workflow the canary starts.
//
//go:embed workflow.yaml
var Workflow []byte

// Probe is one canary case waiting to be judged.
type Probe struct {
	CaseID    string    `json:"caseId"`
	Submitted time.Time `json:"submitted"`
}

// Verdict is the judgement of one probe.
type Verdict struct {
	Probe
	// Decided is false while the case may still end in time.
	Decided bool          `json:"decided"`
	OK      bool          `json:"ok"`
	Latency time.Duration `json:"latency,omitempty"` // submission to the terminal receipt
	Reason  string        `json:"reason,omitempty"`  // why a probe failed
	// Outcome is a decided probe as the canary's service level counts it:
	// a healthy probe completed; one that was late, or never reached a
	// verified end in time, timed out; one that ended in a fault or whose
	// chain has findings is a platform fault.
	Outcome sla.Outcome `json:"-"`
}

// Judge decides a probe from what the verifier recorded: its watermark, the
// terminal receipt (nil when not read), the case's findings, at now.
func Judge(p Probe, w receipt.Watermark, terminal *receipt.Receipt, findings []receipt.Finding, now time.Time, freshness time.Duration) Verdict {
	v := Verdict{Probe: p, Decided: true, Outcome: sla.PlatformFaulted}
	deadline := p.Submitted.Add(freshness)
	switch {
	case len(findings) > 0:
		v.Reason = fmt.Sprintf("the chain has %d integrity finding(s): %s", len(findings), findings[0])
	case w.Ended == 0 || w.Seq < w.Ended || terminal == nil:
		if !now.After(deadline) {
			v.Decided = false
			return v
		}
		v.Reason = fmt.Sprintf("no verified terminal receipt %s after submission (verified through seq %d)", freshness, w.Seq)
		v.Outcome = sla.TimedOut
	case terminal.Seq != w.Ended:
		v.Reason = fmt.Sprintf("the terminal receipt read is seq %d, the watermark's is %d", terminal.Seq, w.Ended)
	case terminal.Type != history.CaseCompleted:
		v.Reason = fmt.Sprintf("the case ended with %s", terminal.Type)
	default:
		v.Latency = max(terminal.Started.Sub(p.Submitted), 0)
		if terminal.Started.After(deadline) {
			v.Reason = fmt.Sprintf("completed after %s, the freshness bound is %s", v.Latency, freshness)
			v.Outcome = sla.TimedOut
			return v
		}
		v.OK, v.Outcome = true, sla.Completed
	}
	return v
}

// Registry publishes and resolves workflows and owns namespaces.
type Registry interface {
	Push(ctx context.Context, body []byte) (registry.Entry, registry.PushResult, error)
	Claim(ctx context.Context, ns, tenant string) error
}

// Sender sends work messages.
type Sender interface {
	Send(ctx context.Context, msgs ...queue.Message) error
}

// Chains reads what the verifier recorded of a case.
type Chains interface {
	Watermarks(ctx context.Context, caseIDs []string) (map[string]receipt.Watermark, error)
	Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error)
	Findings(ctx context.Context, caseID string) ([]receipt.Finding, error)
}

// Probes stores the probes waiting to be judged.
type Probes interface {
	Probes(ctx context.Context) ([]Probe, error)
	SetProbes(ctx context.Context, ps []Probe) error
}

// SLIs stores service-level buckets (store.SLIs).
type SLIs interface {
	PutBuckets(ctx context.Context, batch string, bs []*sla.Bucket) error
}

// Deps are the canary's collaborators.
type Deps struct {
	Registry Registry
	Sender   Sender
	Chains   Chains
	Probes   Probes
	SLIs     SLIs // the verdicts as the CanaryProbes service level
	Log      *slog.Logger
	Out      io.Writer // where EMF metrics go (default standard output)
	Now      func() time.Time
}

// Canary is the scheduled health canary.
type Canary struct {
	freshness time.Duration
	d         Deps
	wf        message.WorkflowRef
	published bool // the workflow is known to be published in this environment
}

// New returns the canary; freshness <= 0 means DefaultFreshness.
func New(freshness time.Duration, d Deps) (*Canary, error) {
	if d.Registry == nil || d.Sender == nil || d.Chains == nil || d.Probes == nil || d.SLIs == nil {
		return nil, errors.New("canary: registry, sender, chains, probes and SLIs are required")
	}
	if freshness <= 0 {
		freshness = DefaultFreshness
	}
	if d.Log == nil {
		d.Log = telemetry.NewLogger(nil, nil)
	}
	if d.Out == nil {
		d.Out = os.Stdout
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	wf, err := dsl.Load(Workflow)
	if err != nil {
		return nil, fmt.Errorf("canary: built-in workflow: %w", err)
	}
	doc := wf.Document
	return &Canary{freshness: freshness, d: d, wf: message.WorkflowRef{Namespace: doc.Namespace, Name: doc.Name, Version: doc.Version}}, nil
}

// ParseFreshness reads EnvFreshness's value ("" is the default).
func ParseFreshness(s string) (time.Duration, error) {
	if s == "" {
		return DefaultFreshness, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 2m", EnvFreshness, s)
	}
	return d, nil
}

// Result is what one run did.
type Result struct {
	Started  string    `json:"started"` // the case this run started
	Verdicts []Verdict `json:"verdicts,omitempty"`
}

// Handler is the scheduled function's entry point.
func (c *Canary) Handler(ctx context.Context, _ json.RawMessage) (Result, error) { return c.Run(ctx) }

// Run judges the waiting probes, publishes their verdicts and starts the
// next probe.
func (c *Canary) Run(ctx context.Context) (Result, error) {
	if err := c.publish(ctx); err != nil {
		return Result{}, err
	}
	now := c.d.Now().UTC()
	waiting, err := c.d.Probes.Probes(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("canary: %w", err)
	}
	verdicts, err := c.judge(ctx, waiting, now)
	if err != nil {
		return Result{}, fmt.Errorf("canary: %w", err)
	}
	var res Result
	var keep []Probe
	for _, v := range verdicts {
		if !v.Decided {
			keep = append(keep, v.Probe)
			continue
		}
		res.Verdicts = append(res.Verdicts, v)
		if v.OK {
			c.d.Log.InfoContext(ctx, "canary case healthy", "case", v.CaseID, "latencyMs", v.Latency.Milliseconds())
		} else {
			c.d.Log.WarnContext(ctx, "canary case unhealthy", "case", v.CaseID, "reason", v.Reason)
		}
	}
	// The verdicts are recorded before the probes are forgotten: a failed
	// write leaves them to be judged (and written, to the same keys) again.
	if err := c.record(ctx, res.Verdicts); err != nil {
		return Result{}, fmt.Errorf("canary: %w", err)
	}
	if err := c.emit(res.Verdicts); err != nil {
		return Result{}, fmt.Errorf("canary: metrics: %w", err)
	}
	next, err := c.start(ctx, now)
	if err != nil {
		// The verdicts are published; the waiting probes stay.
		if serr := c.d.Probes.SetProbes(ctx, keep); serr != nil {
			err = errors.Join(err, serr)
		}
		return res, fmt.Errorf("canary: %w", err)
	}
	res.Started = next.CaseID
	if !slices.ContainsFunc(keep, func(p Probe) bool { return p.CaseID == next.CaseID }) {
		keep = append(keep, next)
	}
	if err := c.d.Probes.SetProbes(ctx, keep); err != nil {
		return res, fmt.Errorf("canary: %w", err)
	}
	return res, nil
}

// publish claims the reserved namespace and publishes the built-in
// workflow, once per execution environment (both are idempotent).
func (c *Canary) publish(ctx context.Context) error {
	if c.published {
		return nil
	}
	if err := c.d.Registry.Claim(ctx, Namespace, Tenant); err != nil {
		return fmt.Errorf("canary: %w", err)
	}
	if _, _, err := c.d.Registry.Push(ctx, Workflow); err != nil {
		return fmt.Errorf("canary: publish the built-in workflow: %w", err)
	}
	c.published = true
	return nil
}

// judge reads what the verifier recorded of each probe and decides it.
func (c *Canary) judge(ctx context.Context, ps []Probe, now time.Time) ([]Verdict, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.CaseID
	}
	ws, err := c.d.Chains.Watermarks(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Verdict, 0, len(ps))
	for _, p := range ps {
		w := ws[p.CaseID]
		findings, err := c.d.Chains.Findings(ctx, p.CaseID)
		if err != nil {
			return nil, err
		}
		var terminal *receipt.Receipt
		if w.Ended > 0 && w.Seq >= w.Ended {
			rs, bad, err := c.d.Chains.Range(ctx, p.CaseID, w.Ended, w.Ended)
			if err != nil {
				return nil, err
			}
			findings = append(findings, bad...)
			if len(rs) == 1 {
				terminal = rs[0]
			}
		}
		out = append(out, Judge(p, w, terminal, findings, now, c.freshness))
	}
	return out, nil
}

// start sends the start message of this minute's probe: the same minute
// names the same case, so a second run in a minute starts nothing new.
func (c *Canary) start(ctx context.Context, now time.Time) (Probe, error) {
	key := "canary-" + now.Truncate(time.Minute).Format("20060102T1504Z")
	input, err := json.Marshal(map[string]string{"probe": key})
	if err != nil {
		return Probe{}, err
	}
	s := &message.Start{Kind: message.KindStart, Tenant: Tenant, Workflow: c.wf, Input: input, IdempotencyKey: key}
	p := Probe{CaseID: s.CaseID(), Submitted: now}
	if err := c.d.Sender.Send(ctx, queue.Message{Body: s, CaseID: p.CaseID}); err != nil {
		return Probe{}, fmt.Errorf("start probe %s: %w", key, err)
	}
	return p, nil
}

// record writes each decided probe as one observation of the CanaryProbes
// service level, in the minute it was submitted, as its own batch: a probe
// judged twice writes the same item again.
func (c *Canary) record(ctx context.Context, vs []Verdict) error {
	for _, v := range vs {
		b := sla.NewBucket(sla.CanaryProbes, v.Submitted)
		if v.Latency > 0 {
			if err := b.Observe(v.Outcome, v.Latency); err != nil {
				return err
			}
		} else {
			b.Counts.Record(v.Outcome)
		}
		if err := c.d.SLIs.PutBuckets(ctx, "probe-"+v.CaseID, []*sla.Bucket{b}); err != nil {
			return fmt.Errorf("record probe %s: %w", v.CaseID, err)
		}
	}
	return nil
}

// emit publishes one CanarySuccess datapoint per decided probe and the
// latency of the healthy ones.
func (c *Canary) emit(vs []Verdict) error {
	if len(vs) == 0 {
		return nil
	}
	m := telemetry.NewMetrics(telemetry.Namespace)
	if err := m.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: FunctionName}); err != nil {
		return err
	}
	for _, v := range vs {
		ok := 0.0
		if v.OK {
			ok = 1
			m.Add(telemetry.CanaryLatency, telemetry.Milliseconds, float64(v.Latency.Milliseconds()))
		}
		m.Add(telemetry.CanarySuccess, telemetry.None, ok)
	}
	return m.Flush(c.d.Out)
}
