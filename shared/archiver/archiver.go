// Package archiver moves ended cases out of DynamoDB only once they are safe
// in S3. A run takes the archiver's lease, loads and verifies the checkpoint
// log, and walks its leaves from where the last run stopped (a cursor in the
// state table): a leaf that is the terminal head of its case (the verifier's
// watermark says the case ended there) and the case's last signed head is an
// ended, checkpointed case. For each, the run builds the archive object
// (shared/archive), writes it to the archive bucket, reads that version
// back and verifies it (chain, payloads, inclusion in the signed tree, the
// same bytes), records the case in the archive index, and only then sets the
// receipts' time to live. Finding ended cases costs one batch read of
// watermarks per 100 new leaves, never a scan of all cases. A refused case
// is recorded with its reason and retried by later runs, before they walk
// on, with a backoff between attempts (RetryAfter).
package archiver

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// FunctionName is the archiver's short name, the value of its metrics'
// Function dimension and its lease's job.
const FunctionName = "archiver"

// EnvRetentionDays is the environment variable of Deps.Retention in days:
// how long after its end a case's receipts stay in DynamoDB once archived.
const EnvRetentionDays = "KNHK_RECEIPT_RETENTION_DAYS"

// DefaultRetentionDays is the receipts' retention in DynamoDB after a case
// ended and was archived.
const DefaultRetentionDays = 30

