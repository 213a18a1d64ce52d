// Package checkpointer signs checkpoints that only ever extend verified
// history. A run takes the checkpointer's lease, loads and verifies the
// whole checkpoint log, reads the cases whose verified position (the
// verifier's watermark) moved since the last checkpoint, and checks each:
// the receipt at the previously signed seq must still carry the signed hash,
// the chain from there to the new head must verify, the head must be the one
// the verifier verified, and the case must have no recorded finding and no
// quarantine. Heads that pass become the leaves of the next checkpoint,
// which names its predecessor and carries the consistency proof from the
// previous tree. A head that fails is never signed: it becomes a
// CheckpointRefused finding, a metric and an alert.
package checkpointer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// FunctionName is the checkpointer's short name, the value of its metrics'
// Function dimension.
const FunctionName = "checkpointer"

// Log is the stored checkpoint log.
type Log interface {
	Load(ctx context.Context) (store.StoredLog, error)
	Commit(ctx context.Context, e checkpoint.Entry, signerKey, cursor string) error
}

// Leases exclude overlapping runs (store.Leases over the checkpoints
// table, job FunctionName).
type Leases interface {
	Acquire(ctx context.Context, job, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, job, owner string) error
}

// Cases gives the verifier's watermarks and the quarantine records.
type Cases interface {
	ChangedWatermarks(ctx context.Context, since time.Time) ([]store.CaseWatermark, error)
	Quarantined(ctx context.Context, caseID string) ([]receipt.Finding, error)
}

// Chains reads stored receipts.
type Chains interface {
	Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error)
}

// Findings records and reads integrity findings.
type Findings interface {
	Put(ctx context.Context, f receipt.Finding) (bool, error)
	Case(ctx context.Context, caseID string) ([]receipt.Finding, error)
}

// Alerter sends operator alerts.
type Alerter interface {
	Alert(ctx context.Context, subject, body string) error
}

// Deps are the checkpointer's collaborators. Logger, Metrics, Out and Now
// default to a discarding logger, metrics with Function=checkpointer,
// standard output and time.Now.
type Deps struct {
	Log      Log
	Leases   Leases
	Cases    Cases
	Chains   Chains
	Findings Findings
	Alerts   Alerter
	Signer   checkpoint.Signer
	Logger   *slog.Logger
	Metrics  *telemetry.Metrics
	Out      io.Writer
	Now      func() time.Time
	// Lease is how long a run may hold the lease (default 10 minutes, more
	// than a run's timeout); Lookback is how far before the last cursor
	// watermarks are read again, for the index's eventual consistency
	// (default 2 minutes).
	Lease, Lookback time.Duration
}

// Checkpointer runs checkpoints.
type Checkpointer struct{ d Deps }

// New returns a checkpointer.
func New(d Deps) (*Checkpointer, error) {
	if d.Log == nil || d.Leases == nil || d.Cases == nil || d.Chains == nil || d.Findings == nil || d.Alerts == nil || d.Signer == nil {
		return nil, errors.New("checkpointer: log, leases, cases, chains, findings, alerts and signer are required")
	}
	if d.Logger == nil {
		d.Logger = telemetry.NewLogger(io.Discard, slog.LevelInfo)
	}
	if d.Metrics == nil {
		d.Metrics = telemetry.NewMetrics(telemetry.Namespace)
		if err := d.Metrics.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: FunctionName}); err != nil {
			return nil, err
		}
	}
	if d.Out == nil {
		d.Out = os.Stdout
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Lease <= 0 {
		d.Lease = 10 * time.Minute
	}
	if d.Lookback <= 0 {
		d.Lookback = 2 * time.Minute
	}
	return &Checkpointer{d: d}, nil
}

// Result is what one run did.
type Result struct {
	// Busy: another run held the lease; nothing was done.
	Busy bool `json:"busy,omitempty"`
	// Checkpoint is the signed tree head stored by this run, if any.
	Checkpoint *checkpoint.TreeHead `json:"checkpoint,omitempty"`
	Signed     int                  `json:"signed"`
	Unchanged  int                  `json:"unchanged"`
	Deferred   int                  `json:"deferred,omitempty"` // heads left for the next run (MaxLeaves)
	Refused    []receipt.Finding    `json:"refused,omitempty"`
}

// ErrLogInvalid is returned when the stored checkpoint log does not verify.
var ErrLogInvalid = errors.New("stored checkpoint log does not verify; nothing signed")

// Handler is the scheduled function's entry point.
func (c *Checkpointer) Handler(ctx context.Context, _ any) (Result, error) { return c.Run(ctx) }

