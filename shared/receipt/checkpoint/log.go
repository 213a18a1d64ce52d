package checkpoint

import (
	"cmp"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/knhk/knhk/shared/receipt/merkle"
)

// The checkpoint log is append-only, in the manner of a Certificate
// Transparency log: its leaves are chain heads, each checkpoint appends the
// heads that advanced since the previous one (sorted by tenant, then case)
// and signs the tree over every leaf so far. A checkpoint names its
// predecessor (Prev, the predecessor's Digest) and its position (Seq), and
// carries the RFC 6962 consistency proof from the predecessor's tree, so the
// sequence can be checked offline with only the public key: no checkpoint
// can be dropped, reordered or rewritten, and no signed leaf changed,
// without VerifyLog failing.

// Entry is one checkpoint of the log as stored and exported.
type Entry struct {
	Head TreeHead `json:"treeHead"`
	// Consistency is the proof (hex hashes) that the predecessor's tree is
	// a prefix of this one; empty for the first checkpoint.
	Consistency []string `json:"consistency"`
	// Leaves are the heads this checkpoint appended, in tree order.
	Leaves []merkle.Head `json:"leaves"`
}

// ErrLog is wrapped by every error VerifyLog reports.
var ErrLog = errors.New("checkpoint log does not verify")

// Log is a verified checkpoint log.
type Log struct {
	entries []Entry
	leaves  []merkle.Head
	tree    *merkle.Tree
	byCase  map[string][]uint64 // leaf indexes of each case, ascending
}

// LeafRef is one signed head of a case: the leaf, its index and the
// checkpoint that appended it.
type LeafRef struct {
	Head       merkle.Head
	Index      uint64
	Checkpoint uint64 // Seq of the checkpoint that appended the leaf
}

// VerifyLog checks a whole log, entries in Seq order from 0: every
// signature with pub, the numbering, every predecessor link and
// consistency proof, that each checkpoint's tree grows by exactly its
// leaves, that a case's signed heads only move forward, and that the leaves
// rebuild the last signed root. An empty log verifies.
func VerifyLog(entries []Entry, pub crypto.PublicKey) (*Log, error) {
	l := &Log{byCase: map[string][]uint64{}}
	prev := merkle.ZeroHash
	var size uint64
	var root merkle.Hash
	for i, e := range entries {
		h := e.Head
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%w: checkpoint %d (%s): %s", ErrLog, i, h.Period, fmt.Sprintf(format, a...))
		}
		if err := h.Verify(pub); err != nil {
			return nil, fail("%v", err)
		}
		if h.Seq != uint64(i) {
			return nil, fail("seq %d, want %d: a checkpoint is missing or out of order", h.Seq, i)
		}
		if h.Prev != prev {
			return nil, fail("names predecessor %s, the predecessor is %s", h.Prev, prev)
		}
		if h.Size != size+uint64(len(e.Leaves)) {
			return nil, fail("size %d, want %d (previous size %d + %d leaves)", h.Size, size+uint64(len(e.Leaves)), size, len(e.Leaves))
		}
		newRoot, _ := merkle.ParseHash(h.Root)
		proof, err := parseHashes(e.Consistency)
		if err != nil {
			return nil, fail("consistency proof: %v", err)
		}
		if err := merkle.VerifyConsistency(size, h.Size, root, newRoot, proof); err != nil {
			return nil, fail("not an extension of checkpoint %d: %v", i-1, err)
		}
		if !sorted(e.Leaves) {
			return nil, fail("leaves not sorted by tenant and case, or a case twice")
		}
		for _, lf := range e.Leaves {
			if refs := l.byCase[lf.CaseID]; len(refs) > 0 {
				last := l.leaves[refs[len(refs)-1]]
				if lf.Seq <= last.Seq || lf.Tenant != last.Tenant {
					return nil, fail("case %s moves from %s seq %d to %s seq %d", lf.CaseID, last.Tenant, last.Seq, lf.Tenant, lf.Seq)
				}
			}
			l.byCase[lf.CaseID] = append(l.byCase[lf.CaseID], uint64(len(l.leaves)))
			l.leaves = append(l.leaves, lf)
		}
		d := h.Digest()
		prev, size, root = hex.EncodeToString(d[:]), h.Size, newRoot
	}
	l.tree = merkle.FromHeads(l.leaves)
	if l.tree.Root() != root && len(entries) > 0 {
		return nil, fmt.Errorf("%w: the leaves do not rebuild the root of checkpoint %d", ErrLog, len(entries)-1)
	}
	l.entries = entries
	return l, nil
}