// ParseRetentionDays reads EnvRetentionDays: empty is the default, else a
// whole number of days from 1 to 3653.
func ParseRetentionDays(v string) (time.Duration, error) {
	if v == "" {
		return DefaultRetentionDays * 24 * time.Hour, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 3653 {
		return 0, fmt.Errorf("%s=%q: want whole days from 1 to 3653", EnvRetentionDays, v)
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

// Log is the stored checkpoint log.
type Log interface {
	Load(ctx context.Context) (store.StoredLog, error)
}

// Leases exclude overlapping runs (store.Leases, job FunctionName).
type Leases interface {
	Acquire(ctx context.Context, job, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, job, owner string) error
}

// Watermarks are the verifier's verified positions (store.Cases).
type Watermarks interface {
	Watermarks(ctx context.Context, caseIDs []string) (map[string]receipt.Watermark, error)
}

// Chains reads a case's receipts and sets their time to live
// (store.Receipts).
type Chains interface {
	Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error)
	SetExpiry(ctx context.Context, caseID string, at time.Time) (int, error)
}

// Blobs reads detached payloads by hash (objects.Blobs: the payloads bucket,
// falling back to the state table for payloads written there before).
type Blobs interface {
	Blob(ctx context.Context, hash string) ([]byte, error)
}

// Index is the archive index and the archiver's cursor (store.Archives).
type Index interface {
	Archived(ctx context.Context, caseID string) (archive.Summary, bool, error)
	Record(ctx context.Context, s archive.Summary) (bool, error)
	Cursor(ctx context.Context) (store.ArchiveCursor, error)
	SetCursor(ctx context.Context, c store.ArchiveCursor) error
}

// Refusals are the cases refused and their next retries (store.Refusals).
type Refusals interface {
	Put(ctx context.Context, c store.RefusedCase) error
	Get(ctx context.Context, caseID string) (store.RefusedCase, bool, error)
	Delete(ctx context.Context, caseID string) error
	Due(ctx context.Context, now time.Time, limit int) ([]store.RefusedCase, error)
}

// Retry backoff of refused cases: the first retry FirstRetry after the
// refusal, each next one twice as late, at most MaxRetryWait apart.
const (
	FirstRetry   = 15 * time.Minute
	MaxRetryWait = 24 * time.Hour
)

// RetryAfter is how long after its attempts-th refusal (attempts >= 1) a
// case is retried: FirstRetry·2^(attempts-1), at most MaxRetryWait.
func RetryAfter(attempts int) time.Duration {
	wait := FirstRetry
	for i := 1; i < attempts && wait < MaxRetryWait; i++ {
		wait *= 2
	}
	return min(wait, MaxRetryWait)
}

// Bucket is the archive bucket (objects.Versioned).
type Bucket interface {
	Put(ctx context.Context, key, contentType string, body []byte) (string, error)
	Get(ctx context.Context, key, versionID string, limit int64) ([]byte, error)
}

// KeySource gives the checkpoint public key (signer.KMS).
type KeySource interface {
	PublicKey(ctx context.Context) (crypto.PublicKey, error)
}

// Alerter sends operator alerts.
type Alerter interface {
	Alert(ctx context.Context, subject, body string) error
}

// Deps are the archiver's collaborators. Logger, Metrics, Out and Now
// default to a discarding logger, metrics with Function=archiver, standard
// output and time.Now.
type Deps struct {
	Log        Log
	Leases     Leases
	Watermarks Watermarks
	Chains     Chains
	Blobs      Blobs
	Index      Index
	Refusals   Refusals
	Bucket     Bucket
	Key        KeySource
	Alerts     Alerter
	Logger     *slog.Logger
	Metrics    *telemetry.Metrics
	Out        io.Writer
	Now        func() time.Time
	// Retention is how long after its end an archived case's receipts
	// stay in DynamoDB (default DefaultRetentionDays).
	Retention time.Duration
	// MaxCases bounds the cases one run archives (default 200) and
	// MaxLeaves the checkpoint leaves it examines (default 20,000); the
	// next run continues from there. MaxRetries bounds the refused cases
	// one run retries (default 20).
	MaxCases, MaxLeaves, MaxRetries int
	// Lease is how long a run may hold the lease (default 15 minutes, more
	// than a run's timeout).
	Lease time.Duration
}

// Archiver runs archive passes.
type Archiver struct{ d Deps }

// New returns an archiver.
func New(d Deps) (*Archiver, error) {
	if d.Log == nil || d.Leases == nil || d.Watermarks == nil || d.Chains == nil || d.Blobs == nil || d.Index == nil || d.Refusals == nil || d.Bucket == nil || d.Key == nil || d.Alerts == nil {
		return nil, errors.New("archiver: log, leases, watermarks, chains, blobs, index, refusals, bucket, key and alerts are required")
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
	if d.Retention <= 0 {
		d.Retention = DefaultRetentionDays * 24 * time.Hour
	}
	if d.MaxCases <= 0 {
		d.MaxCases = 200
	}
	if d.MaxLeaves <= 0 {
		d.MaxLeaves = 20_000
	}
	if d.MaxRetries <= 0 {
		d.MaxRetries = 20
	}
	if d.Lease <= 0 {
		d.Lease = 15 * time.Minute
	}
	return &Archiver{d: d}, nil
}

// Result is what one run did.
type Result struct {
	// Busy: another run held the lease; nothing was done.
	Busy bool `json:"busy,omitempty"`
	// Archived are the cases archived by this run; Expired the cases
	// archived before whose receipts' time to live this run (re)set.
	Archived []string `json:"archived,omitempty"`
	Expired  []string `json:"expired,omitempty"`
	// Refused are the cases not archived because their chain or the object
	// read back did not verify; their receipts keep no time to live. Each
	// is recorded for a later retry.
	Refused []string `json:"refused,omitempty"`
	// Retried are the refused cases this run retried, whether archived
	// (then also in Archived or Expired) or refused again.
	Retried []string `json:"retried,omitempty"`
	// Examined is the number of checkpoint leaves examined; More says the
	// run stopped at a bound and leaves remain.
	Examined int                 `json:"examined"`
	More     bool                `json:"more,omitempty"`
	Cursor   store.ArchiveCursor `json:"cursor"`
	Bytes    int                 `json:"bytes"`
}

// Errors of Run.
var (
	ErrLogInvalid = errors.New("stored checkpoint log does not verify; nothing archived")
	// ErrRefused wraps why one case was not archived.
	ErrRefused = errors.New("archive refused")
)

// Handler is the scheduled function's entry point.
func (a *Archiver) Handler(ctx context.Context, _ any) (Result, error) { return a.Run(ctx) }

// leaf is one checkpoint leaf and its position.
type leaf struct {
	head merkle.Head
	at   store.ArchiveCursor
	ref  checkpoint.LeafRef
}

// Run archives the ended, checkpointed cases after the cursor, up to the
// bounds. It returns an error only when it could not do its work (AWS
// errors, a broken log); the cursor then stays at the first case not done,
// so the next run retries it. A refused case is a result, alerted.
func (a *Archiver) Run(ctx context.Context) (res Result, err error) {
	d := a.d
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
		d.Logger.InfoContext(ctx, "archiver lease held by another run; skipped")
		return Result{Busy: true}, nil
	}
	defer func() {
		if rerr := d.Leases.Release(context.WithoutCancel(ctx), FunctionName, owner); rerr != nil {
			d.Logger.ErrorContext(ctx, "release lease", "error", rerr.Error())
		}
	}()
	pub, err := d.Key.PublicKey(ctx)
	if err != nil {
		return res, fmt.Errorf("checkpoint key: %w", err)
	}
	stored, err := d.Log.Load(ctx)
	if err != nil {
		return res, err
	}
	lg, err := checkpoint.VerifyLog(stored.Entries, pub)
	if err != nil {
		d.Logger.ErrorContext(ctx, "checkpoint log does not verify", "error", err.Error())
		return res, fmt.Errorf("%w: %w", ErrLogInvalid, err)
	}
	if err := a.retry(ctx, lg, pub, &res); err != nil {
		return res, err
	}
	cur, err := d.Index.Cursor(ctx)
	if err != nil {
		return res, err
	}
	res.Cursor = cur
	leaves, more := pending(lg, cur, d.MaxLeaves)
	res.More = more
	defer func() {
		// Keep what was done even when a later case failed.
		if serr := d.Index.SetCursor(context.WithoutCancel(ctx), res.Cursor); serr != nil && err == nil {
			err = serr
		}
	}()
	for start := 0; start < len(leaves); start += 100 {
		batch := leaves[start:min(start+100, len(leaves))]
		ids := make([]string, len(batch))
		for i, lf := range batch {
			ids[i] = lf.head.CaseID
		}
		ws, err := d.Watermarks.Watermarks(ctx, ids)
		if err != nil {
			return res, err
		}
		for i, lf := range batch {
			if len(res.Archived)+len(res.Expired) >= d.MaxCases {
				res.More = true
				return res, nil
			}
			last, _ := lg.Last(lf.head.CaseID)
			w := ws[lf.head.CaseID]
			if w.Ended > 0 && w.Ended == lf.head.Seq && last == lf.head {
				if err := a.archiveCase(ctx, lg, lf, pub, &res); err != nil {
					return res, err
				}
			}
			res.Examined++
			res.Cursor = next(lg, batch[i].at)
		}
	}
	d.Logger.InfoContext(ctx, "archive run", "archived", len(res.Archived), "expired", len(res.Expired), "refused", len(res.Refused), "retried", len(res.Retried),
		"examined", res.Examined, "more", res.More, "bytes", res.Bytes)
	return res, nil
}

// retry archives again the refused cases due now, up to MaxRetries: a
// case archived (or found archived) loses its refusal, one refused again
// is recorded with one more attempt and a later retry.
func (a *Archiver) retry(ctx context.Context, lg *checkpoint.Log, pub crypto.PublicKey, res *Result) error {
	d := a.d
	due, err := d.Refusals.Due(ctx, d.Now(), d.MaxRetries)
	if err != nil {
		return err
	}
	for _, rc := range due {
		h := merkle.Head{Tenant: rc.Tenant, CaseID: rc.CaseID, Seq: rc.HeadSeq, Hash: rc.HeadHash}
		lf := leaf{head: h, ref: checkpoint.LeafRef{Head: h, Index: rc.LeafIndex, Checkpoint: rc.Checkpoint}}
		res.Retried = append(res.Retried, rc.CaseID)
		refused := len(res.Refused)
		if last, _ := lg.Last(rc.CaseID); last != h {
			err = a.refuse(ctx, lf, res, fmt.Errorf("%w: the case's last signed head is seq %d %s, not the refused one", ErrRefused, last.Seq, last.Hash))
		} else {
			err = a.archiveCase(ctx, lg, lf, pub, res)
		}
		if err != nil {
			return err
		}
		if len(res.Refused) == refused {
			if err := d.Refusals.Delete(ctx, rc.CaseID); err != nil {
				return err
			}
			d.Logger.InfoContext(telemetry.LogCase(ctx, rc.Tenant, rc.CaseID), "refused case archived on retry", "attempts", rc.Attempts)
		}
	}
	return nil
}

// pending lists up to limit leaves from the cursor on, in log order, and
// whether more remain.
func pending(lg *checkpoint.Log, cur store.ArchiveCursor, limit int) ([]leaf, bool) {
	var out []leaf
	es := lg.Entries()
	var index uint64
	for i := range es {
		if uint64(i) < cur.Checkpoint {
			index += uint64(len(es[i].Leaves))
			continue
		}
		for j, h := range es[i].Leaves {
			if uint64(i) == cur.Checkpoint && j < cur.Leaf {
				continue
			}
			if len(out) == limit {
				return out, true
			}
			out = append(out, leaf{head: h, at: store.ArchiveCursor{Checkpoint: uint64(i), Leaf: j},
				ref: checkpoint.LeafRef{Head: h, Index: index + uint64(j), Checkpoint: uint64(i)}})
		}
		index += uint64(len(es[i].Leaves))
	}
	return out, false
}

// next is the position after at.
func next(lg *checkpoint.Log, at store.ArchiveCursor) store.ArchiveCursor {
	es := lg.Entries()
	if at.Leaf+1 < len(es[at.Checkpoint].Leaves) {
		return store.ArchiveCursor{Checkpoint: at.Checkpoint, Leaf: at.Leaf + 1}
	}
	return store.ArchiveCursor{Checkpoint: at.Checkpoint + 1}
}

// archiveCase archives one ended case, or (re)sets the expiry of one
// archived before (a run that stopped between the two).
func (a *Archiver) archiveCase(ctx context.Context, lg *checkpoint.Log, lf leaf, pub crypto.PublicKey, res *Result) error {
	d := a.d
	id := lf.head.CaseID
	ctx = telemetry.LogCase(ctx, lf.head.Tenant, id)
	if s, ok, err := d.Index.Archived(ctx, id); err != nil {
		return err
	} else if ok {
		if s.HeadSeq != lf.head.Seq || s.HeadHash != lf.head.Hash {
			return a.refuse(ctx, lf, res, fmt.Errorf("%w: archived at seq %d %s, signed head is seq %d %s", ErrRefused, s.HeadSeq, s.HeadHash, lf.head.Seq, lf.head.Hash))
		}
		if _, err := d.Chains.SetExpiry(ctx, id, s.Ended.Add(d.Retention)); err != nil {
			return err
		}
		res.Expired = append(res.Expired, id)
		return nil
	}
	rs, bad, err := d.Chains.Chain(ctx, id)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return a.refuse(ctx, lf, res, fmt.Errorf("%w: a stored receipt does not decode: %s", ErrRefused, bad[0]))
	}
	blobs := map[string][]byte{}
	for _, h := range archive.Detached(rs) {
		if blobs[h], err = d.Blobs.Blob(ctx, h); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, objects.ErrNotFound) {
				return a.refuse(ctx, lf, res, fmt.Errorf("%w: %w", ErrRefused, err))
			}
			return err
		}
	}
	p, th, err := lg.Proof(lf.ref)
	if err != nil {
		return fmt.Errorf("inclusion proof of %s: %w", id, err)
	}
	obj, err := archive.New(rs, blobs, p, th, pub)
	if err != nil {
		return a.refuse(ctx, lf, res, fmt.Errorf("%w: %w", ErrRefused, err))
	}
	// The chain as stored must be the signed one before anything is written.
	if err := archive.Verify(obj, pub); err != nil {
		return a.refuse(ctx, lf, res, fmt.Errorf("%w: the stored chain: %w", ErrRefused, err))
	}
	data, err := archive.Encode(obj)
	if err != nil {
		return err
	}
	key := archive.Key(obj.Tenant, id)
	version, err := d.Bucket.Put(ctx, key, archive.ContentType, data)
	if err != nil {
		return err
	}
	back, err := d.Bucket.Get(ctx, key, version, archive.MaxSize)
	if err != nil {
		return err
	}
	sum, err := checkBack(back, data, lf.head, pub)
	if err != nil {
		return a.refuse(ctx, lf, res, fmt.Errorf("%w: the object read back (version %s): %w", ErrRefused, version, err))
	}
	sum.VersionID = version
	if _, err := d.Index.Record(ctx, sum); err != nil {
		return err
	}
	n, err := d.Chains.SetExpiry(ctx, id, sum.Ended.Add(d.Retention))
	if err != nil {
		return err
	}
	res.Archived = append(res.Archived, id)
	res.Bytes += len(data)
	d.Metrics.Add(telemetry.CasesArchived, telemetry.Count, 1)
	d.Metrics.Add(telemetry.ArchiveBytes, telemetry.Bytes, float64(len(data)))
	d.Logger.InfoContext(ctx, "case archived", "key", key, "version", version, "bytes", len(data), "items", n, "expires", sum.Ended.Add(d.Retention).Format(time.RFC3339))
	return nil
}

