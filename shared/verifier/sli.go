package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/telemetry"
)

// Ended is a case whose terminal receipt the verifier verified: the data
// of one service-level observation.
type Ended struct {
	CaseID   string
	Workflow string    // from the genesis receipt
	Started  time.Time // the genesis receipt's time (zero if not known)
	Outcome  sla.Outcome
	At       time.Time // the terminal receipt's time
}

// Buckets folds ended cases into per workflow-minute buckets (the minute of
// the terminal receipt), in minute then workflow order. A case whose
// genesis time is unknown is counted without a latency.
func Buckets(es []Ended) []*sla.Bucket {
	type key struct {
		wf string
		m  time.Time
	}
	idx := map[key]*sla.Bucket{}
	var out []*sla.Bucket
	for _, e := range es {
		k := key{e.Workflow, e.At.UTC().Truncate(time.Minute)}
		b := idx[k]
		if b == nil {
			b = sla.NewBucket(e.Workflow, e.At)
			idx[k] = b
			out = append(out, b)
		}
		if e.Started.IsZero() || e.At.Before(e.Started) || b.Observe(e.Outcome, e.At.Sub(e.Started)) != nil {
			b.Counts.Record(e.Outcome)
		}
	}
	slices.SortFunc(out, func(a, b *sla.Bucket) int {
		if c := a.Minute.Compare(b.Minute); c != 0 {
			return c
		}
		return strings.Compare(a.Workflow, b.Workflow)
	})
	return out
}

// BatchName names a batch by the cases it folds, so that a retried batch
// that folds the same cases overwrites its own items.
func BatchName(es []Ended) string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.CaseID
	}
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ended lists the cases that ended in this invocation: verified up to
// their terminal receipt now, not before, with no record left for retry
// and no tamper finding (a chain under suspicion is not service data).
func (inv *invocation) ended() []Ended {
	var out []Ended
	for id, cs := range inv.cases {
		if cs.end == nil || cs.failed || cs.tampered || cs.stored.Ended != 0 || cs.cur.Workflow == "" {
			continue
		}
		o, ok := sla.OutcomeOf(cs.end.Type, cs.end.Error)
		if !ok {
			continue
		}
		out = append(out, Ended{CaseID: id, Workflow: sla.WorkflowKey(cs.cur.Namespace, cs.cur.Workflow), Started: cs.cur.Started, Outcome: o, At: cs.end.Started})
	}
	return out
}

// saveSLI writes the batch's service-level buckets, once, after the
// watermarks: a case is folded when its position first passes its end, so
// a retried batch does not count it again. A failed write loses those
// observations (logged and counted), never a finding or a position.
func (inv *invocation) saveSLI(ctx context.Context) {
	d := inv.v.d
	es := inv.ended()
	if d.SLIs == nil || len(es) == 0 {
		return
	}
	if err := d.SLIs.PutBuckets(ctx, BatchName(es), Buckets(es)); err != nil {
		d.Log.ErrorContext(ctx, "service-level buckets not written", "cases", len(es), "error", err.Error())
		d.Metrics.Add(telemetry.SLIWriteErrors, telemetry.Count, 1)
		return
	}
	d.Metrics.Add(telemetry.SLICasesRecorded, telemetry.Count, float64(len(es)))
}
