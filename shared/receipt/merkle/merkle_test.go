package merkle

import (
	"crypto/sha256"
	"fmt"
	"math/bits"
	"slices"
	"testing"
)

// Reference definitions straight from RFC 6962 section 2.1, recursive.
func mth(d [][]byte) Hash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, d[0]...))
	}
	k := 1 << (bits.Len(uint(len(d)-1)) - 1)
	l, r := mth(d[:k]), mth(d[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func refPath(m int, d [][]byte) []Hash {
	if len(d) <= 1 {
		return nil
	}
	k := 1 << (bits.Len(uint(len(d)-1)) - 1)
	if m < k {
		return append(refPath(m, d[:k]), mth(d[k:]))
	}
	return append(refPath(m-k, d[k:]), mth(d[:k]))
}

func refSubproof(m int, d [][]byte, b bool) []Hash {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return []Hash{mth(d)}
	}
	k := 1 << (bits.Len(uint(n-1)) - 1)
	if m <= k {
		return append(refSubproof(m, d[:k], b), mth(d[k:]))
	}
	return append(refSubproof(m-k, d[k:], false), mth(d[:k]))
}

func data(n int) ([][]byte, []Hash) {
	d := make([][]byte, n)
	h := make([]Hash, n)
	for i := range d {
		d[i] = Head{Tenant: "t", CaseID: fmt.Sprint("case-", i), Seq: int64(i), Hash: fmt.Sprintf("%064x", i)}.Leaf()
		h[i] = LeafHash(d[i])
	}
	return d, h
}

func TestTreeMatchesRFC6962(t *testing.T) {
	for n := 0; n <= 70; n++ {
		d, leaves := data(n)
		tr := New(leaves)
		if tr.Root() != mth(d) {
			t.Fatalf("size %d: root differs from RFC 6962 MTH", n)
		}
		for i := 0; i < n; i++ {
			p, err := tr.InclusionProof(uint64(i))
			if err != nil || !slices.Equal(p, refPath(i, d)) {
				t.Fatalf("size %d leaf %d: path differs from RFC 6962 PATH", n, i)
			}
			if err := VerifyInclusion(leaves[i], uint64(i), uint64(n), p, tr.Root()); err != nil {
				t.Fatalf("size %d leaf %d: %v", n, i, err)
			}
			// The same proof never proves another leaf, index or root.
			if i+1 < n && VerifyInclusion(leaves[i+1], uint64(i), uint64(n), p, tr.Root()) == nil {
				t.Fatalf("size %d: leaf %d proof accepted leaf %d", n, i, i+1)
			}
			if n > 1 && VerifyInclusion(leaves[i], uint64((i+1)%n), uint64(n), p, tr.Root()) == nil {
				t.Fatalf("size %d: leaf %d proof accepted at another index", n, i)
			}
			if len(p) > 0 {
				bad := slices.Clone(p)
				bad[len(bad)-1][0] ^= 1
				if VerifyInclusion(leaves[i], uint64(i), uint64(n), bad, tr.Root()) == nil {
					t.Fatalf("size %d leaf %d: altered path accepted", n, i)
				}
				if VerifyInclusion(leaves[i], uint64(i), uint64(n), p[:len(p)-1], tr.Root()) == nil {
					t.Fatalf("size %d leaf %d: short path accepted", n, i)
				}
			}
		}
		if _, err := tr.InclusionProof(uint64(n)); err == nil {
			t.Fatalf("size %d: proof for a leaf past the end", n)
		}
	}
}

func TestConsistency(t *testing.T) {
	for n := 1; n <= 40; n++ {
		d, leaves := data(n)
		tr := New(leaves)
		for m := 0; m <= n; m++ {
			p, err := tr.ConsistencyProof(uint64(m))
			if err != nil {
				t.Fatal(err)
			}
			if m > 0 && m < n && !slices.Equal(p, refSubproof(m, d, true)) {
				t.Fatalf("%d->%d: proof differs from RFC 6962 PROOF", m, n)
			}
			old := New(leaves[:m]).Root()
			if err := VerifyConsistency(uint64(m), uint64(n), old, tr.Root(), p); err != nil {
				t.Fatalf("%d->%d: %v", m, n, err)
			}
			if m > 0 && m < n {
				other := slices.Clone(leaves[:m])
				other[m-1][0] ^= 1 // the old tree differed in its last leaf
				if VerifyConsistency(uint64(m), uint64(n), New(other).Root(), tr.Root(), p) == nil {
					t.Fatalf("%d->%d: rewritten history accepted", m, n)
				}
				bad := slices.Clone(p)
				bad[0][5] ^= 1
				if VerifyConsistency(uint64(m), uint64(n), old, tr.Root(), bad) == nil {
					t.Fatalf("%d->%d: altered proof accepted", m, n)
				}
			}
		}
	}
}

func TestParseHash(t *testing.T) {
	h := LeafHash([]byte("x"))
	if p, err := ParseHash(h.String()); err != nil || p != h {
		t.Fatal(err)
	}
	for _, s := range []string{"", "00", h.String()[:63] + "G", "A" + h.String()[1:]} {
		if _, err := ParseHash(s); err == nil {
			t.Errorf("ParseHash(%q) accepted", s)
		}
	}
}

func TestLeafEncoding(t *testing.T) {
	got := string(Head{Tenant: "a\"b", CaseID: "c", Seq: 7, Hash: "ff"}.Leaf())
	if want := `{"caseId":"c","headHash":"ff","seq":7,"tenant":"a\"b"}`; got != want {
		t.Fatalf("leaf %s, want %s", got, want)
	}
}

func heads(n int) []Head {
	hs := make([]Head, n)
	for i := range hs {
		hs[i] = Head{Tenant: "acme", CaseID: fmt.Sprintf("case-%08d", i), Seq: int64(i % 97), Hash: fmt.Sprintf("%064x", i*7919)}
	}
	return hs
}

func BenchmarkMerkle100k(b *testing.B) {
	hs := heads(100_000)
	b.ReportAllocs()
	for b.Loop() {
		_ = FromHeads(hs).Root()
	}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	tr := FromHeads(heads(100_000))
	leaf := heads(100_000)[31337].LeafHash()
	p, _ := tr.InclusionProof(31337)
	root := tr.Root()
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyInclusion(leaf, 31337, tr.Size(), p, root); err != nil {
			b.Fatal(err)
		}
	}
}