// checkBack verifies the object read back: the bytes written, an archive
// that verifies, of the signed head.
func checkBack(back, wrote []byte, h merkle.Head, pub crypto.PublicKey) (archive.Summary, error) {
	if !bytes.Equal(back, wrote) {
		return archive.Summary{}, fmt.Errorf("%d bytes differ from the %d written", len(back), len(wrote))
	}
	got, err := archive.Decode(back)
	if err != nil {
		return archive.Summary{}, err
	}
	if err := archive.Verify(got, pub); err != nil {
		return archive.Summary{}, err
	}
	if got.Proof.Leaf != h {
		return archive.Summary{}, fmt.Errorf("archive of head %+v, want %+v", got.Proof.Leaf, h)
	}
	return archive.Summarize(got, back)
}

// refuse records a case that cannot be archived, with one more attempt
// and its next retry: its receipts keep no time to live; a metric, an
// error log line and an alert.
func (a *Archiver) refuse(ctx context.Context, lf leaf, res *Result, why error) error {
	d := a.d
	h := lf.head
	res.Refused = append(res.Refused, h.CaseID)
	d.Metrics.Add(telemetry.ArchivesRefused, telemetry.Count, 1)
	prior, ok, err := d.Refusals.Get(ctx, h.CaseID)
	if err != nil {
		return err
	}
	rc := Refusal(prior, ok, lf.ref, why, d.Now())
	if err := d.Refusals.Put(ctx, rc); err != nil {
		return err
	}
	d.Logger.ErrorContext(ctx, "archive refused", "seq", h.Seq, "attempts", rc.Attempts, "retry", rc.NextAt.Format(time.RFC3339), "error", why.Error())
	subject, body := AlertMessage(rc)
	return d.Alerts.Alert(ctx, subject, body)
}