// Run makes one checkpoint of every head that advanced and passes the
// checks. It returns an error only when it could not do its work (AWS
// errors, a broken log); refused heads are results.
func (c *Checkpointer) Run(ctx context.Context) (res Result, err error) {
	d := c.d
	defer func() {
		if ferr := d.Metrics.Flush(d.Out); ferr != nil {
			d.Logger.ErrorContext(ctx, "metrics flush", "error", ferr.Error())
		}
	}()
	owner := newOwner()
	ok, err := d.Leases.Acquire(ctx, FunctionName, owner, d.Lease)
	if err != nil {
		return res, err
	}
	if !ok {
		d.Logger.InfoContext(ctx, "checkpointer lease held by another run; skipped")
		return Result{Busy: true}, nil
	}
	defer func() {
		if rerr := d.Leases.Release(context.WithoutCancel(ctx), FunctionName, owner); rerr != nil {
			d.Logger.ErrorContext(ctx, "release lease", "error", rerr.Error())
		}
	}()
	stored, err := d.Log.Load(ctx)
	if err != nil {
		return res, err
	}
	pub, err := d.Signer.PublicKey(ctx)
	if err != nil {
		return res, fmt.Errorf("checkpoint key: %w", err)
	}
	lg, err := checkpoint.VerifyLog(stored.Entries, pub)
	if err != nil {
		d.Metrics.Add(telemetry.CheckpointLogInvalid, telemetry.Count, 1)
		d.Logger.ErrorContext(ctx, "checkpoint log does not verify", "error", err.Error())
		if aerr := d.Alerts.Alert(ctx, "KNHK checkpoint log does not verify", err.Error()+"\n\nNothing was signed. Inspect: knhk checkpoint verify\n"); aerr != nil {
			d.Logger.ErrorContext(ctx, "alert", "error", aerr.Error())
		}
		return res, fmt.Errorf("%w: %w", ErrLogInvalid, err)
	}
	start := d.Now().UTC()
	var since time.Time
	if stored.Cursor != "" {
		if t, perr := time.Parse(store.WatermarkTimeLayout, stored.Cursor); perr == nil {
			since = t.Add(-d.Lookback)
		}
	}
	ws, err := d.Cases.ChangedWatermarks(ctx, since)
	if err != nil {
		return res, err
	}
	latest := map[string]receipt.Watermark{}
	for _, w := range ws {
		if cur, ok := latest[w.CaseID]; !ok || w.Watermark.Seq > cur.Seq {
			latest[w.CaseID] = w.Watermark
		}
	}
	var heads []merkle.Head
	for _, id := range slices.Sorted(maps.Keys(latest)) {
		h, changed, refusal, err := c.check(ctx, lg, id, latest[id])
		if err != nil {
			return res, err
		}
		switch {
		case refusal != nil:
			if err := c.refuse(ctx, refusal); err != nil {
				return res, err
			}
			res.Refused = append(res.Refused, refusal.Finding)
		case !changed:
			res.Unchanged++
		default:
			heads = append(heads, h)
		}
	}
	cursor := start.Format(store.WatermarkTimeLayout)
	if len(heads) > store.MaxLeaves {
		res.Deferred = len(heads) - store.MaxLeaves
		heads = heads[:store.MaxLeaves]
		cursor = stored.Cursor // read the rest again next time
	}
	if len(heads) == 0 {
		d.Logger.InfoContext(ctx, "nothing to checkpoint", "unchanged", res.Unchanged, "refused", len(res.Refused))
		return res, nil
	}
	e, signerKey, err := lg.Append(ctx, heads, start.Format(time.RFC3339Nano), d.Now(), d.Signer)
	if err != nil {
		return res, err
	}
	if err := d.Log.Commit(ctx, e, signerKey, cursor); err != nil {
		return res, err
	}
	res.Checkpoint, res.Signed = &e.Head, len(heads)
	d.Metrics.Add(telemetry.CheckpointsSigned, telemetry.Count, 1)
	d.Metrics.Add(telemetry.CheckpointHeadsSigned, telemetry.Count, float64(len(heads)))
	d.Logger.InfoContext(ctx, "checkpoint signed", "checkpoint", e.Head.Seq, "size", e.Head.Size, "heads", len(heads), "refused", len(res.Refused))
	return res, nil
}

// refusal is why a head is not signed; known is set when the case already
// had a recorded finding (and so its alert).
type refusal struct {
	receipt.Finding
	known bool
}

