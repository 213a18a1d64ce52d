// Package verifier checks every change of the receipts table as it arrives on
// the table's DynamoDB stream: each inserted receipt's hash and its link to
// the case's verified position, and any later change or deletion. Tamper
// findings are logged, counted, recorded in the state table and alerted
// once per case; the verified positions (watermarks) of a batch's cases are
// read and written once per batch.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/batch"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/telemetry"
)

// FunctionName is the verifier's short name, the value of its metrics'
// Function dimension.
const FunctionName = "verifier"

// ReceiptsExpired counts the allowed expiries of archived cases' receipt
// items (a time to live set, a deletion), never alerted.
const ReceiptsExpired = "ReceiptsExpired"

// Chains reads stored receipts.
type Chains interface {
	Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error)
}

// Cases keeps verified watermarks and alert markers.
type Cases interface {
	Watermarks(ctx context.Context, caseIDs []string) (map[string]receipt.Watermark, error)
	SetWatermarks(ctx context.Context, ws map[string]receipt.Watermark) error
	MarkAlerted(ctx context.Context, caseID string) (bool, error)
}

// Findings records findings idempotently.
type Findings interface {
	Put(ctx context.Context, f receipt.Finding) (bool, error)
	Alerted(ctx context.Context, caseID string) (bool, error)
}

// Archives tells whether a case is archived: its archive object was written,
// read back and verified (store.Archives).
type Archives interface {
	Archived(ctx context.Context, caseID string) (archive.Summary, bool, error)
}

// SLIs keeps service-level buckets.
type SLIs interface {
	PutBuckets(ctx context.Context, batch string, bs []*sla.Bucket) error
}

// Alerter sends operator alerts.
type Alerter interface {
	Alert(ctx context.Context, subject, body string) error
}

// Deps are the verifier's collaborators. Log, Metrics and Out default to a
// discarding logger, metrics with the dimension Function=verifier, and
// standard output.
type Deps struct {
	Chains   Chains
	Cases    Cases
	Findings Findings
	Alerts   Alerter
	SLIs     SLIs // optional: where the outcomes of the cases that end are folded
	// Archives tells retention from tampering: a deletion or expiry of an
	// archived case's item is allowed, of any other case a finding. Nil:
	// no case is archived.
	Archives Archives
	Log      *slog.Logger
	Metrics  *telemetry.Metrics
	Out      io.Writer // where metrics are flushed after every invocation
	Workers  int       // cases verified at once (default batch.DefaultWorkers)
}

// Verifier is the stream handler.
type Verifier struct{ d Deps }

// New returns a verifier.
func New(d Deps) (*Verifier, error) {
	if d.Chains == nil || d.Cases == nil || d.Findings == nil || d.Alerts == nil {
		return nil, fmt.Errorf("verifier: chains, cases, findings and alerts are required")
	}
	if d.Log == nil {
		d.Log = telemetry.NewLogger(nil, nil)
	}
	if d.Metrics == nil {
		d.Metrics = telemetry.NewMetrics(telemetry.Namespace)
		if err := d.Metrics.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: FunctionName}); err != nil {
			return nil, fmt.Errorf("verifier metrics: %w", err)
		}
	}
	if d.Out == nil {
		d.Out = os.Stdout
	}
	return &Verifier{d: d}, nil
}

// Handler verifies one stream batch and reports at most one record for
// retry: the first that met a DynamoDB or SNS error. Findings are results,
// not errors; the returned error is always nil. The batch costs one read of
// its cases' watermarks and one write of those that advanced (in requests
// of 100 and 25 cases).
func (v *Verifier) Handler(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	inv := &invocation{v: v, cases: map[string]*caseState{}}
	var ids []string
	for _, rec := range ev.Records {
		if id, _ := keyOf(rec); id != "" && inv.cases[id] == nil {
			inv.cases[id] = &caseState{}
			ids = append(ids, id)
		}
	}
	defer func() {
		if err := v.d.Metrics.Flush(v.d.Out); err != nil {
			v.d.Log.ErrorContext(ctx, "metrics flush", "error", err.Error())
		}
	}()
	var resp events.DynamoDBEventResponse
	if err := inv.load(ctx, ids); err != nil {
		v.d.Log.ErrorContext(ctx, "watermarks not read; batch reported for retry", "cases", len(ids), "error", err.Error())
		resp = retryFrom(ev.Records, 0)
	} else {
		resp = inv.process(ctx, ev)
	}
	if n := len(resp.BatchItemFailures); n > 0 {
		v.d.Metrics.Add(telemetry.BatchItemFailures, telemetry.Count, float64(n))
	}
	return resp, nil
}