// Refusal is the record of a refusal at now of the head ref names: the
// prior record's attempts plus one (1 without one, ok false), its first
// time kept, the next retry RetryAfter(attempts) later.
func Refusal(prior store.RefusedCase, ok bool, ref checkpoint.LeafRef, why error, now time.Time) store.RefusedCase {
	rc := store.RefusedCase{Tenant: ref.Head.Tenant, CaseID: ref.Head.CaseID, HeadSeq: ref.Head.Seq, HeadHash: ref.Head.Hash,
		LeafIndex: ref.Index, Checkpoint: ref.Checkpoint, Reason: why.Error(), Attempts: 1, FirstAt: now, LastAt: now}
	if ok {
		rc.Attempts, rc.FirstAt = prior.Attempts+1, prior.FirstAt
	}
	rc.NextAt = now.Add(RetryAfter(rc.Attempts))
	return rc
}

// AlertMessage renders the alert of a refused archive.
func AlertMessage(rc store.RefusedCase) (subject, body string) {
	subject = fmt.Sprintf("KNHK archive refused: case %s", rc.CaseID)
	var b strings.Builder
	fmt.Fprintf(&b, "The archiver did not archive an ended case: what it would archive does not verify. Its receipts stay in DynamoDB without a time to live.\n\n")
	fmt.Fprintf(&b, "Tenant:   %s\nCase:     %s\nHead:     seq %d %s\nReason:   %s\n", rc.Tenant, rc.CaseID, rc.HeadSeq, rc.HeadHash, rc.Reason)
	fmt.Fprintf(&b, "Attempt:  %d (first refused %s)\nRetry:    %s\n\n", rc.Attempts, rc.FirstAt.UTC().Format(time.RFC3339), rc.NextAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Inspect the chain: knhk verify --case %s\nRefused cases: knhk archive refused; retry at the next run: knhk archive retry %s\nRunbook: docs/runbooks/archive-refused.md\n", rc.CaseID, rc.CaseID)
	return subject, b.String()
}

func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