// check decides one case: its new head, whether it moved, or why it must
// not be signed.
func (c *Checkpointer) check(ctx context.Context, lg *checkpoint.Log, caseID string, w receipt.Watermark) (merkle.Head, bool, *refusal, error) {
	d := c.d
	prev, had := lg.Last(caseID)
	known, tenant := false, prev.Tenant
	refuse := func(seq int64, expected, actual, format string, a ...any) (merkle.Head, bool, *refusal, error) {
		return merkle.Head{}, false, &refusal{known: known, Finding: receipt.Finding{Kind: receipt.CheckpointRefused, Tenant: tenant, CaseID: caseID, Seq: seq,
			Expected: expected, Actual: actual, Detail: fmt.Sprintf(format, a...)}}, nil
	}
	if had && w.Seq == prev.Seq && w.Hash == prev.Hash {
		return prev, false, nil, nil
	}
	recorded, err := d.Findings.Case(ctx, caseID)
	if err != nil {
		return merkle.Head{}, false, nil, err
	}
	known = len(recorded) > 0
	if had && w.Seq <= prev.Seq {
		return refuse(w.Seq, prev.Hash, w.Hash, "the verified position (seq %d) does not extend the signed head (seq %d)", w.Seq, prev.Seq)
	}
	from := int64(0)
	if had {
		from = prev.Seq
	}
	rs, bad, err := d.Chains.Range(ctx, caseID, from, w.Seq)
	if err != nil {
		return merkle.Head{}, false, nil, err
	}
	if !had && len(rs) > 0 {
		tenant = rs[0].Tenant
	}
	if len(bad) > 0 {
		return refuse(bad[0].Seq, "", "", "a stored receipt does not decode: %s", bad[0].Detail)
	}
	var fs []receipt.Finding
	if had {
		if len(rs) == 0 || rs[0].Seq != prev.Seq || rs[0].Hash != prev.Hash {
			actual := ""
			if len(rs) > 0 && rs[0].Seq == prev.Seq {
				actual = rs[0].Hash
			}
			return refuse(prev.Seq, prev.Hash, actual, "the receipt at the signed seq %d no longer has the signed hash", prev.Seq)
		}
		_, fs = receipt.VerifyFrom(receipt.Watermark{Seq: prev.Seq, Hash: prev.Hash}, rs[1:])
	} else {
		fs = receipt.VerifyChain(rs)
	}
	if len(fs) > 0 {
		return refuse(fs[0].Seq, fs[0].Expected, fs[0].Actual, "the chain from the signed head does not verify: %s", fs[0])
	}
	if len(rs) == 0 || rs[len(rs)-1].Seq != w.Seq || rs[len(rs)-1].Hash != w.Hash {
		actual := ""
		if len(rs) > 0 {
			actual = fmt.Sprintf("seq %d %s", rs[len(rs)-1].Seq, rs[len(rs)-1].Hash)
		}
		return refuse(w.Seq, w.Hash, actual, "the chain does not end at the verified head seq %d", w.Seq)
	}
	if rs[0].Tenant != tenant {
		return refuse(w.Seq, tenant, rs[0].Tenant, "the chain's tenant differs from the signed one")
	}
	if len(recorded) > 0 {
		known = true
		return refuse(w.Seq, "", "", "the case has an open finding: %s", recorded[0])
	}
	q, err := d.Cases.Quarantined(ctx, caseID)
	if err != nil {
		return merkle.Head{}, false, nil, err
	}
	if len(q) > 0 {
		return refuse(w.Seq, "", "", "the case is quarantined: %s", q[0])
	}
	return merkle.Head{Tenant: tenant, CaseID: caseID, Seq: w.Seq, Hash: w.Hash}, true, nil, nil
}

// refuse records a refusal: a finding (once), a metric, a log line and, for
// a new finding of a case without earlier ones, an alert.
func (c *Checkpointer) refuse(ctx context.Context, r *refusal) error {
	d := c.d
	f := r.Finding
	created, err := d.Findings.Put(ctx, f)
	if err != nil {
		return err
	}
	d.Metrics.Add(telemetry.CheckpointHeadsRefused, telemetry.Count, 1)
	fctx := telemetry.WithSeq(telemetry.LogCase(ctx, f.Tenant, f.CaseID), f.Seq)
	d.Logger.ErrorContext(fctx, "checkpoint refused", "kind", string(f.Kind), "expected", f.Expected, "actual", f.Actual, "detail", f.Detail)
	if !created || r.known {
		return nil
	}
	subject, body := AlertMessage(f)
	return d.Alerts.Alert(ctx, subject, body)
}

// AlertMessage renders the alert of a refused head.
func AlertMessage(f receipt.Finding) (subject, body string) {
	subject = fmt.Sprintf("KNHK checkpoint refused: case %s", f.CaseID)
	var b strings.Builder
	fmt.Fprintf(&b, "The checkpointer refused to sign a chain head: the chain no longer extends what was signed or verified.\n\n")
	fmt.Fprintf(&b, "Tenant:   %s\nCase:     %s\nSeq:      %d\n", f.Tenant, f.CaseID, f.Seq)
	if f.Expected != "" || f.Actual != "" {
		fmt.Fprintf(&b, "Expected: %s\nActual:   %s\n", f.Expected, f.Actual)
	}
	fmt.Fprintf(&b, "Detail:   %s\n\nInspect the chain: knhk verify --case %s\n", f.Detail, f.CaseID)
	return subject, b.String()
}

func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
