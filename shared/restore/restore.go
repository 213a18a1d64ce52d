// Package restore is the pure core of restoring receipts from the archive:
// checking an archive object before anything of it is written, cutting its
// chain into the segment items the executor writes, deciding what to do
// with a case the target table may already hold, and the run's summary.
// No I/O; the shell is shared/restorer.
package restore

import (
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
)

// ErrRefused wraps why an archive object is not restored.
var ErrRefused = errors.New("restore refused")

// Check decodes and verifies one archive object stored under key: its
// canonical form, chain, payloads and inclusion in the signed tree head it
// carries (archive.Verify, with pub); that key is where that case's archive
// belongs; and, when lg is not nil, that the tree head is the one the
// verified checkpoint log holds at its position (a valid signature on a
// head the log does not have is refused too).
func Check(key string, data []byte, pub crypto.PublicKey, lg *checkpoint.Log) (*archive.Archive, error) {
	a, err := archive.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, key, err)
	}
	if err := archive.Verify(a, pub); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, key, err)
	}
	if want := archive.Key(a.Tenant, a.CaseID); key != want {
		return nil, fmt.Errorf("%w: %s holds case %s of tenant %s, whose key is %s", ErrRefused, key, a.CaseID, a.Tenant, want)
	}
	if lg == nil {
		return a, nil
	}
	es := lg.Entries()
	if a.TreeHead.Seq >= uint64(len(es)) {
		return nil, fmt.Errorf("%w: %s: proved against checkpoint %d, the log has %d", ErrRefused, key, a.TreeHead.Seq, len(es))
	}
	if es[a.TreeHead.Seq].Head != a.TreeHead {
		return nil, fmt.Errorf("%w: %s: the tree head of checkpoint %d differs from the log's", ErrRefused, key, a.TreeHead.Seq)
	}
	return a, nil
}

// Segments cuts a chain into the runs the executor stores as one segment
// item each (receipt.Split over the receipts' Compact sizes), in seq order.
// The receipts are byte for byte the archived ones; only where one item
// ends may differ from the live table's, which depended on how many events
// each executor step appended (docs/recovery.md).
func Segments(rs []*receipt.Receipt) ([][]*receipt.Receipt, error) {
	sizes := make([]int, len(rs))
	for i, r := range rs {
		c, err := r.Compact()
		if err != nil {
			return nil, fmt.Errorf("segment %s seq %d: %w", r.CaseID, r.Seq, err)
		}
		sizes[i] = len(c)
	}
	return receipt.Split(rs, sizes), nil
}

// Action is what to do with one archived case.
type Action int

// Actions of Decide.
const (
	// Write: the target holds nothing of the case, or a prefix of its
	// archived chain (an earlier run stopped inside it); write what is
	// missing.
	Write Action = iota
	// Skip: the target already holds the case with the archived head.
	Skip
	// Conflict: the target holds a different chain for the case; it is
	// reported and never overwritten.
	Conflict
)

func (a Action) String() string {
	switch a {
	case Write:
		return "write"
	case Skip:
		return "skip"
	default:
		return "conflict"
	}
}

// Decide compares the target's tail of a case (nil: none) with the
// archived chain rs.
func Decide(tail *receipt.Receipt, rs []*receipt.Receipt) Action {
	if tail == nil {
		return Write
	}
	head := rs[len(rs)-1]
	switch {
	case tail.Seq == head.Seq && tail.Hash == head.Hash:
		return Skip
	case tail.Seq >= 0 && tail.Seq < head.Seq && rs[tail.Seq].Hash == tail.Hash:
		return Write
	default:
		return Conflict
	}
}

// Outcome is what happened to one archive object.
type Outcome struct {
	Key    string `json:"key"`
	Tenant string `json:"tenant,omitempty"`
	CaseID string `json:"caseId,omitempty"`
	// HeadSeq and HeadHash are the archived (checkpointed) head.
	HeadSeq  int64  `json:"headSeq,omitempty"`
	HeadHash string `json:"headHash,omitempty"`
	// Status is restored, skipped, conflict or refused; Error says why for
	// the last two.
	Status   string `json:"status"`
	Receipts int    `json:"receipts,omitempty"`
	Items    int    `json:"items,omitempty"`
	Payloads int    `json:"payloads,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Statuses of an Outcome.
const (
	Restored   = "restored"
	Skipped    = "skipped"
	Refused    = "refused"
	Conflicted = "conflict"
)

// Summary is what one restore run did.
type Summary struct {
	Listed   int           `json:"listed"`
	Restored int           `json:"restored"`
	Skipped  int           `json:"skipped"`
	Refused  int           `json:"refused"`
	Conflict int           `json:"conflict"`
	Receipts int           `json:"receipts"`
	Items    int           `json:"items"`
	Payloads int           `json:"payloads"`
	Elapsed  time.Duration `json:"elapsedNs"`
	// Problems are the refused and conflicting objects.
	Problems []Outcome `json:"problems,omitempty"`
}

// Add counts one outcome.
func (s *Summary) Add(o Outcome) {
	switch o.Status {
	case Restored:
		s.Restored++
		s.Receipts += o.Receipts
		s.Items += o.Items
		s.Payloads += o.Payloads
	case Skipped:
		s.Skipped++
	case Refused:
		s.Refused++
		s.Problems = append(s.Problems, o)
	default:
		s.Conflict++
		s.Problems = append(s.Problems, o)
	}
}

// OK reports whether every listed object was restored or already present.
func (s *Summary) OK() bool { return s.Refused == 0 && s.Conflict == 0 }

// String is the one-line summary the command prints.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d archive objects: %d restored (%d receipts in %d items, %d payloads), %d skipped, %d refused, %d conflicts in %s",
		s.Listed, s.Restored, s.Receipts, s.Items, s.Payloads, s.Skipped, s.Refused, s.Conflict, s.Elapsed.Round(time.Millisecond))
	return b.String()
}