// Every pair of sizes up to 24: a flip in any hash of the proof, a dropped
// or added hash, a wrong new root and swapped sizes each make the proof fail
// (the sizes themselves are bound by the signed tree heads);
// and the old tree rewritten at any one leaf is never consistent.
func TestConsistencyTamperedProofsFail(t *testing.T) {
	for n := 1; n <= 24; n++ {
		_, leaves := data(n)
		tr := New(leaves)
		for m := 1; m < n; m++ {
			p, err := tr.ConsistencyProof(uint64(m))
			if err != nil {
				t.Fatal(err)
			}
			old := New(leaves[:m]).Root()
			for i := range p {
				bad := slices.Clone(p)
				bad[i][31] ^= 0x80
				if VerifyConsistency(uint64(m), uint64(n), old, tr.Root(), bad) == nil {
					t.Fatalf("%d->%d: hash %d flipped, accepted", m, n, i)
				}
			}
			if VerifyConsistency(uint64(m), uint64(n), old, tr.Root(), p[:len(p)-1]) == nil {
				t.Fatalf("%d->%d: shortened proof accepted", m, n)
			}
			if VerifyConsistency(uint64(m), uint64(n), old, tr.Root(), append(slices.Clone(p), old)) == nil {
				t.Fatalf("%d->%d: lengthened proof accepted", m, n)
			}
			wrong := tr.Root()
			wrong[0] ^= 1
			if VerifyConsistency(uint64(m), uint64(n), old, wrong, p) == nil {
				t.Fatalf("%d->%d: wrong new root accepted", m, n)
			}
			if VerifyConsistency(uint64(n), uint64(m), tr.Root(), old, p) == nil {
				t.Fatalf("%d->%d: sizes swapped, accepted", m, n)
			}
			for j := 0; j < m; j++ {
				other := slices.Clone(leaves[:m])
				other[j][7] ^= 1
				if VerifyConsistency(uint64(m), uint64(n), New(other).Root(), tr.Root(), p) == nil {
					t.Fatalf("%d->%d: old leaf %d rewritten, accepted", m, n, j)
				}
			}
		}
	}
}
