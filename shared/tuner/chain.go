package tuner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/jcs"
	"github.com/knhk/knhk/shared/store"
)

// The system chain: every change the loop applies and every rollback is a
// receipt of one case under a reserved tenant, appended like any case's
// and verified by the verifier like any other.
const (
	Tenant    = "knhk-system"
	Namespace = "knhk-system"
	// CaseID is the system chain's case.
	CaseID = "knhk-tuner-changes"
	// chainWorkflow and chainVersion name what the genesis pins.
	chainWorkflow = "tuner"
	chainVersion  = "1"
)

// changeTask is the receipt task of a change of one setting kind.
func changeTask(k learn.SettingKind) string { return "/settings/" + string(k) }

// descriptorHash is the digest the genesis pins: of the chain's format, as
// there is no published workflow behind it.
func descriptorHash() string {
	h := sha256.Sum256([]byte("knhk system chain: tuner changes v1"))
	return hex.EncodeToString(h[:])
}

// Appender is the case store's conditional append (store.Receipts).
type Appender interface {
	Append(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, ev history.Event, opts ...receipt.Option) (store.Appended, error)
	Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error)
	Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error)
}

// Chain is the system chain of changes. It keeps what it has read and
// verified, so that a warm execution environment reads only the receipts
// appended since (the verifier checks the whole chain from the stream).
type Chain struct {
	Store   Appender
	tail    *receipt.Receipt
	mark    receipt.Watermark
	changes []learn.Change
}

// ErrChainFindings means the system chain does not verify; the loop does
// not act on knowledge it cannot trust.
var ErrChainFindings = errors.New("tuner: the system chain does not verify")

// Changes reads and verifies the chain (the whole chain the first time,
// then what was appended since) and returns its changes in order.
func (c *Chain) Changes(ctx context.Context) ([]learn.Change, error) {
	var rs []*receipt.Receipt
	var bad []receipt.Finding
	var err error
	if c.tail == nil {
		rs, bad, err = c.Store.Chain(ctx, CaseID)
		c.mark, c.changes = receipt.Watermark{Seq: -1}, nil
	} else {
		rs, bad, err = c.Store.Range(ctx, CaseID, c.tail.Seq+1, jcs.MaxSafeInt)
	}
	if err != nil {
		return nil, fmt.Errorf("tuner: %w", err)
	}
	if err := c.advance(rs, bad); err != nil {
		c.tail = nil // read it whole next time
		return nil, err
	}
	return slices.Clone(c.changes), nil
}

// advance verifies rs as the continuation of what was read and decodes
// their changes.
func (c *Chain) advance(rs []*receipt.Receipt, bad []receipt.Finding) error {
	var fs []receipt.Finding
	if c.mark.Seq < 0 {
		fs = receipt.VerifyChain(rs)
	} else {
		_, fs = receipt.VerifyFrom(c.mark, rs)
	}
	if fs = append(bad, fs...); len(fs) > 0 {
		return fmt.Errorf("%w: %s", ErrChainFindings, fs[0])
	}
	chs, err := ChangesOf(rs)
	if err != nil {
		return err
	}
	c.changes = append(c.changes, chs...)
	if len(rs) > 0 {
		c.tail = rs[len(rs)-1]
		c.mark = receipt.Watermark{Seq: c.tail.Seq, Hash: c.tail.Hash}
	}
	return nil
}

// ChangesOf decodes the changes a verified system chain records.
func ChangesOf(rs []*receipt.Receipt) ([]learn.Change, error) {
	var out []learn.Change
	for _, r := range rs {
		if r.Seq == 0 {
			continue
		}
		if len(r.Data) == 0 {
			return nil, fmt.Errorf("tuner: system chain seq %d records no change (its payload is detached)", r.Seq)
		}
		var ch learn.Change
		if err := json.Unmarshal(r.Data, &ch); err != nil {
			return nil, fmt.Errorf("tuner: system chain seq %d: %w", r.Seq, err)
		}
		out = append(out, ch)
	}
	return out, nil
}

// Record appends ch after the chain's tail, starting the chain with its
// genesis at ch.At when it is empty.
func (c *Chain) Record(ctx context.Context, ch learn.Change) (*receipt.Receipt, error) {
	if c.tail == nil {
		g := history.Event{Type: history.CaseStarted, Started: ch.At,
			Genesis: &history.Genesis{Tenant: Tenant, Namespace: Namespace, Workflow: chainWorkflow, Version: chainVersion, DescriptorHash: descriptorHash()}}
		a, err := c.Store.Append(ctx, nil, Tenant, CaseID, g)
		if err != nil && !errors.Is(err, store.ErrCaseExists) {
			return nil, fmt.Errorf("tuner: start the system chain: %w", err)
		}
		if err != nil {
			// Another run started it: continue after what it wrote.
			if _, err := c.Changes(ctx); err != nil {
				return nil, err
			}
		} else {
			c.tail, c.mark = a.Receipt, receipt.Watermark{Seq: a.Receipt.Seq, Hash: a.Receipt.Hash}
		}
	}
	data, err := json.Marshal(ch)
	if err != nil {
		return nil, fmt.Errorf("tuner: encode change: %w", err)
	}
	at := ch.At.UTC().Truncate(time.Millisecond)
	ev := history.Event{Type: history.EffectCompleted, Task: changeTask(ch.Setting.Kind), Key: ch.ID, Data: data, Started: at, Ended: at}
	a, err := c.Store.Append(ctx, c.tail, Tenant, CaseID, ev)
	if err != nil {
		c.tail = nil // read it whole next time
		return nil, fmt.Errorf("tuner: record change %s: %w", ch.ID, err)
	}
	if a.Receipt.Seq != c.tail.Seq+1 {
		// Appended after receipts this copy has not read: read it whole
		// next time.
		c.tail = nil
		return a.Receipt, nil
	}
	c.tail, c.mark = a.Receipt, receipt.Watermark{Seq: a.Receipt.Seq, Hash: a.Receipt.Hash}
	c.changes = append(c.changes, ch)
	return a.Receipt, nil
}