func parseHashes(ss []string) ([]merkle.Hash, error) {
	out := make([]merkle.Hash, len(ss))
	for i, s := range ss {
		var err error
		if out[i], err = merkle.ParseHash(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func compareHeads(a, b merkle.Head) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.CaseID, b.CaseID))
}

// sorted reports whether heads are in tree order with each case once.
func sorted(hs []merkle.Head) bool {
	seen := make(map[string]bool, len(hs))
	for i, h := range hs {
		if seen[h.CaseID] || (i > 0 && compareHeads(hs[i-1], h) >= 0) {
			return false
		}
		seen[h.CaseID] = true
	}
	return true
}

// Entries returns the log's checkpoints in order.
func (l *Log) Entries() []Entry { return l.entries }

// Latest returns the last checkpoint, false for an empty log.
func (l *Log) Latest() (Entry, bool) {
	if len(l.entries) == 0 {
		return Entry{}, false
	}
	return l.entries[len(l.entries)-1], true
}

// Case returns every signed head of a case, oldest first.
func (l *Log) Case(caseID string) []LeafRef {
	var out []LeafRef
	for _, i := range l.byCase[caseID] {
		out = append(out, LeafRef{Head: l.leaves[i], Index: i, Checkpoint: l.checkpointOf(i)})
	}
	return out
}

// Last returns a case's latest signed head.
func (l *Log) Last(caseID string) (merkle.Head, bool) {
	refs := l.byCase[caseID]
	if len(refs) == 0 {
		return merkle.Head{}, false
	}
	return l.leaves[refs[len(refs)-1]], true
}

func (l *Log) checkpointOf(leaf uint64) uint64 {
	i, _ := slices.BinarySearchFunc(l.entries, leaf+1, func(e Entry, n uint64) int { return cmp.Compare(e.Head.Size, n) })
	return uint64(i)
}

// Proof returns the inclusion proof of a leaf in the latest checkpoint's
// tree, with that checkpoint's head.
func (l *Log) Proof(ref LeafRef) (Proof, TreeHead, error) {
	last, ok := l.Latest()
	if !ok || ref.Index >= l.tree.Size() {
		return Proof{}, TreeHead{}, ErrNotInCheckpoint
	}
	path, err := l.tree.InclusionProof(ref.Index)
	if err != nil {
		return Proof{}, TreeHead{}, err
	}
	p := Proof{Leaf: l.leaves[ref.Index], Index: ref.Index, Path: make([]string, len(path))}
	for i, h := range path {
		p.Path[i] = h.String()
	}
	return p, last.Head, nil
}

// Append builds and signs the next checkpoint over heads (one per case, in
// any order): the heads become leaves after every leaf so far. The log is
// not changed; add the entry with Add once it is stored.
func (l *Log) Append(ctx context.Context, heads []merkle.Head, period string, now time.Time, s Signer) (Entry, string, error) {
	e := Entry{Leaves: slices.Clone(heads)}
	slices.SortFunc(e.Leaves, compareHeads)
	if !sorted(e.Leaves) {
		return Entry{}, "", ErrDuplicateCase
	}
	all := append(slices.Clone(l.leaves), e.Leaves...)
	tree := merkle.FromHeads(all)
	proof, err := tree.ConsistencyProof(l.tree.Size())
	if err != nil {
		return Entry{}, "", err
	}
	e.Consistency = make([]string, len(proof))
	for i, h := range proof {
		e.Consistency[i] = h.String()
	}
	e.Head = TreeHead{Seq: uint64(len(l.entries)), Prev: merkle.ZeroHash, Size: tree.Size(), Root: tree.Root().String(), Period: period}
	if last, ok := l.Latest(); ok {
		d := last.Head.Digest()
		e.Head.Prev = hex.EncodeToString(d[:])
	}
	signerKey, err := sign(ctx, &e.Head, now, s)
	if err != nil {
		return Entry{}, "", err
	}
	return e, signerKey, nil
}

// Add appends a stored entry made by Append to the log.
func (l *Log) Add(e Entry) {
	for _, lf := range e.Leaves {
		l.byCase[lf.CaseID] = append(l.byCase[lf.CaseID], uint64(len(l.leaves)))
		l.leaves = append(l.leaves, lf)
	}
	l.entries = append(l.entries, e)
	l.tree = merkle.FromHeads(l.leaves)
}
