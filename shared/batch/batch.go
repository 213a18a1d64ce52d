// Package batch processes the batches Lambda receives from SQS and DynamoDB
// Streams with partial-failure reporting (ReportBatchItemFailures).
//
// Items are grouped by a key (for example the case id): the items of one group
// are handled one after another in batch order, different groups concurrently
// with a bounded number of workers. A handler error makes the item a batch
// item failure so that Lambda delivers it again; an error wrapped with
// Permanent drops the item instead. Panics in handlers are recovered and
// become failures of their item. Items not yet started when the invocation's
// remaining time drops below a margin are reported without being started.
package batch

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWorkers is the number of groups processed at once when
// Options.Workers is zero.
const DefaultWorkers = 8

// Options are the settings shared by ProcessSQS and ProcessDynamoDB. The zero
// value is usable.
type Options struct {
	// Workers bounds how many groups are processed at once. Default
	// DefaultWorkers.
	Workers int
	// DeadlineMargin is the time kept in reserve before the context's deadline:
	// an item is not started once less than this remains (nor once the
	// context is done). Zero starts items until the deadline itself.
	DeadlineMargin time.Duration
	// Clock returns the current time, compared with the context's deadline.
	// Default time.Now.
	Clock func() time.Time
	// OnPermanent is called for every item whose handler returned a
	// Permanent error; the item is dropped (not reported for retry).
	OnPermanent func(ctx context.Context, id string, err error)
	// OnFailure is called for every item that failed or was left unprocessed,
	// with the reason: the handler's error, a *PanicError, ErrDeadline,
	// ErrGroupFailed or ErrBatchStopped.
	//
	// Both callbacks run on the goroutine of the item's group, right after the
	// item, so calls for different groups may run concurrently. A panic in a
	// callback is recovered and ignored.
	OnFailure func(ctx context.Context, id string, err error)
}

// Reasons an item was not started.
var (
	// ErrDeadline: the remaining time was below the deadline margin, or the
	// context was done, when the item's turn came.
	ErrDeadline = errors.New("batch: not started, remaining time below the deadline margin")
	// ErrGroupFailed: an earlier item of the same group failed, so this one
	// was not started to keep the group's order. (When the earlier item was
	// not started for lack of time, the later ones report ErrDeadline too.)
	ErrGroupFailed = errors.New("batch: not started, an earlier item of its group failed")
	// ErrBatchStopped: a stream batch stopped at an earlier failed record
	// (the checkpoint); this record is delivered again from there.
	ErrBatchStopped = errors.New("batch: not started, the batch stopped at an earlier record")
)

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

// Error returns the wrapped error's text.
func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the batch processor drops the item instead of
// reporting it for retry. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is or wraps a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// PanicError is the failure of an item whose handler panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

// Error describes the panic.
func (e *PanicError) Error() string { return fmt.Sprintf("batch: handler panicked: %v", e.Value) }

// outcome is what became of one item.
type outcome uint8

const (
	succeeded outcome = iota + 1 // handler returned nil
	dropped                      // handler returned a Permanent error
	failed                       // handler returned an error or panicked
	deferred                     // not started: deadline
	skipped                      // not started: group failed or batch stopped
)

// job describes a batch to the processing core, by item index.
type job struct {
	n      int
	key    func(i int) (string, bool) // group key; false: the item is a group of its own
	id     func(i int) string
	handle func(ctx context.Context, i int) error
	// stopOnFailure makes the first failure (lowest index) a checkpoint:
	// items after it are not started (stream semantics).
	stopOnFailure bool
}

// processor is the state of one run.
type processor struct {
	opts   Options
	job    job
	out    []outcome    // per item; each group's worker writes only its items
	stopAt atomic.Int64 // lowest index that failed or was deferred (n if none)
}

// run processes the job and returns the outcome of every item.
func run(ctx context.Context, opts Options, j job) []outcome {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	p := &processor{opts: opts, job: j, out: make([]outcome, j.n)}
	p.stopAt.Store(int64(j.n))
	groups := groupItems(j)
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(opts.Workers, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				p.group(ctx, g)
			}
		}()
	}
	for _, g := range groups {
		work <- g
	}
	close(work)
	wg.Wait()
	return p.out
}

// group processes the items of one group in order.
func (p *processor) group(ctx context.Context, items []int) {
	var groupStop error // why the rest of the group is not started
	for _, i := range items {
		var reason error
		switch {
		case p.job.stopOnFailure && int64(i) > p.stopAt.Load():
			p.out[i], reason = skipped, ErrBatchStopped
		case groupStop != nil:
			p.out[i], reason = skipped, groupStop
		case !timeLeft(ctx, p.opts):
			p.out[i], reason = deferred, ErrDeadline
			groupStop = ErrDeadline
			p.lowerStop(i)
		default:
			err := call(ctx, p.job.handle, i)
			switch {
			case err == nil:
				p.out[i] = succeeded
				continue
			case IsPermanent(err):
				p.out[i] = dropped
				if cb := p.opts.OnPermanent; cb != nil {
					safely(func() { cb(ctx, p.job.id(i), err) })
				}
				continue
			}
			p.out[i], reason = failed, err
			groupStop = ErrGroupFailed
			p.lowerStop(i)
		}
		if cb := p.opts.OnFailure; cb != nil {
			safely(func() { cb(ctx, p.job.id(i), reason) })
		}
	}
}

// lowerStop records that item i failed or was deferred.
func (p *processor) lowerStop(i int) {
	for {
		cur := p.stopAt.Load()
		if int64(i) >= cur || p.stopAt.CompareAndSwap(cur, int64(i)) {
			return
		}
	}
}

// groupItems splits item indexes into groups by key, in order of first
// appearance; indexes inside a group keep batch order.
func groupItems(j job) [][]int {
	var groups [][]int
	byKey := make(map[string]int)
	for i := range j.n {
		k, ok := j.key(i)
		if !ok {
			groups = append(groups, []int{i})
			continue
		}
		g, seen := byKey[k]
		if !seen {
			g = len(groups)
			byKey[k] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// timeLeft reports whether an item may still be started.
func timeLeft(ctx context.Context, opts Options) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return true
	}
	return deadline.Sub(opts.Clock()) >= opts.DeadlineMargin
}

// call runs the handler of item i, turning a panic into a *PanicError.
func call(ctx context.Context, handle func(context.Context, int) error, i int) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return handle(ctx, i)
}

// safeKey runs a caller's key function; a panic in it yields no key.
func safeKey[T any](key func(T) string, item T) (k string) {
	defer func() {
		if recover() != nil {
			k = ""
		}
	}()
	return key(item)
}

// safely runs a caller's callback, ignoring a panic in it.
func safely(fn func()) {
	defer func() { _ = recover() }()
	fn()
}
