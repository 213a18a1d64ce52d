// Package restorer rebuilds the receipts of an empty stack from the archive
// bucket: it lists the bucket itself (not the archive index, which lives in
// the state table and may be lost with it), checks every object with the
// checkpoint public key and, when given, the verified checkpoint log
// (shared/restore.Check) before writing anything of it, then writes the
// case's detached payloads and its segment items with conditional writes,
// so that a re-run restores nothing twice and never overwrites a
// different chain. Cases are restored by a bounded number of workers.
package restorer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/restore"
	"github.com/knhk/knhk/shared/store"
)

// Source is the archive bucket (objects.Versioned).
type Source interface {
	List(ctx context.Context, prefix string) ([]string, error)
	Get(ctx context.Context, key, versionID string, limit int64) ([]byte, error)
}

// Target is the receipts table restored into (store.Receipts).
type Target interface {
	Tail(ctx context.Context, caseID string) (*receipt.Receipt, error)
	PutSegment(ctx context.Context, rs []*receipt.Receipt) (bool, error)
}

// Blobs receives the detached payloads (objects.Blobs: the payloads bucket).
type Blobs interface {
	PutBlob(ctx context.Context, b receipt.Blob) error
}

// Deps are the restorer's collaborators. Log is optional: without it each
// object is checked against the signed tree head it carries alone.
type Deps struct {
	Source Source
	Target Target
	Blobs  Blobs
	Key    crypto.PublicKey
	Log    *checkpoint.Log
	// Workers bounds the cases restored at once (default 8).
	Workers int
	// Now defaults to time.Now.
	Now func() time.Time
}

// Run restores every archive object under archive.Prefix. It returns an
// error only when it could not do its work (listing, reading, writing);
// refused objects and conflicting cases are in the summary.
func Run(ctx context.Context, d Deps) (restore.Summary, []restore.Outcome, error) {
	if d.Source == nil || d.Target == nil || d.Blobs == nil || d.Key == nil {
		return restore.Summary{}, nil, errors.New("restorer: source, target, blobs and key are required")
	}
	if d.Workers <= 0 {
		d.Workers = 8
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	start := d.Now()
	keys, err := d.Source.List(ctx, archive.Prefix)
	if err != nil {
		return restore.Summary{}, nil, err
	}
	outs := make([]restore.Outcome, len(keys))
	errs := make([]error, len(keys))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(d.Workers, max(len(keys), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				outs[i], errs[i] = one(ctx, d, keys[i])
				if errs[i] != nil {
					cancel()
				}
			}
		}()
	}
	fed := 0
feed:
	for i := range keys {
		select {
		case work <- i:
			fed++
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	sum := restore.Summary{Listed: len(keys)}
	// The first failure is the cause; the others were cancelled by it.
	var first error
	for i, err := range errs[:fed] {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = fmt.Errorf("restore %s: %w", keys[i], err)
		}
	}
	if first == nil && fed < len(keys) {
		first = fmt.Errorf("restore stopped after %d of %d objects: %w", fed, len(keys), ctx.Err())
	}
	for _, o := range outs[:fed] {
		if o.Status != "" {
			sum.Add(o)
		}
	}
	sum.Elapsed = d.Now().Sub(start)
	if first != nil {
		return sum, outs[:fed], first
	}
	return sum, outs, nil
}

// one restores one archive object: read, check, decide, then write the
// payloads and the segment items in seq order.
func one(ctx context.Context, d Deps, key string) (restore.Outcome, error) {
	o := restore.Outcome{Key: key}
	if err := ctx.Err(); err != nil {
		return o, err
	}
	data, err := d.Source.Get(ctx, key, "", archive.MaxSize)
	if err != nil {
		return o, err
	}
	a, err := restore.Check(key, data, d.Key, d.Log)
	if err != nil {
		o.Status, o.Error = restore.Refused, err.Error()
		return o, nil
	}
	head := a.Receipts[len(a.Receipts)-1]
	o.Tenant, o.CaseID, o.HeadSeq, o.HeadHash = a.Tenant, a.CaseID, head.Seq, head.Hash
	segs, err := restore.Segments(a.Receipts)
	if err != nil {
		o.Status, o.Error = restore.Refused, err.Error()
		return o, nil
	}
	tail, err := d.Target.Tail(ctx, a.CaseID)
	if err != nil {
		return o, err
	}
	switch restore.Decide(tail, a.Receipts) {
	case restore.Skip:
		o.Status = restore.Skipped
		return o, nil
	case restore.Conflict:
		o.Status, o.Error = restore.Conflicted, fmt.Sprintf("the target holds case %s up to seq %d %s, the archive's head is seq %d %s", a.CaseID, tail.Seq, tail.Hash, head.Seq, head.Hash)
		return o, nil
	}
	for _, p := range a.Payloads {
		if err := d.Blobs.PutBlob(ctx, receipt.Blob{Hash: p.Hash, Bytes: p.Data}); err != nil {
			return o, err
		}
		o.Payloads++
	}
	for _, seg := range segs {
		wrote, err := d.Target.PutSegment(ctx, seg)
		if errors.Is(err, store.ErrConflict) {
			o.Status, o.Error = restore.Conflicted, err.Error()
			return o, nil
		}
		if err != nil {
			return o, err
		}
		if wrote {
			o.Items++
			o.Receipts += len(seg)
		}
	}
	o.Status = restore.Restored
	return o, nil
}
