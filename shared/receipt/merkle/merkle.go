// Package merkle implements the Merkle tree of RFC 6962 (Certificate
// Transparency) over chain heads: tree hashes, inclusion proofs and
// consistency proofs, with the verification algorithms of RFC 9162.
package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"

	"github.com/knhk/knhk/shared/receipt/jcs"
)

// Hash is a SHA-256 tree hash.
type Hash [32]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash decodes 64 lowercase hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("hash %q: want 64 hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return h, fmt.Errorf("hash %q: want lowercase hex", s)
		}
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err
}

// Domain prefixes of RFC 6962: a leaf hash can never equal a node hash.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// ZeroHash is 64 hex zeros: the predecessor named by the first checkpoint.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// EmptyRoot is the root of the tree with no leaves: SHA-256 of nothing.
var EmptyRoot = Hash(sha256.Sum256(nil))

// LeafHash is SHA-256(0x00 || data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is SHA-256(0x01 || left || right).
func NodeHash(l, r Hash) Hash {
	var b [65]byte
	b[0] = nodePrefix
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// Head is the head of one case chain at checkpoint time: a tree leaf.
type Head struct {
	Tenant string `json:"tenant"`
	CaseID string `json:"caseId"`
	Seq    int64  `json:"seq"`
	Hash   string `json:"headHash"`
}

// Leaf returns the leaf data of a head: the RFC 8785 canonical JSON of
// {caseId, headHash, seq, tenant}.
func (h Head) Leaf() []byte { return h.AppendLeaf(nil) }

// AppendLeaf appends the leaf data of h to dst.
func (h Head) AppendLeaf(dst []byte) []byte {
	dst = append(dst, `{"caseId":`...)
	dst = jcs.AppendString(dst, h.CaseID)
	dst = append(dst, `,"headHash":`...)
	dst = jcs.AppendString(dst, h.Hash)
	dst = append(dst, `,"seq":`...)
	dst = jcs.AppendInt(dst, h.Seq)
	dst = append(dst, `,"tenant":`...)
	dst = jcs.AppendString(dst, h.Tenant)
	return append(dst, '}')
}

// LeafHash returns the tree leaf hash of h.
func (h Head) LeafHash() Hash {
	var buf [256]byte
	return LeafHash(h.AppendLeaf(buf[:0]))
}

// Tree is a Merkle tree kept level by level; level 0 holds the leaf
// hashes. A node without a sibling is carried up unchanged, which yields
// exactly the RFC 6962 tree for any number of leaves.
type Tree struct {
	levels [][]Hash
}

// New builds the tree over leaf hashes (see LeafHash).
func New(leaves []Hash) *Tree {
	t := &Tree{levels: [][]Hash{leaves}}
	for cur := leaves; len(cur) > 1; {
		next := make([]Hash, (len(cur)+1)/2)
		for i := 0; i+1 < len(cur); i += 2 {
			next[i/2] = NodeHash(cur[i], cur[i+1])
		}
		if len(cur)%2 == 1 {
			next[len(next)-1] = cur[len(cur)-1]
		}
		t.levels = append(t.levels, next)
		cur = next
	}
	return t
}

// FromHeads builds the tree over chain heads, in the given order.
func FromHeads(heads []Head) *Tree {
	leaves := make([]Hash, len(heads))
	for i, h := range heads {
		leaves[i] = h.LeafHash()
	}
	return New(leaves)
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return uint64(len(t.levels[0])) }

// Root is the tree head hash.
func (t *Tree) Root() Hash {
	top := t.levels[len(t.levels)-1]
	if len(top) == 0 {
		return EmptyRoot
	}
	return top[0]
}

// Errors of proofs.
var (
	ErrIndex = errors.New("index out of range")
	ErrProof = errors.New("proof does not verify")
)

// rangeHash is MTH(D[lo:hi]) for a range that is a node of the tree, read
// from the levels, or computed when the range is not a stored node.
func (t *Tree) rangeHash(lo, hi uint64) Hash {
	n := hi - lo
	if n == 1 {
		return t.levels[0][lo]
	}
	l := bits.Len64(n - 1) // smallest l with 2^l >= n
	if lo%(1<<l) == 0 && l < len(t.levels) && (lo+1<<l == hi || (hi == t.Size() && lo+1<<l > hi)) {
		return t.levels[l][lo>>l]
	}
	k := uint64(1) << (bits.Len64(n-1) - 1)
	return NodeHash(t.rangeHash(lo, lo+k), t.rangeHash(lo+k, hi))
}

// InclusionProof returns the audit path of leaf i (RFC 6962 section 2.1.1).
func (t *Tree) InclusionProof(i uint64) ([]Hash, error) {
	if i >= t.Size() {
		return nil, ErrIndex
	}
	var path []Hash
	lo, hi := uint64(0), t.Size()
	// Walk down, collecting siblings; RFC order is leaf-to-root, so
	// reverse at the end.
	for hi-lo > 1 {
		k := uint64(1) << (bits.Len64(hi-lo-1) - 1)
		if i < lo+k {
			path = append(path, t.rangeHash(lo+k, hi))
			hi = lo + k
		} else {
			path = append(path, t.rangeHash(lo, lo+k))
			lo += k
		}
	}
	for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
		path[a], path[b] = path[b], path[a]
	}
	return path, nil
}

// ConsistencyProof proves that the first m leaves form an earlier version
// of this tree (RFC 6962 section 2.1.2).
func (t *Tree) ConsistencyProof(m uint64) ([]Hash, error) {
	n := t.Size()
	if m > n {
		return nil, ErrIndex
	}
	if m == 0 || m == n {
		return nil, nil
	}
	var path []Hash
	var sub func(m, lo, hi uint64, complete bool)
	sub = func(m, lo, hi uint64, complete bool) {
		if m == hi-lo {
			if !complete {
				path = append(path, t.rangeHash(lo, hi))
			}
			return
		}
		k := uint64(1) << (bits.Len64(hi-lo-1) - 1)
		if m <= k {
			sub(m, lo, lo+k, complete)
			path = append(path, t.rangeHash(lo+k, hi))
		} else {
			sub(m-k, lo+k, hi, false)
			path = append(path, t.rangeHash(lo, lo+k))
		}
	}
	sub(m, 0, n, true)
	return path, nil
}

// VerifyInclusion checks that leaf is the index-th leaf of the tree of the
// given size and root (RFC 9162 section 2.1.3.2).
func VerifyInclusion(leaf Hash, index, size uint64, path []Hash, root Hash) error {
	if index >= size {
		return ErrIndex
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || r != root {
		return ErrProof
	}
	return nil
}

// VerifyConsistency checks that the tree (size1, root1) is a prefix of the
// tree (size2, root2) (RFC 9162 section 2.1.4.2).
func VerifyConsistency(size1, size2 uint64, root1, root2 Hash, path []Hash) error {
	switch {
	case size1 > size2:
		return ErrIndex
	case size1 == size2:
		if len(path) != 0 || root1 != root2 {
			return ErrProof
		}
		return nil
	case size1 == 0:
		if len(path) != 0 {
			return ErrProof
		}
		return nil
	case len(path) == 0:
		return ErrProof
	}
	if size1&(size1-1) == 0 { // a power of two: the old root is a node
		path = append([]Hash{root1}, path...)
	}
	fn, sn := size1-1, size2-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || fr != root1 || sr != root2 {
		return ErrProof
	}
	return nil
}