// process verifies the batch's records, then writes the positions that
// advanced.
func (inv *invocation) process(ctx context.Context, ev events.DynamoDBEvent) events.DynamoDBEventResponse {
	d := inv.v.d
	resp := batch.ProcessDynamoDB(ctx, ev, batch.DynamoDBOptions{
		Key: batch.ByKeyAttribute(receipt.AttrCase),
		Options: batch.Options{
			Workers: d.Workers,
			OnFailure: func(ctx context.Context, id string, err error) {
				d.Log.ErrorContext(ctx, "stream record not verified; reported for retry", "sequenceNumber", id, "error", err.Error())
				var pe *batch.PanicError
				if errors.As(err, &pe) {
					d.Metrics.Add(telemetry.HandlerPanics, telemetry.Count, 1)
				}
			},
		},
	}, inv.record)
	if err := inv.save(ctx); err != nil {
		// Nothing of the batch is lost: it is verified again from the
		// first record of a case whose position was not written.
		d.Log.ErrorContext(ctx, "watermarks not written; batch reported for retry", "error", err.Error())
		resp = earliest(ev.Records, resp, inv.firstOfAdvanced(ev.Records))
	} else {
		inv.saveSLI(ctx)
	}
	return resp
}

// caseState is what one invocation knows of a case. Only the worker of the
// case's group touches it.
type caseState struct {
	stored  receipt.Watermark // the watermark as read
	cur     receipt.Watermark // the position verified so far
	known   map[int64]string  // verified hashes by seq, for redeliveries
	alerted bool              // the case's alert is known to be out
	failed  bool              // a record of the case is reported for retry
	// end is the terminal receipt verified in this invocation, if any;
	// tampered says a tamper finding of the case was reported.
	end      *receipt.Receipt
	tampered bool
}

// noteEnd keeps the terminal receipt among rs, the receipts the position
// just advanced over.
func (cs *caseState) noteEnd(rs ...*receipt.Receipt) {
	for _, r := range rs {
		if r != nil && r.Type.Terminal() && r.Seq == cs.cur.Ended {
			cs.end = r
		}
	}
}

type invocation struct {
	v     *Verifier
	cases map[string]*caseState // built before processing starts; read only after
}

// load reads the watermarks of the batch's cases.
func (inv *invocation) load(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ws, err := inv.v.d.Cases.Watermarks(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		w, ok := ws[id]
		if !ok {
			w = receipt.Watermark{Seq: -1}
		}
		cs := inv.cases[id]
		cs.stored, cs.cur, cs.known = w, w, map[int64]string{}
		if w.Seq >= 0 {
			cs.known[w.Seq] = w.Hash
		}
	}
	return nil
}

// advanced returns the cases whose verified position moved in this batch.
// A case with a record reported for retry keeps its stored position, so
// that the retry checks (and alerts) that record again instead of taking
// it for a redelivery.
func (inv *invocation) advanced() map[string]receipt.Watermark {
	out := map[string]receipt.Watermark{}
	for id, cs := range inv.cases {
		if !cs.failed && cs.cur.Seq > cs.stored.Seq {
			out[id] = cs.cur
		}
	}
	return out
}

// save writes the positions that advanced.
func (inv *invocation) save(ctx context.Context) error {
	ws := inv.advanced()
	if len(ws) == 0 {
		return nil
	}
	return inv.v.d.Cases.SetWatermarks(ctx, ws)
}

// firstOfAdvanced is the index of the first record of a case whose position
// advanced, or -1.
func (inv *invocation) firstOfAdvanced(recs []events.DynamoDBEventRecord) int {
	ws := inv.advanced()
	for i, rec := range recs {
		if id, _ := keyOf(rec); id != "" {
			if _, ok := ws[id]; ok {
				return i
			}
		}
	}
	return -1
}

// retryFrom reports the batch for retry from record i.
func retryFrom(recs []events.DynamoDBEventRecord, i int) events.DynamoDBEventResponse {
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	if i >= 0 && i < len(recs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: recs[i].Change.SequenceNumber})
	}
	return resp
}

// earliest keeps the one reported failure that comes first in the batch:
// the stream resumes from there.
func earliest(recs []events.DynamoDBEventRecord, resp events.DynamoDBEventResponse, i int) events.DynamoDBEventResponse {
	if i < 0 {
		return resp
	}
	for j := range recs[:i] {
		for _, f := range resp.BatchItemFailures {
			if f.ItemIdentifier == recs[j].Change.SequenceNumber {
				return resp
			}
		}
	}
	return retryFrom(recs, i)
}

func (inv *invocation) record(ctx context.Context, rec events.DynamoDBEventRecord) error {
	caseID, seq := keyOf(rec)
	cs := inv.cases[caseID]
	ctx = telemetry.WithSeq(telemetry.LogCase(ctx, tenantOf(rec), caseID), seq)
	var err error
	if rec.EventName == string(events.DynamoDBOperationTypeInsert) && cs != nil {
		err = inv.insert(ctx, caseID, cs, rec)
	} else {
		err = inv.change(ctx, caseID, cs, rec)
	}
	if err != nil && cs != nil {
		cs.failed = true
	}
	return err
}

// change reports a MODIFY or REMOVE record; a deletion or expiry is
// judged by whether the case is archived.
func (inv *invocation) change(ctx context.Context, caseID string, cs *caseState, rec events.DynamoDBEventRecord) error {
	fs := receipt.VerifyStreamRecord(rec)
	if receipt.RetentionKinds(fs) {
		archived := false
		if a := inv.v.d.Archives; a != nil && caseID != "" {
			var err error
			if _, archived, err = a.Archived(ctx, caseID); err != nil {
				return err
			}
		}
		fs = receipt.Retention(fs, archived)
	}
	return inv.report(ctx, cs, fs)
}

// insert verifies the receipts of an inserted item (a segment holds
// several, in seq order) against the case's verified position.
func (inv *invocation) insert(ctx context.Context, caseID string, cs *caseState, rec events.DynamoDBEventRecord) error {
	d := inv.v.d
	rs, fs := Inserted(rec)
	if len(rs) == 0 {
		return inv.report(ctx, cs, fs)
	}
	d.Metrics.Add(telemetry.ReceiptsVerified, telemetry.Count, float64(len(rs)))
	own := slices.Clone(fs) // each receipt's own checks, which Advance repeats
	for _, r := range rs {
		more, err := inv.step(ctx, caseID, cs, r, own)
		if err != nil {
			return err
		}
		fs = append(fs, more...)
	}
	return inv.report(ctx, cs, fs)
}

// step verifies one inserted receipt and returns its findings beyond own.
func (inv *invocation) step(ctx context.Context, caseID string, cs *caseState, r *receipt.Receipt, own []receipt.Finding) ([]receipt.Finding, error) {
	d := inv.v.d
	var fs []receipt.Finding
	switch Classify(cs.cur, r.Seq) {
	case Redelivery:
		h, ok := cs.known[r.Seq]
		if !ok {
			// Read from the receipt before this one up to the stored
			// watermark: the hashes verified above it in this batch are
			// known already.
			stored, _, err := d.Chains.Range(ctx, caseID, r.Seq-1, cs.stored.Seq)
			if err != nil {
				return nil, err
			}
			for seq, hash := range VerifiedHashes(cs.stored, stored) {
				if _, seen := cs.known[seq]; !seen {
					cs.known[seq] = hash
				}
			}
			h, ok = cs.known[r.Seq]
		}
		fs = append(fs, Redelivered(r, h, ok)...)
	case Link:
		var link []receipt.Finding
		cs.cur, link = Advance(cs.cur, nil, r)
		cs.noteEnd(r)
		fs = append(fs, withoutSelf(link, own)...)
		cs.known[r.Seq] = r.Hash
	case CatchUp:
		missing, bad, err := d.Chains.Range(ctx, caseID, cs.cur.Seq+1, r.Seq-1)
		if err != nil {
			return nil, err
		}
		d.Log.InfoContext(ctx, "verifier catching up", "from", cs.cur.Seq+1, "to", r.Seq-1, "read", len(missing))
		d.Metrics.Add(telemetry.ReceiptsVerified, telemetry.Count, float64(len(missing)))
		var link []receipt.Finding
		cs.cur, link = Advance(cs.cur, missing, r)
		cs.noteEnd(append(missing, r)...)
		fs = append(fs, bad...)
		fs = append(fs, withoutSelf(link, append(slices.Clone(own), bad...))...)
		for _, m := range missing {
			cs.known[m.Seq] = m.Hash
		}
		cs.known[r.Seq] = r.Hash
	}
	return fs, nil
}

// withoutSelf drops from fs the findings already present in have (the
// receipt's own checks, which Advance repeats).
func withoutSelf(fs, have []receipt.Finding) []receipt.Finding {
	out := fs[:0:0]
next:
	for _, f := range fs {
		for _, h := range have {
			if f == h {
				continue next
			}
		}
		out = append(out, f)
	}
	return out
}

// report handles the findings of one record: TTL expiries are logged and
// counted; every tamper finding is recorded, and when new, logged and
// counted; the case is alerted once.
func (inv *invocation) report(ctx context.Context, cs *caseState, fs []receipt.Finding) error {
	d := inv.v.d
	for _, f := range fs {
		fctx := telemetry.WithSeq(telemetry.LogCase(ctx, f.Tenant, f.CaseID), f.Seq)
		if !f.Kind.Tamper() {
			d.Log.InfoContext(fctx, "receipt item expired", "kind", string(f.Kind), "expected", f.Expected)
			d.Metrics.Add(ReceiptsExpired, telemetry.Count, 1)
			continue
		}
		if cs != nil {
			cs.tampered = true
		}
		created := true
		if f.CaseID != "" {
			var err error
			if created, err = d.Findings.Put(ctx, f); err != nil {
				return err
			}
		}
		if created {
			d.Log.ErrorContext(fctx, "integrity finding", "kind", string(f.Kind), "expected", f.Expected, "actual", f.Actual, "detail", f.Detail)
			d.Metrics.Add(telemetry.IntegrityFindings, telemetry.Count, 1)
		}
		if f.CaseID == "" || (cs != nil && cs.alerted) {
			continue
		}
		if err := inv.alert(fctx, f); err != nil {
			return err
		}
		if cs != nil {
			cs.alerted = true
		}
	}
	return nil
}

// alert sends the case's alert unless it already went out. The marker is
// written after the alert is published, so an SNS failure retries the
// alert rather than losing it.
func (inv *invocation) alert(ctx context.Context, f receipt.Finding) error {
	d := inv.v.d
	done, err := d.Findings.Alerted(ctx, f.CaseID)
	if err != nil || done {
		return err
	}
	subject, body := AlertMessage(f)
	if err := d.Alerts.Alert(ctx, subject, body); err != nil {
		return err
	}
	_, err = d.Cases.MarkAlerted(ctx, f.CaseID)
	return err
}

// AlertMessage renders the alert of a case's first finding.
func AlertMessage(f receipt.Finding) (subject, body string) {
	subject = fmt.Sprintf("KNHK integrity finding: %s in case %s", f.Kind, f.CaseID)
	var b strings.Builder
	fmt.Fprintf(&b, "The receipts verifier found a tampered receipt chain.\n\n")
	fmt.Fprintf(&b, "Tenant:   %s\nCase:     %s\nSeq:      %d\nKind:     %s\n", f.Tenant, f.CaseID, f.Seq, f.Kind)
	if f.Expected != "" || f.Actual != "" {
		fmt.Fprintf(&b, "Expected: %s\nActual:   %s\n", f.Expected, f.Actual)
	}
	if f.Detail != "" {
		fmt.Fprintf(&b, "Detail:   %s\n", f.Detail)
	}
	fmt.Fprintf(&b, "\nFurther findings of this case are recorded without another alert.\nInspect the chain: knhk verify --case %s\n", f.CaseID)
	return subject, b.String()
}

func tenantOf(rec events.DynamoDBEventRecord) string {
	if t := strAttr(rec.Change.NewImage, receipt.AttrTenant); t != "" {
		return t
	}
	return strAttr(rec.Change.OldImage, receipt.AttrTenant)
}
